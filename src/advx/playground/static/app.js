// advx playground front end: vanilla JS, no dependencies, works offline.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const state = { info: null, classes: [], classesLoading: null, image: null, defImage: null, trImage: null };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(path, opts = {}) {
  const resp = await fetch(path, { credentials: "same-origin", ...opts });
  let body = null;
  try { body = await resp.json(); } catch (_e) { body = null; }
  if (!resp.ok) throw new Error((body && body.error) || `${resp.status} ${resp.statusText}`);
  return body;
}

function showError(box, message) {
  box.textContent = message || "";
  box.hidden = !message;
}

const pct = (p) => `${(100 * p).toFixed(1)}%`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Start a job, poll it, drive the progress bar and the cancel button; resolve with the result.
async function runJob(view, body, panel) {
  const run = $(".buttons .primary", panel), cancel = $(".buttons button:not(.primary)", panel);
  const prog = $(".progress", panel), bar = $("progress", prog), msg = $("span", prog);
  const err = $(".controls > .error", panel);
  showError(err, "");
  run.disabled = true; cancel.disabled = false; prog.hidden = false; bar.value = 0; msg.textContent = "starting";
  let id = null;
  cancel.onclick = async () => { if (id) { cancel.disabled = true; await api(`/api/jobs/${id}/cancel`, { method: "POST" }).catch(() => {}); } };
  try {
    id = (await api(`/api/run/${view}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).id;
    for (;;) {
      const job = await api(`/api/jobs/${id}`);
      bar.value = job.progress; msg.textContent = `${job.message}${job.seconds ? ` · ${job.seconds.toFixed(1)} s` : ""}`;
      if (job.state === "done") { job.result.id = id; return job.result; }
      if (job.state === "error" || job.state === "cancelled") throw new Error(job.state === "cancelled" ? `Stopped: ${job.error}` : job.error);
      await sleep(200);
    }
  } catch (e) {
    showError(err, e.message);
    return null;
  } finally {
    run.disabled = false; cancel.disabled = true; prog.hidden = true;
  }
}

function epsSlider(input, out) {
  const update = () => { out.textContent = `${input.value}/255`; };
  input.addEventListener("input", update); update();
}

// ----------------------------------------------------------------- galleries
async function fillGallery(box, modelKey, onPick, pick = 0) {
  box.replaceChildren(el("span", { class: "note", text: "loading…" }));
  try {
    const photos = await api(`/api/photos/${encodeURIComponent(modelKey)}`);
    box.replaceChildren();
    photos.forEach((p, i) => {
      const b = el("button", { class: "thumb", title: p.label, "data-photo": p.id }, el("img", { src: p.url, alt: p.label }), el("span", { text: p.label }));
      b.onclick = () => { $$(".thumb", box).forEach((t) => t.classList.remove("picked")); b.classList.add("picked"); onPick({ photo: p.id }); };
      box.append(b);
      if (i === Math.min(pick, photos.length - 1)) b.click();
    });
  } catch (e) {
    box.replaceChildren(el("span", { class: "error", text: e.message }));
  }
}

function modelsOf(modality, filter = () => true) {
  return state.info.models.filter((m) => m.modality === modality && filter(m));
}

function fillSelect(sel, items, value = (x) => x.key, label = (x) => x.label) {
  sel.replaceChildren(...items.map((x) => el("option", { value: value(x), text: label(x) })));
}

// ----------------------------------------------------------------- image tab
function topBars(box, top5, highlight) {
  box.replaceChildren(...top5.map((t) => el("div", { class: `bar${t.index === highlight ? " hit" : ""}` },
    el("span", { class: "name", text: t.name }),
    el("span", { class: "track" }, el("span", { class: "fill", style: `width:${(100 * t.p).toFixed(1)}%` })),
    el("span", { class: "p", text: pct(t.p) }))));
}

function statsRows(body, rows) {
  body.replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: v }))));
}

async function loadClasses(key) {
  try { state.classes = await api(`/api/classes/${encodeURIComponent(key)}`); } catch (_e) { state.classes = []; }
  $("#class-list").replaceChildren(...state.classes.map((c, i) => el("option", { value: c, "data-index": i })));
  const t = $("#target-class");
  const pick = state.classes.indexOf("ostrich") >= 0 ? "ostrich" : state.classes[Math.min(1, state.classes.length - 1)] || "";
  if (!state.classes.includes(t.value)) t.value = pick;
}

function attackChanged() {
  const a = $("#attack").value;
  $("#steps-field").hidden = !["pgd", "apgd-ce", "cw-l2"].includes(a);
  $("#queries-field").hidden = !["square", "hopskipjump"].includes(a);
}

async function imageModelChanged() {
  const key = $("#model").value;
  fillGallery($("#photos"), key, (img) => { state.image = img; });
  state.classesLoading = loadClasses(key);
  await state.classesLoading;
}

async function uploadFile(file) {
  const err = $("#upload-error");
  showError(err, "");
  const limit = state.info.limits.max_upload_bytes;
  if (file.size > limit) { showError(err, `the file is ${(file.size / 2 ** 20).toFixed(1)} MiB; the limit is ${(limit / 2 ** 20).toFixed(0)} MiB`); return; }
  try {
    const r = await api("/api/upload", { method: "POST", headers: { "content-type": "application/octet-stream" }, body: file });
    state.image = { upload: r.id };
    $$("#photos .thumb").forEach((t) => t.classList.remove("picked"));
    const url = URL.createObjectURL(file);
    const b = el("button", { class: "thumb picked", title: file.name }, el("img", { src: url, alt: file.name }), el("span", { text: "your image" }));
    b.onclick = () => { $$("#photos .thumb").forEach((t) => t.classList.remove("picked")); b.classList.add("picked"); state.image = { upload: r.id }; };
    $("#photos").prepend(b);
  } catch (e) {
    showError(err, `Upload refused: ${e.message}`);
  }
}

async function runImage() {
  const panel = $("#tab-image");
  const body = {
    model: $("#model").value, image: state.image, attack: $("#attack").value,
    eps_255: Number($("#eps").value), steps: Number($("#steps").value), max_queries: Number($("#queries").value),
  };
  if ($("#goal-targeted").checked) {
    if (!state.classes.length) await state.classesLoading;
    const idx = state.classes.indexOf($("#target-class").value.trim());
    if (idx < 0) { showError($(".controls > .error", panel), "pick the target class from the list"); return; }
    body.target = idx;
  }
  const r = await runJob("image", body, panel);
  if (!r) return;
  $("#image-results").hidden = false;
  $("#img-original").src = r.images.original;
  $("#img-perturbation").src = r.images.perturbation;
  $("#img-adversarial").src = r.images.adversarial;
  $("#factor").textContent = `(amplified ×${r.factor.toFixed(0)})`;
  $("#pred-before").textContent = `${r.before.name} (${pct(r.before.top5[0].p)})`;
  $("#pred-after").textContent = `${r.after.name} (${pct(r.after.top5[0].p)})`;
  $("#pred-after").className = r.fooled ? "fooled" : "held";
  topBars($("#top5-before"), r.before.top5, r.before.label);
  topBars($("#top5-after"), r.after.top5, r.target ? r.target.index : r.after.label);
  statsRows($("#image-stats"), [
    ["attack", `${r.attack_label}${r.targeted ? ` → ${r.target.name}` : " (untargeted)"}`],
    ["result", r.fooled ? (r.targeted ? `fooled: now says ${r.after.name}` : `fooled: ${r.before.name} → ${r.after.name}`) : "the model held"],
    ["L∞ distance", `${r.linf_255.toFixed(2)}/255 (budget ${r.eps_255}/255${r.attack === "cw-l2" ? ", not used by CW" : ""})`],
    ["L2 distance", r.l2.toFixed(4)],
    ["queries", String(r.queries)],
    ["time", `${r.seconds.toFixed(2)} s`],
  ]);
  $("#figure").href = `/api/jobs/${r.id}/figure.png`;
  const dl = $("#download");
  dl.href = `/api/jobs/${r.id}/adversarial.png`;
  dl.setAttribute("download", `adversarial-${r.after.name.replace(/[^a-z0-9]+/gi, "_")}.png`);
  $("#quant-note").textContent = `(8-bit PNG, exactly the tensor evaluated above; ${r.quantisation.message})`;
  $("#quant-note").className = r.quantisation.changed ? "note warn" : "note";
}

// ----------------------------------------------------------------- defense tab
function verdict(r) {
  if (r.rejected) return el("span", { class: "badge rejected", text: "rejected" });
  return el("span", { class: `badge ${r.fooled ? "fooled" : "held"}`, text: r.fooled ? "fooled" : "held" });
}

async function runDefense() {
  const panel = $("#tab-defense");
  const r = await runJob("defense", { image: state.defImage, attack: $("#def-attack").value, eps_255: Number($("#def-eps").value), steps: Number($("#def-steps").value) }, panel);
  if (!r) return;
  const out = $("#def-results");
  out.hidden = false;
  const rows = r.rows.map((x) => el("tr", {},
    el("td", {}, el("img", { src: x.image, class: "mini", alt: "adversarial" })),
    el("td", {}, el("b", { text: x.model }), el("br"), el("span", { class: "note", text: x.what })),
    el("td", { text: x.before.p == null ? x.before.name : `${x.before.name} (${pct(x.before.p)})` }),
    el("td", { text: x.after.p == null ? x.after.name : `${x.after.name} (${pct(x.after.p)})` }),
    el("td", {}, verdict(x)),
    el("td", { text: `${x.linf_255.toFixed(1)}/255` })));
  out.replaceChildren(
    el("p", {}, el("img", { src: r.original, class: "mini", alt: "original" }), ` ${r.attack} at eps ${r.eps_255}/255`),
    el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...["example", "model", "before", "after", "outcome", "L∞"].map((h) => el("th", { text: h })))), el("tbody", {}, ...rows)));
}

// ----------------------------------------------------------------- text tab
async function runText() {
  const panel = $("#tab-text");
  const r = await runJob("text", { model: $("#text-model").value, text: $("#text-input").value, recipe: $("#recipe").value, max_queries: Number($("#text-queries").value) }, panel);
  if (!r) return;
  $("#text-results").hidden = false;
  const orig = $("#text-original"), adv = $("#text-adversarial");
  orig.replaceChildren(); adv.replaceChildren();
  for (const s of r.segments) {
    if (!s.changed) { orig.append(s.old); adv.append(s.new); continue; }
    orig.append(el("del", { class: "edit-old", text: s.old }));
    adv.append(el("mark", { class: "edit", text: s.new }));
  }
  $("#text-before").textContent = `${r.before.name} (${pct(r.before.p)})`;
  $("#text-after").textContent = `${r.after.name} (${pct(r.after.p)})`;
  $("#text-after").className = `pred ${r.fooled ? "fooled" : "held"}`;
  statsRows($("#text-stats"), [
    ["result", r.fooled ? "fooled" : r.status === "skipped" ? "skipped" : "the model held"],
    ["words changed", `${r.words_changed} of ${r.num_words}`],
    ["queries", String(r.queries)],
    ["time", `${r.seconds.toFixed(2)} s`],
  ]);
}

// ----------------------------------------------------------------- transfer tab
async function runTransfer() {
  const panel = $("#tab-transfer");
  const r = await runJob("transfer", { model: $("#tr-model").value, image: state.trImage, attack: $("#tr-attack").value, eps_255: Number($("#tr-eps").value), steps: Number($("#tr-steps").value), n: Number($("#tr-n").value) }, panel);
  if (!r) return;
  const out = $("#tr-results");
  out.hidden = false;
  const rows = r.models.map((m) => el("tr", { class: m.source ? "source" : "" },
    el("td", { text: m.source ? `${m.model} (crafted here)` : `${m.model}${m.resized ? " (example resized to its input)" : ""}` }),
    el("td", { text: m.before }), el("td", { text: m.after }), el("td", {}, verdict(m)),
    el("td", { text: m.source ? (r.source_success == null ? "–" : pct(r.source_success)) : (r.rates[m.model] == null ? "–" : pct(r.rates[m.model])) })));
  out.replaceChildren(
    el("div", { class: "pair" }, el("figure", {}, el("img", { src: r.images.original, alt: "original" }), el("figcaption", { text: `original: ${r.label}` })),
      el("figure", {}, el("img", { src: r.images.adversarial, alt: "adversarial" }), el("figcaption", { text: `crafted on ${r.source}, ${r.attack} ${r.eps_255}/255` }))),
    el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...["model", "this example before", "after", "outcome", `fooled over ${r.n} examples`].map((h) => el("th", { text: h })))), el("tbody", {}, ...rows)));
}

// ----------------------------------------------------------------- robustness tab
const SVGNS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function curveChart(r) {
  const W = 420, H = 300, L = 50, B = 40, T = 20, R = 10;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": "accuracy vs eps" });
  const maxE = Math.max(...r.eps_255, 1);
  const X = (e) => L + (W - L - R) * e / maxE, Y = (a) => T + (H - T - B) * (1 - a);
  s.append(svg("line", { x1: L, y1: Y(0), x2: W - R, y2: Y(0), class: "axis" }), svg("line", { x1: L, y1: T, x2: L, y2: Y(0), class: "axis" }));
  for (const a of [0, 0.5, 1]) s.append(svg("text", { x: L - 6, y: Y(a) + 4, "text-anchor": "end" }, `${a * 100}%`));
  for (const e of r.eps_255) s.append(svg("text", { x: X(e), y: H - B + 16, "text-anchor": "middle" }, String(e)));
  s.append(svg("text", { x: (W + L) / 2, y: H - 4, "text-anchor": "middle" }, "eps (/255)"));
  r.curves.forEach((c, i) => {
    const pts = c.accuracy.map((a, j) => `${X(r.eps_255[j])},${Y(a)}`).join(" ");
    s.append(svg("polyline", { points: pts, fill: "none", stroke: PALETTE[i % 10], "stroke-width": 2 }));
    c.accuracy.forEach((a, j) => s.append(svg("circle", { cx: X(r.eps_255[j]), cy: Y(a), r: 3, fill: PALETTE[i % 10] })));
    s.append(svg("text", { x: W - R - 4, y: T + 14 * (i + 1), "text-anchor": "end", fill: PALETTE[i % 10] }, c.model));
  });
  return s;
}

function scatterChart(p) {
  const W = 420, H = 300, M = 20;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": "feature projection" });
  const xs = p.points.flatMap((q) => [q.clean[0], q.adv[0]]), ys = p.points.flatMap((q) => [q.clean[1], q.adv[1]]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const X = (v) => M + (W - 2 * M) * (v - x0) / (x1 - x0 || 1), Y = (v) => H - M - (H - 2 * M) * (v - y0) / (y1 - y0 || 1);
  for (const q of p.points) {
    const crossed = q.pred_adv !== q.pred_clean;
    s.append(svg("line", { x1: X(q.clean[0]), y1: Y(q.clean[1]), x2: X(q.adv[0]), y2: Y(q.adv[1]), class: crossed ? "move crossed" : "move" }));
    s.append(svg("circle", { cx: X(q.clean[0]), cy: Y(q.clean[1]), r: 3, fill: PALETTE[q.pred_clean % 10] }));
    const [ax, ay] = [X(q.adv[0]), Y(q.adv[1])];
    s.append(svg("polygon", { points: `${ax},${ay - 4} ${ax - 4},${ay + 3} ${ax + 4},${ay + 3}`, fill: PALETTE[q.pred_adv % 10] }));
  }
  s.append(svg("text", { x: M, y: 14 }, `${p.model}, penultimate layer, PCA · eps ${p.eps_255}/255 · colour = predicted class`));
  return s;
}

async function runRobustness() {
  const panel = $("#tab-robustness");
  const models = $$("#rb-models input:checked").map((c) => c.value);
  const r = await runJob("robustness", { models, attack: $("#rb-attack").value, max_eps_255: Number($("#rb-eps").value), n: Number($("#rb-n").value) }, panel);
  if (!r) return;
  $("#rb-results").hidden = false;
  $("#rb-curves").replaceChildren(el("h3", { text: `accuracy vs eps (${r.attack}, ${r.n} examples)` }), curveChart(r));
  const legend = el("p", { class: "note" }, ...r.projection.class_names.slice(0, 10).map((n, i) => el("span", { class: "key", style: `color:${PALETTE[i]}`, text: `■ ${n} ` })));
  $("#rb-scatter").replaceChildren(el("h3", { text: "clean ● → adversarial ▲" }), scatterChart(r.projection), legend);
}

// ----------------------------------------------------------------- start
async function main() {
  state.info = await api("/api/info");
  $("#version").textContent = state.info.version;
  $$("#tabs button").forEach((b) => b.addEventListener("click", () => {
    $$("#tabs button").forEach((x) => x.classList.toggle("active", x === b));
    $$(".tab").forEach((t) => t.classList.toggle("active", t.id === `tab-${b.dataset.tab}`));
  }));
  $("#eps").max = state.info.limits.max_eps_255;
  [["#eps", "#eps-out"], ["#def-eps", "#def-eps-out"], ["#tr-eps", "#tr-eps-out"], ["#rb-eps", "#rb-eps-out"]].forEach(([i, o]) => epsSlider($(i), $(o)));

  // image tab
  const images = modelsOf("image");
  const preferred = images.find((m) => m.dataset === "imagenet") || images[0];
  fillSelect($("#model"), images);
  if (preferred) $("#model").value = preferred.key;
  fillSelect($("#attack"), state.info.attacks, (a) => a.slug, (a) => a.label);
  $("#attack").value = "pgd";
  $("#attack").onchange = attackChanged; attackChanged();
  $("#model").onchange = imageModelChanged;
  $$("input[name=goal]").forEach((r) => { r.onchange = () => { $("#target-class").disabled = !$("#goal-targeted").checked; }; });
  $("#upload").onchange = (e) => { if (e.target.files.length) uploadFile(e.target.files[0]); };
  $("#run").onclick = runImage;
  if (preferred) imageModelChanged();

  // defense tab: the small dataset's examples
  const adv = images.find((m) => m.role === "adversarial");
  fillSelect($("#def-attack"), state.info.attacks.filter((a) => a.access === "gradients" && a.slug !== "cw-l2"), (a) => a.slug, (a) => a.label);
  $("#def-attack").value = "pgd";
  // the first test image happens to be one of the detector's 5% false positives (on
  // Fashion-MNIST and digits): start from the second, so the first run shows an attack
  if (adv) fillGallery($("#def-photos"), adv.key, (img) => { state.defImage = img; }, 1);
  if (adv && adv.dataset === "digits") { $("#def-eps").value = 51; $("#def-eps").dispatchEvent(new Event("input")); }
  $("#def-run").onclick = runDefense;

  // text tab
  fillSelect($("#text-model"), modelsOf("text"));
  fillSelect($("#recipe"), state.info.recipes, (r) => r.slug, (r) => `${r.slug} — ${r.summary}`);
  $("#recipe").value = "deepwordbug";
  $("#text-examples").onchange = (e) => { if (e.target.value) $("#text-input").value = e.target.value; };
  $("#text-run").onclick = runText;

  // transfer tab
  const sources = images.filter((m) => m.role !== "guarded");
  fillSelect($("#tr-model"), sources);
  if (preferred) $("#tr-model").value = preferred.key;
  const trChanged = () => fillGallery($("#tr-photos"), $("#tr-model").value, (img) => { state.trImage = img; });
  $("#tr-model").onchange = trChanged; if (sources.length) trChanged();
  $("#tr-run").onclick = runTransfer;

  // robustness tab: models grouped by dataset, the small dataset's plain + robust ones ticked
  const box = $("#rb-models");
  for (const m of images) {
    const tick = m.dataset === (adv || preferred).dataset && m.role !== "guarded";
    box.append(el("label", {}, Object.assign(el("input", { type: "checkbox", value: m.key, "data-dataset": m.dataset }), { checked: tick }), ` ${m.label}`));
  }
  box.addEventListener("change", (e) => {
    if (!e.target.checked) return;
    $$("input", box).forEach((c) => { if (c.dataset.dataset !== e.target.dataset.dataset) c.checked = false; });
  });
  $("#rb-run").onclick = runRobustness;
}

main().catch((e) => { document.body.prepend(el("div", { class: "error", text: `The playground could not start: ${e.message}` })); });
