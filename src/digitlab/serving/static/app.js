// The drawing page: draw (Pointer Events) or upload a photo, and the model answers while you draw.
// Two modes: one digit (POST /api/predict: probability bars, the 28x28 the model saw) and a whole
// number (POST /api/read: the string, each digit's box drawn over the drawing). A history strip keeps
// the last answers. A server started with --token answers 401: the page asks for the token in a
// dialog, keeps it for the tab (sessionStorage) and repeats the call with it.
// Plain JavaScript, no build step, nothing loaded from anywhere but this server.
"use strict";

const DEBOUNCE_MS = 150;      // ask this long after the last stroke movement...
const MAX_WAIT_MS = 400;      // ...and at least this often while a long stroke goes on
const STROKE_FRACTION = 0.08; // line width / canvas height: MNIST strokes are ~2 px of a 28 px image
const HISTORY_MAX = 6;
const TOKEN_KEY = "digitlab.token";
const MODES = {
  digit: { width: 280, height: 280, endpoint: "/api/predict" },
  number: { width: 840, height: 280, endpoint: "/api/read" },
};
// what a model's classes are, by its dataset (as the library words its "not a ..." reason)
const NOUNS = { mnist: "digit", kmnist: "character", "fashion-mnist": "piece of clothing" };
const SHORT_REASONS = { "not a digit": "not a digit", "several objects": "several things" }; // for the history

const $ = (id) => document.getElementById(id);
const main = $("main"), pad = $("pad"), ctx = pad.getContext("2d"), boxes = $("boxes");
const photoEl = $("photo"), photoBoxes = $("photo-boxes"), padHint = $("pad-hint");
const card = $("result-card"), busyEl = $("busy"), emptyView = $("empty-view"), readingView = $("reading-view");
const answerView = $("answer-view"), errorView = $("error-view"), errorEl = $("error");
const seenBox = $("seen-box"), seenEl = $("seen"), verdictEl = $("verdict"), answerEl = $("answer");
const confidenceEl = $("confidence"), barsEl = $("bars"), digitsEl = $("digits"), metaEl = $("meta");
const announceEl = $("announce"), historyCard = $("history-card"), historyEl = $("history");
const modelRow = $("model-row"), modelSelect = $("model");
const modeButtons = { digit: $("mode-digit"), number: $("mode-number") };
const tokenDialog = $("token-dialog"), tokenForm = $("token-form"), tokenInput = $("token-input");
const tokenError = $("token-error");

const state = {
  mode: "digit",
  models: {},          // served name -> its /api/model entry
  modelsLoaded: null,  // the promise of the /api/model answer
  hasInk: false,       // the canvas holds a drawing worth sending
  dirty: false,        // the ink changed since the last request
  photo: null,         // the uploaded File (re-sent when the model changes)
  photoUrl: null,
  stroke: null,        // {id, x, y} of the pointer drawing now
  timer: null,
  burstStart: null,    // when the pending request's wait began (for MAX_WAIT_MS)
  lastSendAt: -Infinity,
  inflight: null,      // AbortController of the request in flight
  seq: 0,              // answers to older requests are dropped
  session: 0,          // one per drawing or photo: its history entry is updated in place
  shown: "empty",      // what the result card showed before "reading"
  lastDigits: [],      // the digits of the last reading (number mode), redrawn over a photo once it loads
  history: [],
};

// -- drawing ------------------------------------------------------------------------------------

function resetCanvas() {
  ctx.fillStyle = "#000"; // white ink on black, as MNIST; the CSS shows it as paper in the light theme
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = "#fff";
  ctx.fillStyle = "#fff";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = Math.round(Math.min(pad.width, pad.height) * STROKE_FRACTION);
  boxes.getContext("2d").clearRect(0, 0, boxes.width, boxes.height);
  state.hasInk = false;
  state.dirty = false;
  padHint.hidden = false;
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
  if (state.stroke) return; // one stroke at a time: a second finger does not draw
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  if (state.photo) { dismissPhoto(); newSession(); }
  const p = canvasPoint(event);
  state.stroke = { id: event.pointerId, ...p };
  ctx.beginPath();
  ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fill();
  state.hasInk = true;
  padHint.hidden = true;
  inkChanged();
}

