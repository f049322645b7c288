// Webcam frames over the WebSocket stream /v1/models/{m}/stream with skip_stale: at most
// two frames outstanding, each answer drawn over the frame it belongs to.
"use strict";

const MAX_OUTSTANDING = 2;

async function startWebcam() {
  const video = $("video");
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (error) {
    setStatus(`No webcam: ${error.message}`);
    return;
  }
  video.srcObject = media;
  await video.play();
  const params = query();
  params.set("skip_stale", "1");
  if ($("key").value) params.set("api_key", $("key").value);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const model = encodeURIComponent($("model").value);
  const socket = new WebSocket(`${scheme}://${location.host}/v1/models/${model}/stream?${params}`);
  const stream = { media, socket, frames: new Map(), next: 0, outstanding: 0 };
  state.stream = stream;
  $("webcam").textContent = "Stop webcam";
  socket.onopen = () => sendFrame(stream);
  socket.onmessage = (event) => receive(stream, JSON.parse(event.data));
  socket.onclose = (event) => {
    if (state.stream === stream) stopWebcam(event.reason || "stream closed");
  };
}

function sendFrame(stream) {
  const video = $("video");
  if (state.stream !== stream || stream.outstanding >= MAX_OUTSTANDING) return;
  const grab = document.createElement("canvas");
  grab.width = video.videoWidth;
  grab.height = video.videoHeight;
  grab.getContext("2d").drawImage(video, 0, 0);
  const id = stream.next;
  stream.next += 1;
  stream.outstanding += 1;
  stream.frames.set(id, grab);
  grab.toBlob((blob) => stream.socket.send(blob), "image/jpeg", 0.85);
  requestAnimationFrame(() => sendFrame(stream));
}

function receive(stream, message) {
  if (message.frame_id === undefined) {
    setStatus(`Stream refused: ${message.error ? message.error.message : "?"}`);
    return;
  }
  const frame = stream.frames.get(message.frame_id);
  stream.frames.delete(message.frame_id);
  stream.outstanding -= 1;
  if (message.result && frame) {
    show(frame, message.result);
    setStatus(`Webcam: frame ${message.frame_id}, ${message.result.detections.length} detections.`);
  } else if (message.error) {
    setStatus(`Frame ${message.frame_id}: ${message.error.message}`);
  }
  sendFrame(stream);
}

function stopWebcam(reason) {
  const stream = state.stream;
  state.stream = null;
  $("webcam").textContent = "Start webcam";
  if (!stream) return;
  stream.media.getTracks().forEach((track) => track.stop());
  if (stream.socket.readyState <= 1) stream.socket.close();
  if (reason) setStatus(`Webcam stopped: ${reason}`);
}
