// torchworks inpainting page: paint a mask over an image, send both to POST /api/inpaint, compare, download.
// Plain JS, no dependencies. The mask canvas has the image's natural size (one canvas pixel = one image pixel,
// so a stroke lands on the pixels under the pointer at any zoom); only its on-screen (CSS) size changes. The
// brush size is in image pixels. Strokes are stored as operations so undo/redo replays them (cheaper than
// keeping a bitmap per step for large photos).
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  fileImage: $("file-image"), fileMask: $("file-mask"), brush: $("tool-brush"), eraser: $("tool-eraser"),
  size: $("brush-size"), sizeValue: $("brush-size-value"), undo: $("undo"), redo: $("redo"), clear: $("clear"),
  showMask: $("show-mask"), method: $("method"), dilate: $("dilate"), feather: $("feather"), run: $("run"),
  useResult: $("use-result"), download: $("download"), stage: $("stage"), placeholder: $("placeholder"),
  view: $("view"), before: $("img-before"), after: $("img-after"), divider: $("divider"), canvas: $("mask"),
  compareBox: $("compare-box"), compare: $("compare"), busy: $("busy"), status: $("status"),
  cursor: $("brush-cursor"), variationsBox: $("variations-box"), samples: $("samples"), seed: $("seed"),
  variations: $("variations"), progress: $("progress"),
};
const ctx = ui.canvas.getContext("2d");
const MASK_COLOR = "rgb(255, 0, 80)";
const BRUSH_SCREEN_PX = 30;  // the brush a new image starts with, in screen pixels at its display zoom

const state = {
  image: null,        // {blob, name, width, height}: what Run sends (the original file bytes, never re-encoded)
  result: null,       // Blob (PNG) of the last run
  ops: [],            // mask operations: {type: "stroke"|"clear"|"bitmap", ...}
  cursor: 0,          // ops[0..cursor) are applied; the rest can be redone
  stroke: null,       // the stroke being drawn
  erase: false,
  limits: null,       // from GET /health
  busy: false,
  zoom: 1,            // screen (CSS) pixels per image pixel, set by layout()
  urls: {},           // object URLs to revoke when replaced
  methods: new Map(), // name -> {kind, description, pluralistic} from GET /api/methods
  maxSamples: 8,      // most variations one request may ask for (GET /api/methods)
  variations: [],     // [{seed, seconds, blob, url, figure}] of the last variations run
};

function setStatus(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle("error", isError);
}

function adoptUrl(key, url) {  // the object URL shown as `key`; the one it replaces is released
  if (state.urls[key]) URL.revokeObjectURL(state.urls[key]);
  state.urls[key] = url;
  return url;
}

function setUrl(key, blob) { return adoptUrl(key, blob ? URL.createObjectURL(blob) : null); }

function loadImg(img, url) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot display this file as an image"));
    img.src = url;
  });
}

// Decodes a file off-screen; only a file that decodes replaces what is shown. Resolves to {img, url}, the caller
// owning the object URL; rejects with a message saying why the file was refused.
async function decodeFile(file) {
  const url = URL.createObjectURL(file);
  const img = new Image();
  try {
    await loadImg(img, url);
    if (img.decode) await img.decode();
    if (!img.naturalWidth || !img.naturalHeight) throw new Error("empty");
    return {img, url};
  } catch {
    URL.revokeObjectURL(url);
    throw new Error(`the browser cannot open it as an image${file.type ? ` (${file.type})` : ""}`);
  }
}

// ---- methods and limits ----------------------------------------------------------------------------------

async function loadMethods() {
  try {
    const [methods, health] = await Promise.all([
      fetch("/api/methods").then((r) => r.json()), fetch("/health").then((r) => r.json())]);
    state.limits = health.limits;
    fillMethods(ui.method, methods);
    for (const m of methods.methods) state.methods.set(m.name, m);
    if (methods.max_samples) state.maxSamples = methods.max_samples;
    ui.samples.max = state.maxSamples;
    showVariationsControl();
    setStatus("Open an image to start.");
  } catch (err) {
    setStatus(`Cannot reach the server: ${err.message}`, true);
  }
  updateButtons();
}

