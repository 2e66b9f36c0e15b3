// mfif web page: choose frames, start a fusion job, follow its progress, then compare (wipe),
// retouch (brush strokes sent to the server in full-resolution pixels) and download.
"use strict";

const $ = (id) => document.getElementById(id);
const EXTENSIONS = [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"];
const state = { files: [], methods: [], job: null, version: 0, zoom: false, drawing: null };

// ---- helpers ------------------------------------------------------------------------------
function showError(text) {
  const el = $("error");
  el.textContent = text || "";
  el.hidden = !text;
}

function setState(name) {
  document.body.dataset.state = name;
}

function humanSize(bytes) {
  if (bytes < 1e6) return (bytes / 1e3).toFixed(0) + " kB";
  return (bytes / 1e6).toFixed(1) + " MB";
}

async function api(path, options) {
  const res = await fetch(path, options);
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

function jobUrl(tail, query) {
  const q = new URLSearchParams(query || {});
  return `/api/jobs/${encodeURIComponent(state.job.id)}/${tail}` + (q.toString() ? "?" + q : "");
}

// ---- choosing frames ------------------------------------------------------------------------
function setFiles(list) {
  const byName = (a, b) => a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: "base" });
  state.files = Array.from(list).filter((f) => EXTENSIONS.some((e) => f.name.toLowerCase().endsWith(e))).sort(byName);
  const skipped = list.length - state.files.length;
  const ol = $("filelist");
  ol.replaceChildren(...state.files.map((f) => {
    const li = document.createElement("li");
    li.textContent = f.name + " ";
    const s = document.createElement("span");
    s.className = "size";
    s.textContent = humanSize(f.size);
    li.append(s);
    return li;
  }));
  showError(skipped ? `${skipped} file(s) skipped: not ${EXTENSIONS.join(", ")}` :
    state.files.length === 1 && !oneTiff() ? "Choose at least two frames (or one multi-page TIFF)." : "");
  $("start").disabled = !canStart();
}

// One TIFF may be a z-stack whose pages are the frames: the server reads its pages and says
// so if it has only one.
function oneTiff() {
  return state.files.length === 1 && /\.tiff?$/i.test(state.files[0].name);
}

function canStart() {
  return state.files.length >= 2 || oneTiff();
}

function setupDrop() {
  const drop = $("drop");
  $("files").addEventListener("change", (e) => setFiles(e.target.files));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    setFiles(e.dataTransfer.files);
  });
}

// ---- methods --------------------------------------------------------------------------------
async function loadMethods() {
  const info = await api("/api/methods");
  state.methods = info.methods;
  const sel = $("method");
  sel.replaceChildren(...info.methods.map((m) => {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = m.name + (m.name === info.default ? " (default)" : "");
    return o;
  }));
  sel.value = info.default;
  sel.addEventListener("change", methodChanged);
  methodChanged();
}

function methodChanged() {
  const m = state.methods.find((x) => x.name === $("method").value);
  if (!m) return;
  $("method-help").textContent = m.summary + (m.has_decision ? "" : " (no depth map)");
  const depth = $("depth");
  depth.disabled = !m.has_decision;
  if (!m.has_decision) depth.checked = false;
}

// ---- running a job --------------------------------------------------------------------------
function setProgress(fraction, text) {
  $("progress-box").hidden = false;
  $("progress").value = fraction;
  $("progress-text").textContent = text;
}

