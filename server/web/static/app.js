// maskserve's page: pick a model, send an image (or webcam frames over the WebSocket
// stream), draw every mask decoded from its RLE, boxes, labels and scores; hover to inspect.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const context = canvas.getContext("2d");
const state = { picture: null, answer: null, hover: -1, owner: null, stream: null };
window.maskserve = state; // read by tests/web/test_page_browser.py

function colour(index, alpha) {
  const hue = (index * 137.508) % 360; // golden angle: neighbours differ
  return `hsla(${hue.toFixed(1)}, 85%, 55%, ${alpha})`;
}

function rgb(index) {
  const probe = document.createElement("canvas").getContext("2d");
  probe.fillStyle = colour(index, 1);
  probe.fillRect(0, 0, 1, 1);
  return probe.getImageData(0, 0, 1, 1).data;
}

function query() {
  const params = new URLSearchParams();
  if ($("score").value !== "") params.set("score_threshold", $("score").value);
  if ($("max").value !== "") params.set("max_detections", $("max").value);
  if ($("classes").value.trim() !== "") params.set("classes", $("classes").value.trim());
  return params;
}

function headers(extra) {
  const all = Object.assign({}, extra);
  if ($("key").value) all.Authorization = `Bearer ${$("key").value}`;
  return all;
}

function setStatus(text) {
  $("status").textContent = text;
}

async function loadModels() {
  const reply = await fetch("/v1/models", { headers: headers({}) });
  if (!reply.ok) {
    setStatus(`Could not list models: HTTP ${reply.status}`);
    return;
  }
  const { models } = await reply.json();
  $("model").replaceChildren(...models.map((m) => new Option(`${m.name} (${m.family})`, m.name)));
  document.body.dataset.models = String(models.length);
}

function ownerMap(answer, width, height) {
  // index of the top-most (highest-scoring) detection at each pixel, -1 where none
  const owner = new Int32Array(width * height).fill(-1);
  const detections = answer.detections;
  for (let i = detections.length - 1; i >= 0; i -= 1) {
    if (!detections[i].mask || !detections[i].mask.counts) continue;
    rleForEach(detections[i].mask, (x, y) => { owner[y * width + x] = i; });
  }
  return owner;
}

function render() {
  const { picture, answer } = state;
  if (!picture) return;
  canvas.width = picture.width;
  canvas.height = picture.height;
  context.drawImage(picture, 0, 0);
  if (!answer) return;
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  const tints = answer.detections.map((_, i) => rgb(i));
  for (let p = 0; p < state.owner.length; p += 1) {
    const i = state.owner[p];
    if (i < 0) continue;
    const alpha = i === state.hover ? 0.75 : 0.5;
    for (let c = 0; c < 3; c += 1) {
      pixels.data[p * 4 + c] = Math.round(pixels.data[p * 4 + c] * (1 - alpha) + tints[i][c] * alpha);
    }
  }
  context.putImageData(pixels, 0, 0);
  answer.detections.forEach((d, i) => drawBox(d, i));
}

function drawBox(detection, index) {
  const [x1, y1, x2, y2] = detection.box;
  context.lineWidth = index === state.hover ? 3 : 1.5;
  context.strokeStyle = colour(index, 1);
  context.strokeRect(x1, y1, x2 - x1, y2 - y1);
  const text = `${detection.label} ${detection.score.toFixed(2)}`;
  context.font = "12px sans-serif";
  const width = context.measureText(text).width + 6;
  context.fillStyle = colour(index, 0.85);
  context.fillRect(x1, Math.max(0, y1 - 15), width, 15);
  context.fillStyle = "#000";
  context.fillText(text, x1 + 3, Math.max(11, y1 - 4));
}

function showTable(answer) {
  const rows = answer.detections.map((d, i) => {
    const row = document.createElement("tr");
    row.dataset.index = String(i);
    const box = d.box.map((v) => v.toFixed(0)).join(", ");
    for (const text of [String(i), d.label, d.score.toFixed(3), `[${box}]`]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    row.style.borderLeft = `6px solid ${colour(i, 1)}`;
    row.addEventListener("mouseenter", () => highlight(i));
    return row;
  });
  $("table").tBodies[0].replaceChildren(...rows);
  const t = answer.timings || {};
  const ms = (s) => (s === undefined ? "?" : (s * 1000).toFixed(1));
  $("timings").textContent = `server: queue ${ms(t.queue)} ms, inference ${ms(t.inference)} ms, ` +
    `postprocess ${ms(t.postprocess)} ms, total ${ms(t.total)} ms`;
}

function highlight(index) {
  if (index === state.hover) return;
  state.hover = index;
  for (const row of $("table").tBodies[0].rows) {
    row.classList.toggle("hover", Number(row.dataset.index) === index);
  }
  const d = state.answer && state.answer.detections[index];
  $("details").textContent = d
    ? `#${index} ${d.label} (class ${d.class_id}), score ${d.score.toFixed(3)}, ` +
      `box [${d.box.map((v) => v.toFixed(1)).join(", ")}]`
    : "Hover over an object to see it.";
  render();
}

function show(picture, answer) {
  state.picture = picture;
  state.answer = answer;
  state.hover = -1;
  state.owner = ownerMap(answer, picture.width, picture.height);
  canvas.hidden = false;
  $("drop").hidden = true;
  render();
  showTable(answer);
}

async function segmentFile(file) {
  const model = $("model").value;
  setStatus(`Segmenting ${file.name} with ${model}…`);
  document.body.dataset.state = "busy";
  const type = file.type || "image/jpeg";
  const reply = await fetch(`/v1/models/${encodeURIComponent(model)}/segment?${query()}`, {
    method: "POST",
    headers: headers({ "Content-Type": type }),
    body: file,
  });
  const answer = await reply.json();
  if (!reply.ok) {
    setStatus(`HTTP ${reply.status}: ${answer.error ? answer.error.message : "error"}`);
    document.body.dataset.state = "error";
    return;
  }
  const picture = await createImageBitmap(file, { imageOrientation: "from-image" });
  show(picture, answer);
  setStatus(`${answer.detections.length} detections in ${file.name}.`);
  document.body.dataset.state = "done";
}

canvas.addEventListener("mousemove", (event) => {
  if (!state.owner) return;
  const bounds = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - bounds.left) * canvas.width) / bounds.width);
  const y = Math.floor(((event.clientY - bounds.top) * canvas.height) / bounds.height);
  if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return;
  highlight(state.owner[y * canvas.width + x]);
});

$("file").addEventListener("change", () => {
  if ($("file").files.length) segmentFile($("file").files[0]);
});
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer.files.length) segmentFile(event.dataTransfer.files[0]);
});
$("webcam").addEventListener("click", () => (state.stream ? stopWebcam() : startWebcam()));
loadModels().catch((error) => setStatus(`Could not list models: ${error}`));
