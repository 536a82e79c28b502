// The drawing page: Pointer Events on a canvas, debounced predictions, probability bars.
// Plain JavaScript, no build step, no network beyond this server.
"use strict";

const DEBOUNCE_MS = 150;     // predict this long after the last stroke movement
const MAX_WAIT_MS = 400;     // ...but at least this often during one long stroke
const STROKE_FRACTION = 0.08; // line width / canvas side: MNIST strokes are ~2 px of a 28 px image

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const resultEl = document.getElementById("result");
const errorEl = document.getElementById("error");
const barsEl = document.getElementById("bars");
const seenEl = document.getElementById("seen");
const photoEl = document.getElementById("photo");
const modelRow = document.getElementById("model-row");
const modelSelect = document.getElementById("model");
const modelIdEl = document.getElementById("model-id");
const timingEl = document.getElementById("timing");

let classNames = {};      // model name -> class names
let hasInk = false;       // the canvas holds a drawing worth sending
let lastPhoto = null;     // the uploaded file, re-sent when the model changes
let drawing = null;       // {id, x, y} of the pointer drawing now
let timer = null;
let pendingSince = 0;     // when the pending prediction was first asked for
let inflight = null;      // AbortController of the request in flight
let requestSeq = 0;

function resetCanvas() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = "#fff";
  ctx.fillStyle = "#fff";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = Math.round(pad.width * STROKE_FRACTION);
}

function canvasPoint(event) {
  const rect = pad.getBoundingClientRect();
  return {
    x: (event.clientX - rect.left) * (pad.width / rect.width),
    y: (event.clientY - rect.top) * (pad.height / rect.height),
  };
}

function startStroke(event) {
  if (event.button !== undefined && event.button > 0) return; // left button, touch or pen tip only
  if (drawing) return; // one stroke at a time: a second finger does not draw
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  if (lastPhoto) { lastPhoto = null; photoEl.hidden = true; }
  const p = canvasPoint(event);
  drawing = { id: event.pointerId, ...p };
  ctx.beginPath();
  ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fill();
  hasInk = true;
  schedulePredict(DEBOUNCE_MS);
}

function moveStroke(event) {
  if (!drawing || event.pointerId !== drawing.id) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  ctx.beginPath();
  ctx.moveTo(drawing.x, drawing.y);
  for (const e of events.length ? events : [event]) {
    const p = canvasPoint(e);
    ctx.lineTo(p.x, p.y);
    drawing.x = p.x;
    drawing.y = p.y;
  }
  ctx.stroke();
  schedulePredict(DEBOUNCE_MS);
}

function endStroke(event) {
  if (!drawing || event.pointerId !== drawing.id) return;
  drawing = null;
  schedulePredict(0); // the stroke is finished: answer now
}

function schedulePredict(delay) {
  const now = performance.now();
  if (timer !== null && delay > 0 && now - pendingSince >= MAX_WAIT_MS - delay) return; // let it fire
  if (timer === null) pendingSince = now;
  clearTimeout(timer);
  timer = setTimeout(() => { timer = null; predictCurrent(); }, delay);
}

function canvasBlob() {
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

async function predictCurrent() {
  if (lastPhoto) return sendImage(lastPhoto, lastPhoto.name || "photo");
  if (!hasInk) return;
  const blob = await canvasBlob();
  return sendImage(blob, "drawing.png");
}

async function sendImage(blob, filename) {
  if (inflight) inflight.abort(); // a newer drawing makes the older answer stale
  const controller = new AbortController();
  inflight = controller;
  const seq = ++requestSeq;
  const form = new FormData();
  form.append("file", blob, filename);
  const params = new URLSearchParams({ top_k: "3" });
  if (modelSelect.value) params.set("model", modelSelect.value);
  try {
    const response = await fetch(`/api/predict?${params}`, { method: "POST", body: form, signal: controller.signal });
    const body = await response.json();
    if (seq !== requestSeq) return;
    if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    showResult(body);
  } catch (err) {
    if (err.name === "AbortError" || seq !== requestSeq) return;
    showError(err.message);
  } finally {
    if (inflight === controller) inflight = null;
  }
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

function showResult(body) {
  errorEl.hidden = true;
  const names = classNames[modelSelect.value] || body.probabilities.map((_, i) => String(i));
  resultEl.textContent = `${body.class_name} (${percent(body.probability)})`;
  resultEl.dataset.label = String(body.label);
  resultEl.dataset.className = body.class_name;
  seenEl.src = body.image;
  barsEl.replaceChildren(...body.probabilities.map((p, i) => {
    const li = document.createElement("li");
    if (i === body.label) li.className = "best";
    const name = document.createElement("span");
    name.textContent = names[i];
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = percent(p);
    track.append(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = percent(p);
    li.append(name, track, pct);
    return li;
  }));
  modelIdEl.textContent = `model ${modelSelect.value} (${body.model_id})`;
  timingEl.textContent = `${body.elapsed_ms.toFixed(1)} ms on the server`;
}

function showError(message) {
  errorEl.textContent = message;
  errorEl.hidden = false;
}

function clearAll() {
  clearTimeout(timer);
  timer = null;
  if (inflight) inflight.abort();
  requestSeq++;
  resetCanvas();
  hasInk = false;
  lastPhoto = null;
  photoEl.hidden = true;
  photoEl.removeAttribute("src");
  resultEl.textContent = "Cleared. Draw a digit.";
  delete resultEl.dataset.label;
  delete resultEl.dataset.className;
  errorEl.hidden = true;
  barsEl.replaceChildren();
  seenEl.removeAttribute("src");
  timingEl.textContent = "";
}

function usePhoto(input) {
  const file = input.files && input.files[0];
  input.value = ""; // choosing the same file again fires change again
  if (!file) return;
  resetCanvas();
  hasInk = false;
  lastPhoto = file;
  if (photoEl.src) URL.revokeObjectURL(photoEl.src);
  photoEl.src = URL.createObjectURL(file);
  photoEl.hidden = false;
  resultEl.textContent = "Reading the photo...";
  schedulePredict(0);
}

async function loadModels() {
  try {
    const response = await fetch("/api/model");
    const body = await response.json();
    for (const m of body.models) {
      classNames[m.name] = m.class_names;
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = m.dataset ? `${m.name} (${m.dataset})` : m.name;
      option.selected = m.name === body.default;
      modelSelect.append(option);
    }
    modelRow.hidden = body.models.length < 2;
  } catch (err) {
    showError(`Could not list the models: ${err.message}`);
  }
}

pad.addEventListener("pointerdown", startStroke);
pad.addEventListener("pointermove", moveStroke);
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
document.getElementById("clear").addEventListener("click", clearAll);
document.getElementById("upload").addEventListener("change", (e) => usePhoto(e.target));
document.getElementById("camera").addEventListener("change", (e) => usePhoto(e.target));
modelSelect.addEventListener("change", () => schedulePredict(0));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !event.defaultPrevented) { clearAll(); pad.focus(); }
});

resetCanvas();
loadModels();