function moveStroke(event) {
  const stroke = state.stroke;
  if (!stroke || event.pointerId !== stroke.id) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  ctx.beginPath();
  ctx.moveTo(stroke.x, stroke.y);
  for (const e of events.length ? events : [event]) {
    const p = canvasPoint(e);
    ctx.lineTo(p.x, p.y);
    stroke.x = p.x;
    stroke.y = p.y;
  }
  ctx.stroke();
  inkChanged();
}

function endStroke(event) {
  if (!state.stroke || event.pointerId !== state.stroke.id) return;
  state.stroke = null;
  if (state.dirty) sendNow(); // the stroke is finished: answer now (unless nothing changed since)
}

// -- when to ask: 150 ms after the last change, at least every 400 ms during a long stroke ------

function inkChanged() {
  state.dirty = true;
  const now = performance.now();
  if (state.burstStart === null) {
    // still drawing right after the last request: keep its pace, else start a new wait
    state.burstStart = now - state.lastSendAt < DEBOUNCE_MS ? state.lastSendAt : now;
  }
  const fireAt = Math.min(now + DEBOUNCE_MS, state.burstStart + MAX_WAIT_MS);
  clearTimeout(state.timer);
  state.timer = setTimeout(sendNow, Math.max(0, fireAt - now));
}

function cancelPending() {
  clearTimeout(state.timer);
  state.timer = null;
  state.burstStart = null;
}

function sendNow() {
  cancelPending();
  state.lastSendAt = performance.now();
  state.dirty = false;
  ask();
}

// -- the API, with the token when the server wants one --------------------------------------------

function storedToken() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
}

function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage switched off: the token lasts until the page reloads */ }
}

let memoryToken = null; // where the token lives when sessionStorage refuses it
let tokenWait = null;   // {promise, resolve, reject} while the dialog is open

function askToken(message) {
  tokenError.textContent = message;
  tokenError.hidden = !message;
  if (tokenWait) return tokenWait.promise;
  let resolve, reject;
  const promise = new Promise((ok, fail) => { resolve = ok; reject = fail; });
  tokenWait = { promise, resolve, reject };
  tokenInput.value = "";
  tokenDialog.showModal();
  tokenInput.focus();
  return promise;
}

function settleToken(token) {
  const wait = tokenWait;
  tokenWait = null;
  if (tokenDialog.open) tokenDialog.close();
  if (!wait) return;
  if (token) {
    memoryToken = token;
    storeToken(token);
    wait.resolve();
  } else {
    wait.reject(Object.assign(new Error("This server needs an access token. Draw again (or reload the page) to "
      + "enter it."), { code: "token_needed" }));
  }
}