// The server's order is the ranking (best for photos first, the default first): kept as is, grouped by kind in
// the order the kinds first appear.
const KIND_LABELS = {classical: "Classical", learned: "Learned", baseline: "Baselines"};

function fillMethods(select, methods) {
  const groups = new Map();
  for (const m of methods.methods) {
    if (!groups.has(m.kind)) {
      const group = document.createElement("optgroup");
      group.label = KIND_LABELS[m.kind] || m.kind;
      groups.set(m.kind, group);
      select.appendChild(group);
    }
    const option = new Option(m.name, m.name, false, m.name === methods.default);
    option.title = m.description;
    groups.get(m.kind).appendChild(option);
  }
}

// ---- opening images and masks ----------------------------------------------------------------------------

async function openImage(file) {
  if (!file) return;
  if (state.limits && file.size > state.limits.max_upload_bytes) {
    setStatus(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the server accepts at most ` +
      `${(state.limits.max_upload_bytes / 2 ** 20).toFixed(1)} MB (image and mask together).`, true);
    return;
  }
  let decoded;
  try {
    decoded = await decodeFile(file);
  } catch (err) {
    const kept = state.image ? `; ${state.image.name} stays open` : "";
    setStatus(`${file.name}: ${err.message}${kept}.`, true);
    return;
  }
  await loadImg(ui.before, adoptUrl("before", decoded.url));  // decoded already: only the shown URL changes
  const name = (file.name || "image").replace(/\.[^.]*$/, "");
  setImage({blob: file, name, width: decoded.img.naturalWidth, height: decoded.img.naturalHeight});
  setStatus(`${file.name}: ${state.image.width}x${state.image.height}. Paint over what should disappear.`);
}

function setImage(image) {
  const sameSize = state.image && state.image.width === image.width && state.image.height === image.height;
  state.image = image;
  ui.canvas.width = image.width;
  ui.canvas.height = image.height;
  state.ops = [];
  state.cursor = 0;
  ui.placeholder.hidden = true;
  ui.view.hidden = false;
  showCompare(false);
  clearVariations();
  ui.showMask.checked = true;
  applyMaskVisibility();
  layout();
  if (!sameSize) fitBrush();  // "Run again on result" keeps the user's brush
  redraw();
}

// ---- display size ----------------------------------------------------------------------------------------

// Large images are fitted into the stage. Small ones (a 64x64 face) are enlarged by a whole number of device
// pixels per image pixel and drawn pixelated, so each image pixel is a sharp square: at least half the stage.
function layout() {
  if (!state.image || ui.view.hidden) return;
  const {width, height} = state.image;
  const css = getComputedStyle(ui.stage);
  const availW = ui.stage.clientWidth - parseFloat(css.paddingLeft) - parseFloat(css.paddingRight);
  const availH = ui.stage.clientHeight - parseFloat(css.paddingTop) - parseFloat(css.paddingBottom);
  const fit = Math.min(availW / width, availH / height);
  const dpr = window.devicePixelRatio || 1;
  state.zoom = fit >= 2 ? Math.floor(fit * dpr) / dpr : Math.min(1, fit);
  ui.view.style.width = `${width * state.zoom}px`;
  ui.view.style.height = `${height * state.zoom}px`;
  ui.view.classList.toggle("pixelated", state.zoom > 1);
  sizeCursor();
}

function fitBrush() {  // the slider is in image pixels: its range and start value follow the image
  const {width, height} = state.image;
  const max = Math.max(16, Math.ceil(Math.max(width, height) / 2));
  ui.size.max = max;
  ui.size.value = Math.max(1, Math.min(max, Math.round(BRUSH_SCREEN_PX / state.zoom)));
  showSize();
}

function showSize() {
  ui.sizeValue.textContent = `${ui.size.value} px`;
  sizeCursor();
}

function sizeCursor() {  // the brush outline, drawn at the size the stroke will have on screen
  const d = Number(ui.size.value) / scale();
  ui.cursor.style.width = ui.cursor.style.height = `${d}px`;
}

function moveCursor(event) {
  const rect = ui.view.getBoundingClientRect();
  ui.cursor.style.left = `${event.clientX - rect.left}px`;
  ui.cursor.style.top = `${event.clientY - rect.top}px`;
  ui.cursor.hidden = false;
}

async function openMask(file) {
  if (!file || !state.image) return;
  let img;
  try {
    const decoded = await decodeFile(file);
    img = decoded.img;
    adoptUrl("mask", decoded.url);
  } catch (err) {
    setStatus(`${file.name}: ${err.message}; the painted mask is kept.`, true);
    return;
  }
  const {width, height} = state.image;
  if (img.naturalWidth !== width || img.naturalHeight !== height) {
    setStatus(`The mask is ${img.naturalWidth}x${img.naturalHeight} but the image is ${width}x${height}.`, true);
    return;
  }
  // Same rule as the server: white/non-zero colour = hole; an all-black mask with alpha uses its alpha.
  const tmp = new OffscreenCanvas(width, height);
  const tctx = tmp.getContext("2d");
  tctx.drawImage(img, 0, 0);
  const px = tctx.getImageData(0, 0, width, height);
  const d = px.data;
  let anyColour = false;
  for (let i = 0; i < d.length && !anyColour; i += 4) anyColour = d[i] > 0 || d[i + 1] > 0 || d[i + 2] > 0;
  for (let i = 0; i < d.length; i += 4) {
    const level = anyColour ? Math.max(d[i], d[i + 1], d[i + 2]) : d[i + 3];
    const hole = level > 127;
    d[i] = 255; d[i + 1] = 0; d[i + 2] = 80; d[i + 3] = hole ? 255 : 0;
  }
  tctx.putImageData(px, 0, 0);
  pushOp({type: "bitmap", bitmap: tmp});
  setStatus(`Mask ${file.name} loaded (it replaces the painted mask; Undo brings that back).`);
}

// ---- painting, undo, redo --------------------------------------------------------------------------------

function scale() {  // image pixels per screen pixel
  const rect = ui.canvas.getBoundingClientRect();
  return rect.width ? ui.canvas.width / rect.width : 1;
}

function toImage(event) {
  const rect = ui.canvas.getBoundingClientRect();
  const s = scale();
  return [(event.clientX - rect.left) * s, (event.clientY - rect.top) * s];
}

function drawOp(op) {
  if (op.type === "clear") {
    ctx.clearRect(0, 0, ui.canvas.width, ui.canvas.height);
  } else if (op.type === "bitmap") {
    ctx.clearRect(0, 0, ui.canvas.width, ui.canvas.height);
    ctx.drawImage(op.bitmap, 0, 0);
  } else if (op.type === "stroke") {
    drawStroke(op, 0);
  }
}

function drawStroke(op, from) {
  ctx.save();
  ctx.globalCompositeOperation = op.erase ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = MASK_COLOR;
  ctx.lineWidth = op.width;
  ctx.lineCap = ctx.lineJoin = "round";
  const p = op.points;
  if (p.length === 1) {
    ctx.beginPath();
    ctx.arc(p[0][0], p[0][1], op.width / 2, 0, 2 * Math.PI);
    ctx.fill();
  } else {
    ctx.beginPath();
    ctx.moveTo(...p[Math.max(from - 1, 0)]);
    for (let i = Math.max(from, 1); i < p.length; i++) ctx.lineTo(...p[i]);
    ctx.stroke();
  }
  ctx.restore();
}

function redraw() {
  ctx.clearRect(0, 0, ui.canvas.width, ui.canvas.height);
  state.ops.slice(0, state.cursor).forEach(drawOp);
  if (state.zoom > 1) binarize();
  updateButtons();
}

// Enlarged images show every pixel, so the overlay shows the mask exactly as it is sent: any coverage of a
// pixel (an anti-aliased stroke edge) makes it a hole. Only done for images smaller than the stage (cheap).
function binarize() {
  const px = ctx.getImageData(0, 0, ui.canvas.width, ui.canvas.height);
  const d = px.data;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) { d[i - 3] = 255; d[i - 2] = 0; d[i - 1] = 80; d[i] = 255; }
  ctx.putImageData(px, 0, 0);
}

function pushOp(op) {
  state.ops = state.ops.slice(0, state.cursor);
  state.ops.push(op);
  state.cursor = state.ops.length;
  redraw();
}

function undo() { if (state.cursor > 0) { state.cursor--; redraw(); } }
function redo() { if (state.cursor < state.ops.length) { state.cursor++; redraw(); } }

ui.canvas.addEventListener("pointerdown", (event) => {
  if (!state.image || event.button !== 0) return;
  ui.canvas.setPointerCapture(event.pointerId);
  if (!ui.showMask.checked) { ui.showMask.checked = true; applyMaskVisibility(); }
  state.stroke = {type: "stroke", erase: state.erase, width: Number(ui.size.value), points: [toImage(event)]};
  drawStroke(state.stroke, 0);
});
ui.canvas.addEventListener("pointermove", (event) => {
  moveCursor(event);
  if (!state.stroke) return;
  state.stroke.points.push(toImage(event));
  drawStroke(state.stroke, state.stroke.points.length - 1);
});
function endStroke() {
  if (!state.stroke) return;
  const op = state.stroke;
  state.stroke = null;
  pushOp(op);
}
ui.canvas.addEventListener("pointerup", endStroke);
ui.canvas.addEventListener("pointercancel", endStroke);
ui.canvas.addEventListener("pointerenter", moveCursor);
ui.canvas.addEventListener("pointerleave", () => { ui.cursor.hidden = true; });

function setTool(erase) {
  state.erase = erase;
  ui.brush.classList.toggle("active", !erase);
  ui.eraser.classList.toggle("active", erase);
}

function applyMaskVisibility() { ui.canvas.classList.toggle("hidden-mask", !ui.showMask.checked); }

// ---- running ---------------------------------------------------------------------------------------------

function maskBlob() {  // white = hole, black = keep; null when nothing is painted
  const {width, height} = ui.canvas;
  const src = ctx.getImageData(0, 0, width, height).data;
  const out = new ImageData(width, height);
  const d = out.data;
  let holes = 0;
  for (let i = 0; i < src.length; i += 4) {
    const v = src[i + 3] > 0 ? 255 : 0;  // anti-aliased stroke edges count as hole: better too much than a fringe
    holes += v ? 1 : 0;
    d[i] = d[i + 1] = d[i + 2] = v;
    d[i + 3] = 255;
  }
  if (!holes) return Promise.resolve(null);
  const tmp = new OffscreenCanvas(width, height);
  tmp.getContext("2d").putImageData(out, 0, 0);
  return tmp.convertToBlob({type: "image/png"});
}

async function errorText(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function post(path, form) {  // the response, or null once the status bar says why the server refused
  const response = await fetch(path, {method: "POST", body: form});
  if (response.ok) return response;
  const prefix = response.status === 503 ? "Server busy, retry in a moment: " : `Error ${response.status}: `;
  setStatus(prefix + await errorText(response), true);
  return null;
}

function requestForm(mask) {
  const form = new FormData();
  form.append("image", state.image.blob, state.image.blob.name || `${state.image.name}.png`);
  form.append("mask", mask, "mask.png");
  form.append("method", ui.method.value);
  if (ui.dilate.value !== "") form.append("dilate", ui.dilate.value);
  if (ui.feather.checked) form.append("feather", "true");
  return form;
}

function isPluralistic() { return Boolean((state.methods.get(ui.method.value) || {}).pluralistic); }

async function run() {
  if (!state.image || state.busy) return;
  const mask = await maskBlob();
  if (!mask) { setStatus("Paint over the part to remove first (or upload a mask).", true); return; }
  if (isPluralistic()) { await runVariations(mask); return; }
  const form = requestForm(mask);
  setBusy(true);
  setStatus(`Running ${ui.method.value}…`);
  try {
    const response = await post("/api/inpaint", form);
    if (!response) return;
    await showResult(await response.blob());
    const seconds = Number(response.headers.get("X-Inpaint-Seconds") || 0).toFixed(2);
    setStatus(`Done with ${ui.method.value} in ${seconds} s. Drag the slider to compare.`);
  } catch (err) {
    setStatus(`Request failed: ${err.message}`, true);
  } finally {
    setBusy(false);
  }
}

async function showResult(blob) {  // the current result: compared with the input, downloadable
  state.result = blob;
  await loadImg(ui.after, setUrl("after", blob));
  ui.download.href = state.urls.after;
  ui.download.download = `${state.image.name}_inpainted.png`;
  ui.showMask.checked = false;
  applyMaskVisibility();
  showCompare(true);
}

// ---- variations (pluralistic methods) ---------------------------------------------------------------------

function showVariationsControl() {  // only a method that draws its fill offers variations
  ui.variationsBox.hidden = !isPluralistic();
  ui.samples.disabled = ui.seed.disabled = !isPluralistic();
  ui.run.textContent = isPluralistic() ? "Run variations" : "Run";
}

function clearVariations() {
  for (const v of state.variations) URL.revokeObjectURL(v.url);
  state.variations = [];
  ui.variations.textContent = "";  // removes the thumbnails
  ui.variations.hidden = true;
}

function readWhole(input, label, min, max) {  // the integer in a number box, or null after saying what is wrong
  const text = input.value.trim();
  const value = Number(text);
  if (text === "" || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Infinity ? `a whole number` : `a whole number from ${min} to ${max}`;
    setStatus(`${label} must be ${range}, got ${text === "" ? "nothing" : `"${text}"`}.`, true);
    return null;
  }
  return value;
}

async function* ndjsonLines(response) {  // parsed lines of a streamed NDJSON body, as they arrive
  if (!response.body || !response.body.getReader) {
    for (const line of (await response.text()).split("\n")) if (line.trim()) yield JSON.parse(line);
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), {stream: !done});
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 1);
      if (line.trim()) yield JSON.parse(line);
    }
    if (done) break;
  }
  if (buffer.trim()) yield JSON.parse(buffer);
}

function pngBlob(base64) {
  const bytes = atob(base64);
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes.charCodeAt(i);
  return new Blob([out], {type: "image/png"});
}

function showProgress(done, total) {
  ui.progress.hidden = !total;
  ui.progress.max = total || 1;
  ui.progress.value = done || 0;
}

function addVariation(event) {
  const blob = pngBlob(event.png);
  const v = {seed: event.seed, seconds: event.seconds, blob, url: URL.createObjectURL(blob)};
  const figure = document.createElement("figure");
  figure.className = "variation";
  const img = document.createElement("img");
  img.src = v.url;
  img.alt = `variation with seed ${v.seed}`;
  img.title = "keep this one";
  const caption = document.createElement("figcaption");
  const label = document.createElement("span");
  label.textContent = `seed ${v.seed}`;
  const keep = document.createElement("button");
  keep.textContent = "Keep";
  keep.title = `make the fill of seed ${v.seed} the result`;
  caption.append(label, keep);
  figure.append(img, caption);
  v.figure = figure;
  img.addEventListener("click", () => keepVariation(v));
  keep.addEventListener("click", () => keepVariation(v));
  state.variations.push(v);
  ui.variations.appendChild(figure);
  ui.variations.hidden = false;
}

async function keepVariation(v) {  // the chosen fill becomes the result, as a single Run's would
  if (state.busy) return;
  for (const other of state.variations) other.figure.classList.toggle("kept", other === v);
  await showResult(v.blob);  // its own object URL: the strip keeps showing the thumbnail
  setStatus(`Kept the fill of seed ${v.seed}: download it, or run again on it.`);
}

async function runVariations(mask) {
  const samples = readWhole(ui.samples, "Variations", 1, state.maxSamples);
  if (samples === null) return;
  const seed = readWhole(ui.seed, "Seed", -Infinity, Infinity);
  if (seed === null) return;
  const form = requestForm(mask);
  form.append("samples", String(samples));
  form.append("seed", String(seed));
  clearVariations();
  setBusy(true);
  showProgress(0, 1);
  setStatus(`Running ${ui.method.value}: ${samples} variation${samples > 1 ? "s" : ""}…`);
  try {
    const response = await post("/api/variations", form);
    if (!response) return;
    for await (const event of ndjsonLines(response)) {
      if (event.event === "progress") {
        showProgress(event.done, event.total);
        setStatus(`Running ${ui.method.value}: variation ${state.variations.length + 1} of ${samples}, ` +
          `transformer ${Math.round(100 * event.done / event.total)} %…`);
      } else if (event.event === "variation") {
        showProgress(event.done, event.total);
        addVariation(event);
      } else if (event.event === "error") {
        setStatus(`Error ${event.status}: ${event.detail}`, true);
        return;
      } else if (event.event === "done") {
        setStatus(`${event.samples} variation${event.samples > 1 ? "s" : ""} of ${ui.method.value} in ` +
          `${Number(event.seconds).toFixed(2)} s (seeds ${seed}-${seed + event.samples - 1}): click one to keep it.`);
      }
    }
  } catch (err) {
    setStatus(`Request failed: ${err.message}`, true);
  } finally {
    showProgress(0, 0);
    setBusy(false);
  }
}

function useResult() {
  if (!state.result) return;
  const name = state.image.name;
  ui.before.src = setUrl("before", state.result);
  const blob = new File([state.result], `${name}.png`, {type: "image/png"});
  state.result = null;
  setImage({blob, name, width: ui.canvas.width, height: ui.canvas.height});
  setStatus("The result is now the input: paint what to fix next.");
}

function setBusy(busy) {
  state.busy = busy;
  ui.busy.hidden = !busy;
  updateButtons();
}

function showCompare(on) {
  ui.after.hidden = ui.divider.hidden = ui.compareBox.hidden = !on;
  if (on) updateCompare();
  updateButtons();
}

function updateCompare() {  // "after" on the left of the divider, "before" on the right
  const v = Number(ui.compare.value);
  ui.after.style.clipPath = `inset(0 ${100 - v}% 0 0)`;
  ui.divider.style.left = `calc(${v}% - 1px)`;
}

function updateButtons() {
  const has = Boolean(state.image);
  ui.undo.disabled = !has || state.cursor === 0;
  ui.redo.disabled = !has || state.cursor >= state.ops.length;
  ui.clear.disabled = !has || state.cursor === 0;
  ui.run.disabled = !has || state.busy || !ui.method.value;
  ui.useResult.disabled = !state.result || state.busy;
  ui.download.classList.toggle("disabled", !state.result);
}

// ---- wiring ----------------------------------------------------------------------------------------------

ui.fileImage.addEventListener("change", () => { openImage(ui.fileImage.files[0]); ui.fileImage.value = ""; });
ui.fileMask.addEventListener("change", () => { openMask(ui.fileMask.files[0]); ui.fileMask.value = ""; });
ui.brush.addEventListener("click", () => setTool(false));
ui.eraser.addEventListener("click", () => setTool(true));
ui.size.addEventListener("input", showSize);
ui.undo.addEventListener("click", undo);
ui.redo.addEventListener("click", redo);
ui.clear.addEventListener("click", () => { if (state.cursor) pushOp({type: "clear"}); });
ui.showMask.addEventListener("change", applyMaskVisibility);
ui.run.addEventListener("click", run);
ui.method.addEventListener("change", showVariationsControl);
ui.useResult.addEventListener("click", useResult);
ui.compare.addEventListener("input", updateCompare);

ui.stage.addEventListener("dragover", (event) => { event.preventDefault(); ui.stage.classList.add("dragging"); });
ui.stage.addEventListener("dragleave", () => ui.stage.classList.remove("dragging"));
ui.stage.addEventListener("drop", (event) => {
  event.preventDefault();
  ui.stage.classList.remove("dragging");
  const file = [...event.dataTransfer.files].find((f) => f.type.startsWith("image/"));
  if (file) openImage(file); else setStatus("Drop an image file (PNG, JPEG, WebP, ...).", true);
});

document.addEventListener("keydown", (event) => {
  if (event.target.matches("input[type=number], select")) return;
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (mod && key === "z") { event.preventDefault(); if (event.shiftKey) redo(); else undo(); }
  else if (mod && key === "y") { event.preventDefault(); redo(); }
  else if (mod && key === "enter") { event.preventDefault(); run(); }
  else if (!mod && key === "b") setTool(false);
  else if (!mod && key === "e") setTool(true);
  else if (!mod && (key === "[" || key === "]")) {
    const size = Number(ui.size.value);
    const step = Math.max(1, Math.round(size * 0.2));
    ui.size.value = size + (key === "]" ? step : -step);
    showSize();
  }
});

new ResizeObserver(layout).observe(ui.stage);

loadMethods();