function upload(form) {
  // XMLHttpRequest rather than fetch: it reports upload progress
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) setProgress(0, `uploading ${Math.round((100 * e.loaded) / e.total)} %`);
    };
    xhr.onload = () => {
      const body = xhr.response;
      if (xhr.status === 202 && body && body.id) resolve(body);
      else reject(new Error((body && body.error) || `upload failed (${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("upload failed: the server cannot be reached"));
    xhr.send(form);
  });
}

async function start() {
  showError("");
  $("result").hidden = true;
  $("start").disabled = true;
  setState("uploading");
  const form = new FormData();
  state.files.forEach((f) => form.append("files", f, f.name));
  form.append("method", $("method").value);
  form.append("align", $("align").checked ? "true" : "false");
  form.append("depth_map", $("depth").checked ? "true" : "false");
  try {
    state.job = await upload(form);
    const job = await follow(state.job.id);
    state.job = job;
    if (job.state === "failed") throw new Error(job.error);
    showResult(job);
  } catch (err) {
    setState("failed");
    showError(err.message);
    $("progress-box").hidden = true;
  } finally {
    $("start").disabled = !canStart();
  }
}

const STAGES = { align: "aligning frames", read: "reading frames", fuse: "fusing" };

async function follow(id) {
  for (;;) {
    const job = await api(`/api/jobs/${encodeURIComponent(id)}`);
    setState(job.state);
    const label = job.state === "queued" ? "waiting for the worker" : (STAGES[job.stage] || job.state);
    setProgress(job.progress, `${label} · ${Math.round(100 * job.progress)} %`);
    if (job.state === "done" || job.state === "failed") return job;
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---- result viewer --------------------------------------------------------------------------
function frameOptions(select, names, chosen) {
  select.replaceChildren(...names.map((n, i) => {
    const o = document.createElement("option");
    o.value = String(i);
    o.textContent = `${i}: ${n}`;
    return o;
  }));
  select.value = String(chosen);
}

function showResult(job) {
  state.version = job.version;
  $("result").hidden = false;
  frameOptions($("compare"), job.names, 0);
  frameOptions($("brush-frame"), job.names, 0);
  $("view-depth").disabled = !(job.depth_map && job.has_depth);
  if ($("view-depth").disabled) document.querySelector('input[name="view"][value="fused"]').checked = true;
  ["dl-depth", "dl-depth-preview"].forEach((id) => { $(id).hidden = $("view-depth").disabled; });
  const bits = job.dtype === "uint16" ? "16-bit" : job.dtype === "float32" ? "32-bit float" : "8-bit";
  $("size").textContent = `${job.width} × ${job.height} px, ${job.frames} frames, ${bits}, ` +
    `${job.method}${job.align ? ", aligned" : ""}, fused in ${job.seconds.toFixed(2)} s`;
  const paint = $("paint");
  const scale = Math.min(1, 4096 / Math.max(job.width, job.height));  // brush preview canvas, not the result
  paint.width = Math.round(job.width * scale);
  paint.height = Math.round(job.height * scale);
  paint.dataset.scale = String(scale);
  $("before").src = jobUrl(`frames/${$("compare").value}`, { preview: 1 });
  refreshImages();
  updateStrokes(job);
  setWipe();
}

function refreshImages() {
  const view = document.querySelector('input[name="view"]:checked').value;
  const v = { preview: 1, v: state.version };
  const base = $("base");
  base.onload = () => {
    base.dataset.version = String(state.version);
    const ctx = $("paint").getContext("2d");
    ctx.clearRect(0, 0, $("paint").width, $("paint").height);
  };
  base.src = jobUrl(view === "depth" ? "depth" : "fused", v);
  $("dl-png").href = jobUrl("fused", { format: "png", v: state.version });
  $("dl-tif").href = jobUrl("fused", { format: "tif", v: state.version });
  $("dl-depth").href = jobUrl("depth", { format: "png", v: state.version });
  $("dl-depth-preview").href = jobUrl("depth", { preview: 1, v: state.version });
  $("dl-depth-preview").download = "depth-preview.png";
}

function setWipe() {
  const x = Number($("wipe").value);
  $("before-wrap").style.clipPath = `inset(0 ${100 - x}% 0 0)`;
  $("wipe-line").style.left = `${x}%`;
  const names = state.job ? state.job.names : [];
  $("wipe-left").textContent = `frame ${$("compare").value}` + (names.length ? `: ${names[Number($("compare").value)]}` : "");
  $("wipe-right").textContent = document.querySelector('input[name="view"]:checked').value === "depth" ? "depth map" : "fused";
}

function toggleZoom() {
  state.zoom = !state.zoom;
  $("viewport").classList.toggle("actual", state.zoom);
  $("zoom").setAttribute("aria-pressed", String(state.zoom));
  $("zoom").textContent = state.zoom ? "Fit to window" : "Zoom 100 %";
}

// ---- retouching -----------------------------------------------------------------------------
function toImage(e) {
  // pointer position in full-resolution image pixels
  const r = $("paint").getBoundingClientRect();
  return [((e.clientX - r.left) / r.width) * state.job.width, ((e.clientY - r.top) / r.height) * state.job.height];
}

function drawSegment(a, b) {
  const paint = $("paint");
  const s = Number(paint.dataset.scale);
  const ctx = paint.getContext("2d");
  ctx.strokeStyle = "rgba(255, 80, 80, 0.55)";
  ctx.fillStyle = ctx.strokeStyle;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = 2 * Number($("radius").value) * s;
  ctx.beginPath();
  ctx.moveTo(a[0] * s, a[1] * s);
  ctx.lineTo(b[0] * s, b[1] * s);
  ctx.stroke();
}

function setupBrush() {
  const paint = $("paint");
  paint.addEventListener("pointerdown", (e) => {
    if (!$("brush").checked || !state.job) return;
    e.preventDefault();
    paint.setPointerCapture(e.pointerId);
    const p = toImage(e);
    state.drawing = [p];
    drawSegment(p, p);
  });
  paint.addEventListener("pointermove", (e) => {
    if (!state.drawing) return;
    const p = toImage(e);
    drawSegment(state.drawing[state.drawing.length - 1], p);
    state.drawing.push(p);
  });
  const finish = async () => {
    if (!state.drawing) return;
    const points = state.drawing.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
    state.drawing = null;
    await send("retouch", { frame: Number($("brush-frame").value), radius: Number($("radius").value), points });
  };
  paint.addEventListener("pointerup", finish);
  paint.addEventListener("pointercancel", finish);
  $("brush").addEventListener("change", () => $("stage").classList.toggle("painting", $("brush").checked));
  $("radius").addEventListener("input", () => { $("radius-out").textContent = `${$("radius").value} px`; });
  $("undo").addEventListener("click", () => send("undo", null));
}

async function send(what, body) {
  try {
    setState("retouching");
    const job = await api(jobUrl(what), {
      method: "POST",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    state.job = job;
    state.version = job.version;
    updateStrokes(job);
    refreshImages();
    setState("done");
  } catch (err) {
    setState("done");
    showError(err.message);
  }
}

function updateStrokes(job) {
  $("strokes").textContent = job.strokes ? `${job.strokes} stroke${job.strokes > 1 ? "s" : ""}` : "no strokes";
  $("undo").disabled = !job.strokes;
}

// ---- wiring ---------------------------------------------------------------------------------
function init() {
  setupDrop();
  setupBrush();
  $("start").addEventListener("click", start);
  $("wipe").addEventListener("input", setWipe);
  $("compare").addEventListener("change", () => {
    $("before").src = jobUrl(`frames/${$("compare").value}`, { preview: 1 });
    setWipe();
  });
  document.querySelectorAll('input[name="view"]').forEach((r) => r.addEventListener("change", () => {
    refreshImages();
    setWipe();
  }));
  $("zoom").addEventListener("click", toggleZoom);
  loadMethods().catch((err) => showError(`cannot list the methods: ${err.message}`));
}

document.addEventListener("DOMContentLoaded", init);