async function api(path, init = {}) {
  for (;;) {
    const token = storedToken() || memoryToken;
    const headers = new Headers(init.headers);
    if (token) headers.set("Authorization", `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers });
    if (response.status !== 401) return response;
    const body = await readJson(response.clone());
    if (!body || !body.error || body.error.code !== "unauthorized") return response;
    if (token && (storedToken() || memoryToken) === token) { storeToken(null); memoryToken = null; }
    await askToken(token ? "That token was not accepted. Check it and try again." : "");
    if (init.signal && init.signal.aborted) throw new DOMException("The request was aborted", "AbortError");
  }
}

async function readJson(response) {
  try { return await response.json(); } catch { return null; }
}

function apiError(response, body) {
  const detail = body && body.error;
  const message = detail ? detail.message : `The server answered ${response.status} ${response.statusText}`.trim();
  return Object.assign(new Error(message), { code: detail ? detail.code : `http_${response.status}` });
}

function canvasBlob() {
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

// One request for what is on the page now (the photo, else the drawing), in the current mode.
async function ask() {
  const photo = state.photo;
  if (!photo && !state.hasInk) return;
  const seq = ++state.seq, mode = state.mode;
  if (state.inflight) state.inflight.abort(); // a newer drawing makes the older answer stale
  const controller = new AbortController();
  state.inflight = controller;
  showReading();
  try {
    await ensureModels();
    const blob = photo || await canvasBlob();
    if (seq !== state.seq) return;
    const form = new FormData();
    form.append("file", blob, photo ? photo.name || "photo" : "drawing.png");
    const params = new URLSearchParams(mode === "digit" ? { top_k: "3" } : {});
    if (modelSelect.value) params.set("model", modelSelect.value);
    const response = await api(`${MODES[mode].endpoint}?${params}`,
      { method: "POST", body: form, signal: controller.signal });
    const body = await readJson(response);
    if (seq !== state.seq) return;
    if (!response.ok || !body) throw apiError(response, body);
    if (mode === "digit") showPrediction(body); else showNumber(body);
  } catch (err) {
    if (err.name === "AbortError" || seq !== state.seq) return;
    showFailure(err);
  } finally {
    if (state.inflight === controller) state.inflight = null;
  }
}

// -- the result card: empty, reading, result, rejected, error -----------------------------------

function setView(view) {
  const answered = state.shown === "result" || state.shown === "rejected";
  if (view !== "reading") state.shown = view;
  card.dataset.state = view;
  emptyView.hidden = view !== "empty";
  readingView.hidden = !(view === "reading" && !answered);
  answerView.hidden = !(view === "result" || view === "rejected" || (view === "reading" && answered));
  errorView.hidden = view !== "error";
  busyEl.hidden = view !== "reading";
}

function showReading() {
  $("reading-hint").textContent = state.photo ? "Reading the photo\u2026" : "Reading your drawing\u2026";
  setView("reading");
}

function showEmpty(title, hint) {
  const noun = nounOf(currentModel());
  $("empty-title").textContent = title || (state.mode === "number" ? "Write a number to start"
    : `Draw ${article(noun)} ${noun} to start`);
  $("empty-hint").textContent = hint || (state.mode === "number"
    ? "Write several digits side by side; each one is boxed and read as you go."
    : "The model answers while you draw. Or upload a photo.");
  for (const key of ["label", "text", "reason"]) delete card.dataset[key];
  barsEl.replaceChildren();
  digitsEl.replaceChildren();
  metaEl.textContent = "";
  setView("empty");
}

function showBlank() {
  showEmpty("Nothing to read yet", "Nothing stands out from the background: draw a little bigger and bolder.");
}

function showFailure(err) {
  if (err.code === "blank_image") return showBlank();
  const badFile = state.photo && err.code !== "token_needed" && !(err instanceof TypeError);
  if (badFile) dismissPhoto(); // a bad upload leaves nothing behind
  $("error-title").textContent = err.code === "token_needed" ? "Access token needed"
    : badFile ? "That file could not be read" : "Something went wrong";
  errorEl.textContent = err instanceof TypeError
    ? "Could not reach the server: is digitlab serve still running?" : err.message;
  barsEl.replaceChildren();
  digitsEl.replaceChildren();
  metaEl.textContent = "";
  for (const key of ["label", "text", "reason"]) delete card.dataset[key];
  setView("error");
}

function showPrediction(body) {
  if (body.rejected && body.reason === "blank") return showBlank();
  const rejected = Boolean(body.rejected);
  card.dataset.label = String(body.label);
  card.dataset.reason = body.reason || "";
  delete card.dataset.text;
  seenEl.src = body.image;
  seenBox.hidden = false;
  verdictEl.hidden = !rejected;
  verdictEl.textContent = rejected ? rejectionText(body.reason) : "";
  setAnswer(rejected ? "" : body.class_name);
  if (rejected) {
    rich(confidenceEl, ["Closest guess: ", [body.class_name], ` (${percent(body.probability)})`]);
  } else {
    const second = body.probability < 0.6 && body.top_k[1]; // unsure: name the runner-up too
    rich(confidenceEl, [[percent(body.probability)], " sure",
      second ? ` \u00b7 or maybe ${second.class_name} (${percent(second.probability)})` : ""]);
  }
  renderBars(body);
  digitsEl.hidden = true;
  showMeta(body);
  setView(rejected ? "rejected" : "result");
  announce(rejected ? `${verdictEl.textContent}. Closest guess ${body.class_name}.`
    : `${body.class_name}, ${percent(body.probability)} sure`);
  remember({ thumb: body.image, answer: rejected ? "?" : body.class_name, rejected,
             detail: rejected ? SHORT_REASONS[body.reason] || "no match"
               : `${Math.round(100 * body.probability)}% sure` });
}

function showNumber(body) {
  state.lastDigits = body.digits;
  drawBoxes(state.photo ? photoBoxes : boxes, body.digits);
  if (!body.digits.length) return showBlank();
  const read = body.digits.filter((d) => !d.rejected);
  const left = body.digits.length - read.length;
  card.dataset.text = body.text;
  delete card.dataset.label;
  seenBox.hidden = true;
  barsEl.replaceChildren();
  barsEl.hidden = true;
  verdictEl.hidden = Boolean(body.text);
  verdictEl.textContent = body.text ? "" : "That doesn't look like a number";
  setAnswer(body.text);
  const least = read.length ? Math.min(...read.map((d) => d.probability)) : 0;
  rich(confidenceEl, read.length
    ? [[`${read.length} digit${read.length === 1 ? "" : "s"}`], ` \u00b7 the least sure at ${percent(least)}`,
       left ? ` \u00b7 ${left} mark${left === 1 ? "" : "s"} left out` : ""]
    : ["Nothing in it reads as a digit."]);
  renderDigits(body.digits);
  showMeta(body);
  setView(body.text ? "result" : "rejected");
  announce(body.text ? `Read ${body.text.split("").join(" ")}` : verdictEl.textContent);
  remember({ thumb: thumbnail(state.photo ? photoEl : pad, body.digits), answer: body.text || "?", rejected: !body.text,
             detail: body.text ? `${read.length} digit${read.length === 1 ? "" : "s"}` : "no number" });
}

function setAnswer(text) {
  answerEl.textContent = text;
  answerEl.hidden = !text;
  answerEl.classList.toggle("long", !/^[\d\n]*$/.test(text) && text.length > 2);
}

function rejectionText(reason) {
  if (reason === "several objects") return "That looks like several things: draw one at a time";
  const noun = nounOf(currentModel());
  return noun ? `That doesn't look like ${article(noun)} ${noun}` : "That doesn't look like anything this model knows";
}

function renderBars(body) {
  const model = currentModel();
  const names = (model && model.class_names) || body.probabilities.map((_, i) => String(i));
  barsEl.hidden = false;
  barsEl.replaceChildren(...body.probabilities.map((p, i) => {
    const li = document.createElement("li");
    if (i === body.label) li.className = "best";
    const fill = el("span", "fill");
    fill.style.width = percent(p);
    const track = el("span", "track");
    track.append(fill);
    li.append(el("span", "name", names[i] ?? String(i)), track, el("span", "pct", percent(p)));
    return li;
  }));
}

function renderDigits(digits) {
  digitsEl.hidden = false;
  digitsEl.replaceChildren(...digits.map((d) => {
    const li = document.createElement("li");
    if (d.rejected) li.className = "rejected";
    li.append(el("span", "d", d.rejected ? "?" : d.class_name),
              el("span", "p", d.rejected ? (d.reason || "left out") : percent(d.probability)));
    return li;
  }));
}

// Each digit's box and answer over the drawing (or the photo): box coordinates are the posted image's pixels.
function drawBoxes(canvas, digits) {
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const css = getComputedStyle(document.documentElement);
  const accent = css.getPropertyValue("--accent").trim() || "#4f46e5";
  // labels 15 CSS pixels tall whatever the canvas's scale on screen (object-fit: contain for a photo)
  const shown = Math.min(canvas.clientWidth / canvas.width, canvas.clientHeight / canvas.height) || 1;
  const size = Math.round(15 / shown);
  g.font = `700 ${size}px system-ui, sans-serif`;
  g.lineWidth = Math.max(2, size / 7);
  for (const d of digits) {
    const [x0, y0, x1, y1] = d.box;
    g.setLineDash(d.rejected ? [size / 2, size / 3] : []);
    g.strokeStyle = d.rejected ? "#8a93a6" : accent;
    g.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const label = d.rejected ? "?" : `${d.class_name} ${Math.round(100 * d.probability)}%`;
    const w = g.measureText(label).width + size * 0.7, h = size * 1.4;
    const ly = Math.max(0, y0 - h - 2); // above the box (over its top edge when there is no room)
    g.fillStyle = d.rejected ? "#8a93a6" : accent;
    g.fillRect(x0, ly, w, h);
    g.fillStyle = "#fff";
    g.fillText(label, x0 + size * 0.35, ly + size * 1.05);
  }
}

function showMeta(body) {
  const model = currentModel();
  const parts = [modelSelect.value || (model && model.name), body.model_id, model && model.backend,
    `${Number(body.elapsed_ms).toFixed(0)} ms on the server`];
  metaEl.textContent = parts.filter(Boolean).join(" \u00b7 ");
}

function announce(text) {
  if (!state.stroke) announceEl.textContent = text; // not every 400 ms while a stroke goes on
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

function article(noun) {
  return /^[aeiou]/i.test(noun || "") ? "an" : "a";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// parts: strings, or [string] for emphasis
function rich(node, parts) {
  node.replaceChildren(...parts.filter((p) => p !== "").map((p) => (Array.isArray(p) ? el("strong", "", p[0]) : p)));
}

// -- history: the last answers, one entry per drawing or photo ----------------------------------

function newSession() {
  state.session++;
  state.lastDigits = [];
  state.shown = "empty"; // the next "reading" shows no stale answer of another picture
}

function remember(entry) {
  const item = { session: state.session, ...entry };
  const at = state.history.findIndex((h) => h.session === item.session);
  if (at >= 0) state.history[at] = item; else state.history.unshift(item);
  state.history.length = Math.min(state.history.length, HISTORY_MAX);
  historyCard.hidden = false;
  historyEl.replaceChildren(...state.history.map((h) => {
    const li = document.createElement("li");
    if (h.rejected) li.className = "rejected";
    li.dataset.answer = h.answer;
    li.title = `${h.answer === "?" ? "no answer" : h.answer}: ${h.detail}`;
    li.setAttribute("aria-label", li.title);
    const img = el("img");
    img.alt = "";
    if (h.thumb) img.src = h.thumb;
    const text = el("span");
    text.append(el("span", "h-answer", h.answer), el("span", "h-pct", h.detail));
    li.append(img, text);
    return li;
  }));
}

// A small PNG of `source` (the canvas or the photo) cropped to its digits' boxes, with a margin.
function thumbnail(source, digits) {
  const w = source.naturalWidth || source.width, h = source.naturalHeight || source.height;
  if (!w || !h) return "";
  let [x0, y0, x1, y1] = [0, 0, w, h];
  if (digits.length) {
    x0 = Math.min(...digits.map((d) => d.box[0])); y0 = Math.min(...digits.map((d) => d.box[1]));
    x1 = Math.max(...digits.map((d) => d.box[2])); y1 = Math.max(...digits.map((d) => d.box[3]));
    const m = 0.15 * (y1 - y0);
    [x0, y0, x1, y1] = [Math.max(0, x0 - m), Math.max(0, y0 - m), Math.min(w, x1 + m), Math.min(h, y1 + m)];
  }
  const scale = 96 / Math.max(x1 - x0, y1 - y0);
  const c = document.createElement("canvas");
  c.width = Math.max(1, Math.round((x1 - x0) * scale));
  c.height = Math.max(1, Math.round((y1 - y0) * scale));
  c.getContext("2d").drawImage(source, x0, y0, x1 - x0, y1 - y0, 0, 0, c.width, c.height);
  return c.toDataURL("image/png");
}

// -- clearing, photos, models, modes -------------------------------------------------------------

function clearAll() {
  cancelPending();
  if (state.inflight) state.inflight.abort();
  state.inflight = null;
  state.seq++;
  dismissPhoto();
  resetCanvas();
  newSession();
  showEmpty();
}

function dismissPhoto() {
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photo = null;
  state.photoUrl = null;
  photoEl.hidden = true;
  photoEl.removeAttribute("src");
  photoBoxes.hidden = true;
}

function usePhoto(input) {
  const file = input.files && input.files[0];
  input.value = ""; // choosing the same file again fires change again
  if (!file) return;
  clearAll();
  state.photo = file;
  state.photoUrl = URL.createObjectURL(file);
  photoEl.src = state.photoUrl; // shown once it loads: a file the browser cannot show stays hidden
  sendNow();
}

function photoLoaded() {
  if (!state.photo) return;
  photoEl.hidden = false;
  padHint.hidden = true;
  photoBoxes.width = photoEl.naturalWidth;
  photoBoxes.height = photoEl.naturalHeight;
  photoBoxes.hidden = state.mode !== "number";
  if (state.mode === "number") drawBoxes(photoBoxes, state.lastDigits); // resizing cleared them
}

function currentModel() {
  return state.models[modelSelect.value] || null;
}

function nounOf(model) {
  if (!model) return "digit";
  return NOUNS[model.dataset] || (model.class_names.every((c) => /^\d$/.test(c)) ? "digit" : null);
}

async function loadModels() {
  const response = await api("/api/model");
  const body = await readJson(response);
  if (!response.ok || !body) throw apiError(response, body);
  state.models = {};
  modelSelect.replaceChildren(...body.models.map((m) => {
    state.models[m.name] = m;
    const option = el("option", "", m.dataset ? `${m.name} (${m.dataset})` : m.name);
    option.value = m.name;
    option.selected = m.name === body.default;
    return option;
  }));
  modelRow.hidden = body.models.length < 2;
  modelChanged();
}

function ensureModels() {
  if (!state.modelsLoaded) {
    state.modelsLoaded = loadModels().catch((err) => { state.modelsLoaded = null; throw err; });
  }
  return state.modelsLoaded;
}

function modelChanged() {
  const noun = nounOf(currentModel());
  const readsNumbers = noun === "digit";
  modeButtons.number.disabled = !readsNumbers;
  modeButtons.number.title = readsNumbers ? "" : "This model does not read digits";
  if (!readsNumbers && state.mode === "number") return setMode("digit");
  padHint.textContent = state.mode === "number" ? "Write a number here" : `Draw ${article(noun)} ${noun || "picture"} here`;
  pad.setAttribute("aria-label", state.mode === "number"
    ? "Drawing area: write a number, digits side by side, with a mouse, finger or pen. Press Escape to clear."
    : `Drawing area: draw one ${noun || "picture"} with a mouse, finger or pen. Press Escape to clear.`);
  if (card.dataset.state === "empty") showEmpty();
}

function setMode(mode) {
  if (mode === state.mode) return;
  state.mode = mode;
  main.dataset.mode = mode;
  for (const [name, button] of Object.entries(modeButtons)) button.setAttribute("aria-pressed", String(name === mode));
  for (const canvas of [pad, boxes]) {
    canvas.width = MODES[mode].width;
    canvas.height = MODES[mode].height;
  }
  clearAll();
  modelChanged();
}

pad.addEventListener("pointerdown", startStroke);
pad.addEventListener("pointermove", moveStroke);
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
$("clear").addEventListener("click", clearAll);
$("upload").addEventListener("change", (e) => usePhoto(e.target));
$("camera").addEventListener("change", (e) => usePhoto(e.target));
photoEl.addEventListener("load", photoLoaded);
modelSelect.addEventListener("change", () => {
  modelChanged();
  if (state.photo || state.hasInk) sendNow();
});
modeButtons.digit.addEventListener("click", () => setMode("digit"));
modeButtons.number.addEventListener("click", () => setMode("number"));
tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (token) settleToken(token);
});
$("token-cancel").addEventListener("click", () => settleToken(null));
tokenDialog.addEventListener("close", () => { // Escape closes the dialog too
  if (!tokenDialog.open) settleToken(null);     // (not a later dialog opened before this event arrived)
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented || tokenDialog.open) return;
  clearAll();
  pad.focus();
});

// the camera button where there is a camera to point: phones and tablets (elsewhere it is the file picker again)
$("camera-button").hidden = !(navigator.maxTouchPoints > 0 || matchMedia("(pointer: coarse)").matches);
resetCanvas();
showEmpty();
ensureModels().catch(showFailure);
