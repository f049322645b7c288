// Webcam frames over the WebSocket stream v1/models/{m}/stream with skip_stale=1: one
// binary JPEG message per frame, at most MAX_OUTSTANDING frames unanswered, each answer
// drawn over the frame it belongs to. Frame ids are the order of the binary messages
// (the server counts 0, 1, 2, …), so an id is taken only when its frame is sent.
"use strict";

const MAX_OUTSTANDING = 2;
const JPEG_QUALITY = 0.8;

async function startWebcam() {
  if (!window.isSecureContext || !navigator.mediaDevices) {
    setStatus("Browsers allow the webcam only on https:// or http://localhost.");
    return;
  }
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (error) {
    setStatus(`No webcam: ${error.message}`);
    return;
  }
  const video = $("video");
  video.srcObject = media;
  await video.play();
  const params = query();
  params.set("skip_stale", "1");
  if ($("key").value) params.set("api_key", $("key").value); // browsers send no headers here
  const url = new URL(`v1/models/${encodeURIComponent($("model").value)}/stream`, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = params.toString();
  const socket = new WebSocket(url);
  const stream = { media, socket, frames: new Map(), next: 0, outstanding: 0, scheduled: false };
  state.stream = stream;
  // what the stream did, kept after it stops (read by tests/web/test_page_browser.py)
  state.streamStats = { results: 0, skipped: 0, errors: 0, lastId: -1, inOrder: true, peak: 0 };
  $("webcam").textContent = "Stop webcam";
  setStatus("Webcam: connecting…");
  socket.onopen = () => schedule(stream);
  socket.onmessage = (event) => receive(stream, JSON.parse(event.data));
  socket.onclose = (event) => {
    if (state.stream === stream) stopWebcam(stream.refusal || `stream closed (${event.code})`);
  };
}

function schedule(stream) {
  // one pump per stream: grab the next frame on the next animation frame
  if (stream.scheduled || state.stream !== stream) return;
  stream.scheduled = true;
  requestAnimationFrame(() => {
    stream.scheduled = false;
    sendFrame(stream);
  });
}

function sendFrame(stream) {
  const video = $("video");
  const open = stream.socket.readyState === WebSocket.OPEN;
  if (state.stream !== stream || !open || stream.outstanding >= MAX_OUTSTANDING) return;
  if (!video.videoWidth) {
    schedule(stream); // no picture yet
    return;
  }
  const grab = document.createElement("canvas");
  grab.width = video.videoWidth;
  grab.height = video.videoHeight;
  grab.getContext("2d").drawImage(video, 0, 0);
  stream.outstanding += 1;
  grab.toBlob((blob) => {
    if (state.stream !== stream || stream.socket.readyState !== WebSocket.OPEN) return;
    if (!blob) {
      stream.outstanding -= 1;
    } else {
      stream.frames.set(stream.next, grab);
      stream.next += 1;
      stream.socket.send(blob);
      state.streamStats.peak = Math.max(state.streamStats.peak, stream.outstanding);
    }
    schedule(stream);
  }, "image/jpeg", JPEG_QUALITY);
}

function receive(stream, message) {
  if (state.stream !== stream) return; // stopped: answers still in flight are dropped
  if (message.frame_id === undefined) { // refused (options, model): the server closes next
    stream.refusal = `stream refused: ${message.error ? message.error.message : "?"}`;
    setStatus(stream.refusal);
    return;
  }
  const frame = stream.frames.get(message.frame_id);
  stream.frames.delete(message.frame_id);
  stream.outstanding -= 1;
  const stats = state.streamStats;
  stats.inOrder = stats.inOrder && message.frame_id === stats.lastId + 1;
  stats.lastId = message.frame_id;
  if (message.result && frame) {
    stats.results += 1;
    show(frame, message.result);
    setStatus(`Webcam: frame ${message.frame_id}, ${message.result.detections.length} detections.`);
  } else if (message.error) {
    stats.errors += 1;
    setStatus(`Frame ${message.frame_id}: ${message.error.message}`);
  } else {
    stats.skipped += 1; // a newer frame came while this one waited (skip_stale)
  }
  schedule(stream);
}

function stopWebcam(reason) {
  const stream = state.stream;
  state.stream = null;
  $("webcam").textContent = "Start webcam";
  if (!stream) return;
  stream.media.getTracks().forEach((track) => track.stop());
  if (stream.socket.readyState <= WebSocket.OPEN) stream.socket.close();
  setStatus(reason ? `Webcam stopped: ${reason}` : "Webcam stopped.");
}
