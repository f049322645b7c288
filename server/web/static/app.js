// maskserve's page: pick a model, send an image (or webcam frames over the WebSocket
// stream), draw every mask decoded from its RLE, boxes, labels and scores; hover or click
// an object (or its table row) to inspect it. URLs are relative: behind a proxy that
// serves maskserve under a prefix the page still reaches its own server.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const context = canvas.getContext("2d");
// read by tests/web/test_page_browser.py
const state = {
  picture: null, answer: null, owner: null, areas: [], hover: -1, pinned: -1,
  stream: null, streamStats: null, models: [], drawing: false,
};
window.maskserve = state;
const TINT_ALPHA = 0.5;
const SELECTED_ALPHA = 0.75;
const IMAGE_TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp" };

function colour(index, alpha) {
  const hue = (index * 137.508) % 360; // golden angle: neighbours differ
  return `hsla(${hue.toFixed(1)}, 85%, 55%, ${alpha})`;
}

function rgb(index) {
  const probe = document.createElement("canvas").getContext("2d");
  probe.fillStyle = colour(index, 1);
  probe.fillRect(0, 0, 1, 1);
  return Array.from(probe.getImageData(0, 0, 1, 1).data.slice(0, 3));
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
  const reply = await fetch("v1/models", { headers: headers({}) });
  if (reply.status === 401) {
    setStatus("This server needs an API key: type it in the key field.");
    document.body.dataset.models = "needs-key";
    return;
  }
  if (!reply.ok) {
    setStatus(`Could not list models: HTTP ${reply.status}`);
    return;
  }
  // tensor models (family "raw") take tensors over /v2, not pictures: not offered here
  state.models = (await reply.json()).models.filter((m) => m.family !== "raw");
  const chosen = $("model").value;
  $("model").replaceChildren(...state.models.map((m) => new Option(`${m.name} (${m.family})`, m.name)));
  if (state.models.some((m) => m.name === chosen)) $("model").value = chosen;
  showClassHint();
  if (document.body.dataset.models === "needs-key") setStatus("Ready.");
  document.body.dataset.models = String(state.models.length);
}

function showClassHint() {
  const model = state.models.find((m) => m.name === $("model").value);
  const names = (model && model.class_names) || [];
  $("classes").title = names.map((name, id) => `${id} ${name}`).join(", ");
}

function decodeMasks(answer, width, height) {
  // index of the top-most (highest-scoring) detection at each pixel, -1 where none
  const owner = new Int32Array(width * height).fill(-1);
  const detections = answer.detections;
  state.areas = detections.map((d) => (d.mask && d.mask.counts ? rleArea(d.mask) : null));
  for (let i = detections.length - 1; i >= 0; i -= 1) {
    const mask = detections[i].mask;
    if (!mask || !mask.counts || mask.size[0] !== height || mask.size[1] !== width) continue;
    rleForEach(mask, (x, y) => { owner[y * width + x] = i; });
  }
  return owner;
}

function selected() {
  return state.pinned >= 0 ? state.pinned : state.hover;
}

function render() {
  state.drawing = false;
  const { picture, answer } = state;
  if (!picture) return;
  canvas.width = picture.width;
  canvas.height = picture.height;
  context.drawImage(picture, 0, 0);
  if (!answer) return;
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  const tints = answer.detections.map((_, i) => rgb(i));
  const chosen = selected();
  const data = pixels.data;
  for (let p = 0; p < state.owner.length; p += 1) {
    const i = state.owner[p];
    if (i < 0) continue;
    const alpha = i === chosen ? SELECTED_ALPHA : TINT_ALPHA;
    for (let c = 0; c < 3; c += 1) {
      data[p * 4 + c] = Math.round(data[p * 4 + c] * (1 - alpha) + tints[i][c] * alpha);
    }
  }
  context.putImageData(pixels, 0, 0);
  answer.detections.forEach((d, i) => drawBox(d, i, i === chosen));
}

function scheduleRender() {
  // mouse moves come faster than frames: draw at most once per frame
  if (state.drawing) return;
  state.drawing = true;
  requestAnimationFrame(render);
}

function drawBox(detection, index, isSelected) {
  const [x1, y1, x2, y2] = detection.box;
  const scale = Math.max(1, canvas.width / 900); // labels stay readable on big photos
  context.lineWidth = (isSelected ? 3 : 1.5) * scale;
  context.strokeStyle = colour(index, 1);
  context.strokeRect(x1, y1, x2 - x1, y2 - y1);
  const text = `${detection.label} ${detection.score.toFixed(2)}`;
  context.font = `${Math.round(12 * scale)}px sans-serif`;
  const height = 15 * scale;
  const width = context.measureText(text).width + 6 * scale;
  const top = Math.max(0, y1 - height);
  context.fillStyle = colour(index, 0.85);
  context.fillRect(x1, top, width, height);
  context.fillStyle = "#000";
  context.fillText(text, x1 + 3 * scale, top + 11 * scale);
}

function showTable(answer) {
  const rows = answer.detections.map((d, i) => {
    const row = document.createElement("tr");
    row.dataset.index = String(i);
    const box = d.box.map((v) => v.toFixed(0)).join(", ");
    const area = state.areas[i] === null ? "" : String(state.areas[i]);
    for (const text of [String(i), d.label, d.score.toFixed(3), `[${box}]`, area]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    row.style.borderLeft = `6px solid ${colour(i, 1)}`;
    row.addEventListener("mouseenter", () => setHover(i));
    row.addEventListener("mouseleave", () => setHover(-1));
    row.addEventListener("click", () => pin(i));
    return row;
  });
  $("table").tBodies[0].replaceChildren(...rows);
  const timings = Object.entries(answer.timings || {});
  $("timings").textContent = timings.length
    ? "server: " + timings.map(([name, s]) => `${name} ${(s * 1000).toFixed(1)} ms`).join(", ")
    : "";
}

function showDetails() {
  const index = selected();
  for (const row of $("table").tBodies[0].rows) {
    row.classList.toggle("hover", Number(row.dataset.index) === index);
    row.classList.toggle("pinned", Number(row.dataset.index) === state.pinned);
  }
  const d = state.answer && state.answer.detections[index];
  if (!d) {
    $("details").textContent = "Hover over an object (or click it to keep it selected).";
    return;
  }
  const parts = [
    `#${index} ${d.label} (class ${d.class_id})`,
    `score ${d.score.toFixed(3)}`,
    d.mask_score === undefined ? null : `mask score ${d.mask_score.toFixed(3)}`,
    `box [${d.box.map((v) => v.toFixed(1)).join(", ")}]`,
    state.areas[index] === null ? null : `mask area ${state.areas[index]} px`,
  ];
  $("details").textContent = parts.filter((p) => p !== null).join(", ");
}

function setHover(index) {
  if (index === state.hover) return;
  state.hover = index;
  showDetails();
  scheduleRender();
}

function pin(index) {
  state.pinned = index === state.pinned ? -1 : index;
  showDetails();
  scheduleRender();
}

function show(picture, answer) {
  state.picture = picture;
  state.answer = answer;
  state.hover = -1;
  state.pinned = -1;
  state.owner = decodeMasks(answer, picture.width, picture.height);
  canvas.hidden = false;
  $("drop").hidden = true;
  render();
  showTable(answer);
  showDetails();
}

function imageType(file) {
  if (file.type) return file.type;
  const extension = file.name.split(".").pop().toLowerCase();
  return IMAGE_TYPES[extension] || "application/octet-stream"; // the server says 415
}

async function segmentFile(file) {
  const model = $("model").value;
  setStatus(`Segmenting ${file.name} with ${model}…`);
  document.body.dataset.state = "busy";
  try {
    const started = performance.now();
    const reply = await fetch(`v1/models/${encodeURIComponent(model)}/segment?${query()}`, {
      method: "POST",
      headers: headers({ "Content-Type": imageType(file) }),
      body: file,
    });
    const answer = await reply.json();
    const elapsed = performance.now() - started;
    if (!reply.ok) {
      const message = answer.error ? answer.error.message : JSON.stringify(answer);
      throw new Error(`HTTP ${reply.status}: ${message}`);
    }
    const picture = await createImageBitmap(file, { imageOrientation: "from-image" });
    show(picture, answer);
    let text = `${answer.detections.length} detections in ${file.name} ` +
      `(round trip ${elapsed.toFixed(0)} ms).`;
    if (answer.image.width !== picture.width || answer.image.height !== picture.height) {
      text += ` The browser decoded ${picture.width}×${picture.height}, the server ` +
        `${answer.image.width}×${answer.image.height}: masks are not drawn.`;
    }
    setStatus(text);
    document.body.dataset.state = "done";
  } catch (error) {
    setStatus(error.message || String(error));
    document.body.dataset.state = "error";
  }
}

function pixelAt(event) {
  const bounds = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - bounds.left) * canvas.width) / bounds.width);
  const y = Math.floor(((event.clientY - bounds.top) * canvas.height) / bounds.height);
  if (!state.owner || x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return -1;
  return state.owner[y * canvas.width + x];
}

canvas.addEventListener("mousemove", (event) => setHover(pixelAt(event)));
canvas.addEventListener("mouseleave", () => setHover(-1));
canvas.addEventListener("click", (event) => {
  const index = pixelAt(event);
  if (index >= 0 || state.pinned >= 0) pin(index);
});
$("file").addEventListener("change", () => {
  if ($("file").files.length) segmentFile($("file").files[0]);
});
document.addEventListener("dragover", (event) => {
  event.preventDefault();
  $("drop").classList.add("over");
});
document.addEventListener("dragleave", () => $("drop").classList.remove("over"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  $("drop").classList.remove("over");
  if (event.dataTransfer.files.length) segmentFile(event.dataTransfer.files[0]);
});
$("model").addEventListener("change", showClassHint);
$("key").addEventListener("change", () => loadModels().catch((e) => setStatus(String(e))));
$("webcam").addEventListener("click", () => (state.stream ? stopWebcam() : startWebcam()));
loadModels().catch((error) => setStatus(`Could not list models: ${error}`));
