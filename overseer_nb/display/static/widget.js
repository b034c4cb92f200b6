// The live graph of an overseer_nb run (anywidget front end).
//
// The kernel sends the laid-out SVG (trait `svg`) and then only state changes
// (custom messages {kind: "states"}); this view sets `data-state` on the node
// <g> elements, found once per picture (a Map job -> <g>), and widget.css
// colours them. A big graph's quick picture is replaced once, by Graphviz's
// layout: the view keeps every state it was sent and colours the new picture
// with them. User actions go to the kernel as messages.

const BIG = 1000; // jobs: above, a picture without animation
const BUTTONS = { retry_failed: "Retry failed", cancel: "Cancel", retry: "Retry subtree", rerun: "Rerun from here", abort: "Abort" };

// Views of a run alive in this page, per run id: while one lives, the static
// picture saved with the output (for readers without a kernel) is hidden.
const liveViews = new Map();

function hideStaticPicture(runId) {
  const count = (liveViews.get(runId) || 0) + 1;
  liveViews.set(runId, count);
  if (count === 1) {
    const style = document.createElement("style");
    style.dataset.overseerHide = runId;
    // JupyterLab and Notebook 7 show image/svg+xml as <img src="data:...">, URL-encoded
    const marker = encodeURIComponent(`overseer-static-${runId}`).replace(/"/g, '\\"');
    style.textContent =
      `.jp-OutputArea-child:has(img[src*="${marker}"]) { display: none; }\n` +
      `img[src*="${marker}"] { display: none; }`;
    document.head.appendChild(style);
  }
  return () => {
    const left = (liveViews.get(runId) || 1) - 1;
    liveViews.set(runId, left);
    if (left === 0) {
      liveViews.delete(runId);
      for (const s of document.head.querySelectorAll("style[data-overseer-hide]")) {
        if (s.dataset.overseerHide === runId) s.remove();
      }
    }
  };
}

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function fmtSeconds(s) {
  if (s == null) return "—";
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60), sec = Math.floor(s % 60);
  if (m < 60) return `${m} min ${sec} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function fmtClock(epoch) {
  if (epoch == null) return "—";
  return new Date(epoch * 1000).toLocaleTimeString();
}

function render({ model, el }) {
  const viewId = Math.random().toString(36).slice(2);
  const runId = model.get("run_id");
  const labels = Object.assign({}, BUTTONS, model.get("labels") || {});
  el.classList.add("overseer-graph");
  // thousands of nodes: no fill transitions or pulse, each would repaint the whole picture every frame
  el.classList.toggle("ov-big", (model.get("total") || 0) > BIG);
  el.dataset.run = runId;

  const title = h("span", { class: "ov-title", text: `Run ${runId}` });
  const counts = h("span", { class: "ov-counts" });
  const elapsed = h("span", { class: "ov-elapsed" });
  const retryFailed = h("button", { class: "ov-button ov-retry-failed", type: "button", "data-action": "retry_failed", text: labels.retry_failed });
  const cancel = h("button", { class: "ov-button ov-cancel", type: "button", "data-action": "cancel", text: labels.cancel });
  const header = h("div", { class: "ov-header" }, title, counts, elapsed, h("span", { class: "ov-buttons" }, retryFailed, cancel));
  const bar = h("div", { class: "ov-progress-bar" });
  const barText = h("span", { class: "ov-progress-text" });
  const progress = h("div", { class: "ov-progress", role: "progressbar", "aria-valuemin": "0" }, bar, barText);
  const message = h("div", { class: "ov-message", role: "status" });
  const note = h("div", { class: "ov-note", role: "status" });
  const layoutNote = h("div", { class: "ov-layout-note" });
  const canvas = h("div", { class: "ov-canvas" });
  const panel = h("div", { class: "ov-panel", hidden: "" });
  const legend = h("div", { class: "ov-legend" });
  el.append(header, progress, message, note, layoutNote, h("div", { class: "ov-body" }, canvas, panel), legend);
  legend.innerHTML = model.get("legend") || "";

  let nodes = new Map(); // job -> its node <g> in the picture shown
  const states = new Map(); // job -> display state: all the kernel sent, to colour a new picture
  let selected = null;
  let previewed = []; // jobs whose nodes carry ov-preview
  let hovering = null; // {action, job} of the button under the pointer
  let elapsedAt = performance.now();

  function paint(job, state) {
    const g = nodes.get(job);
    if (g && g.getAttribute("data-state") !== state) g.setAttribute("data-state", state);
  }

  // the picture: inserted once (twice for a big graph), its node <g> elements indexed once each time
  function showPicture() {
    // a big picture's labels come one frame after its boxes: the first frame shows sooner
    const later = el.classList.contains("ov-big");
    canvas.classList.toggle("ov-labels-later", later);
    canvas.innerHTML = model.get("svg") || "";
    if (later) requestAnimationFrame(() => setTimeout(() => canvas.classList.remove("ov-labels-later"), 0));
    nodes = new Map();
    for (const g of canvas.querySelectorAll("g[data-job]")) nodes.set(g.getAttribute("data-job"), g);
    for (const [job, state] of states) paint(job, state);
    if (selected) nodes.get(selected)?.classList.add("ov-selected");
    for (const job of previewed) nodes.get(job)?.classList.add("ov-preview");
    showLayout();
  }

  function showLayout() {
    const layout = model.get("layout") || "";
    el.dataset.layout = layout;
    const n = (model.get("total") || 0).toLocaleString();
    layoutNote.textContent = layout !== "layered" ? ""
      : model.get("layout_pending") ? `Quick layered picture of ${n} jobs; the Graphviz layout follows.`
        : `Layered picture of ${n} jobs (too big for a Graphviz layout).`;
    layoutNote.hidden = !layoutNote.textContent;
  }

  function applyStates(changes) {
    for (const job in changes) {
      const state = changes[job];
      states.set(job, state);
      paint(job, state);
    }
    if (selected && Object.prototype.hasOwnProperty.call(changes, selected)) askDetails();
  }

  function showHeader() {
    const c = model.get("counts") || {};
    const total = model.get("total") || 0;
    counts.replaceChildren(
      ...Object.entries(c).map(([state, n]) =>
        h("span", { class: "ov-chip", "data-state": state, title: state },
          h("span", { class: "ov-swatch", "data-state": state }), `${n} ${state}`)),
    );
    const done = c.finished || 0;
    const pct = total ? (100 * done) / total : 0;
    bar.style.width = `${pct}%`;
    progress.setAttribute("aria-valuemax", String(total));
    progress.setAttribute("aria-valuenow", String(done));
    barText.textContent = `${done} / ${total} finished`;
    message.textContent = model.get("message") || "";
    message.hidden = !message.textContent;
    el.classList.toggle("ov-running", !!model.get("running"));
    const bad = (c.failed || 0) + (c.aborted || 0);
    retryFailed.disabled = bad === 0;
    cancel.disabled = !model.get("running");
    showElapsed();
  }

  function showElapsed() {
    let s = model.get("elapsed") || 0;
    if (model.get("running")) s += (performance.now() - elapsedAt) / 1000;
    elapsed.textContent = `${model.get("running") ? "running" : "done"} · ${fmtSeconds(s)}`;
  }

  // -- selection and the job panel ---------------------------------------------------------
  function select(job) {
    if (selected && nodes.get(selected)) nodes.get(selected).classList.remove("ov-selected");
    selected = job;
    if (!job) {
      panel.hidden = true;
      return;
    }
    nodes.get(job)?.classList.add("ov-selected");
    panel.hidden = false;
    panel.replaceChildren(h("div", { class: "ov-panel-title", text: job }), h("div", { text: "loading…" }));
    askDetails();
  }

  function askDetails() {
    model.send({ kind: "select", view: viewId, job: selected });
  }

  function section(label, text, cls) {
    if (!text) return null;
    return h("details", { class: `ov-section ${cls}`, open: "" }, h("summary", { text: label }), h("pre", { text }));
  }

  function showDetails(d) {
    const rows = d.attempts.map((a) =>
      h("tr", {}, h("td", { text: String(a.number) }), h("td", { text: a.engine || "—" }),
        h("td", { text: fmtClock(a.start) }), h("td", { text: fmtSeconds(a.duration) }),
        h("td", { text: a.outcome })));
    const table = rows.length
      ? h("table", { class: "ov-attempts" },
        h("thead", {}, h("tr", {}, ...["#", "engine", "start", "duration", "outcome"].map((t) => h("th", { text: t })))),
        h("tbody", {}, ...rows))
      : h("div", { class: "ov-muted", text: "no attempt yet" });
    const buttons = ["retry", "rerun", "abort"].map((action) => {
      const b = h("button", { class: `ov-button ov-${action}`, type: "button", "data-action": action, "data-job": d.job, text: labels[action] });
      b.disabled = !d.can[action];
      return b;
    });
    const close = h("button", { class: "ov-close", type: "button", title: "close", "aria-label": "close", text: "×" });
    close.addEventListener("click", () => select(null));
    panel.replaceChildren(...[
      h("div", { class: "ov-panel-head" }, h("span", { class: "ov-panel-title", text: d.job }), close),
      h("div", { class: "ov-status" },
        h("span", { class: "ov-chip", "data-state": d.display_state },
          h("span", { class: "ov-swatch", "data-state": d.display_state }), d.display_state),
        ` status: ${d.status}`),
      d.message ? h("div", { class: "ov-job-message", text: d.message }) : null,
      h("div", { class: "ov-panel-buttons" }, ...buttons),
      table,
      section("traceback", d.traceback, "ov-traceback"),
      section("stdout (tail)", d.stdout, "ov-stdout"),
      section("stderr (tail)", d.stderr, "ov-stderr"),
      d.result ? h("div", { class: "ov-result" }, h("span", { class: "ov-muted", text: "result: " }), h("code", { text: d.result })) : null,
    ].filter((c) => c != null));
  }

  // -- previews and actions ------------------------------------------------------------------
  function clearPreview() {
    el.classList.remove("ov-previewing");
    for (const job of previewed) nodes.get(job)?.classList.remove("ov-preview");
    previewed = [];
  }

  function showPreview(jobs) {
    clearPreview();
    el.classList.add("ov-previewing");
    previewed = jobs;
    for (const job of jobs) nodes.get(job)?.classList.add("ov-preview");
  }

  function buttonOf(event) {
    const b = event.target.closest && event.target.closest("button[data-action]");
    return b && el.contains(b) ? b : null;
  }

  function onEnter(event) {
    const b = buttonOf(event);
    if (!b) return;
    hovering = { action: b.dataset.action, job: b.dataset.job || null };
    model.send({ kind: "preview", view: viewId, ...hovering });
  }

  function onLeave(event) {
    const b = buttonOf(event);
    if (!b || (event.relatedTarget && b.contains(event.relatedTarget))) return;
    hovering = null;
    clearPreview();
    note.textContent = "";
  }

  function onClick(event) {
    const b = buttonOf(event);
    if (b) {
      if (b.disabled) return;
      note.textContent = `${b.textContent}…`;
      model.send({ kind: "action", view: viewId, action: b.dataset.action, job: b.dataset.job || null });
      return;
    }
    const g = event.target.closest && event.target.closest("g[data-job]");
    if (g && canvas.contains(g)) select(g.getAttribute("data-job"));
  }

  el.addEventListener("pointerover", onEnter);
  el.addEventListener("pointerout", onLeave);
  el.addEventListener("focusin", onEnter);
  el.addEventListener("focusout", onLeave);
  el.addEventListener("click", onClick);

  function onCustom(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.kind === "states") return applyStates(msg.states);
    if (msg.kind === "snapshot") return applyStates(msg.states);
    if (msg.view !== viewId) return; // a reply to another view of the same run
    if (msg.kind === "details") {
      if (msg.job === selected) showDetails(msg.details);
    } else if (msg.kind === "preview") {
      if (hovering && hovering.action === msg.action && (hovering.job || null) === (msg.job || null)) {
        showPreview(msg.jobs);
        note.textContent = msg.jobs.length
          ? `${labels[msg.action]}: ${msg.jobs.length} job${msg.jobs.length === 1 ? "" : "s"} (${msg.jobs.slice(0, 8).join(", ")}${msg.jobs.length > 8 ? ", …" : ""})`
          : `${labels[msg.action]}: nothing to do`;
      }
    } else if (msg.kind === "done") {
      clearPreview();
      note.textContent = `${labels[msg.action]}: ${msg.jobs.length} job${msg.jobs.length === 1 ? "" : "s"}`;
      if (selected) askDetails();
    } else if (msg.kind === "error") {
      if (msg.for === "preview") clearPreview();
      note.textContent = msg.error;
      note.classList.add("ov-error");
      setTimeout(() => note.classList.remove("ov-error"), 4000);
    }
  }

  function onHeader() {
    elapsedAt = performance.now();
    showHeader();
  }

  model.on("msg:custom", onCustom);
  for (const name of ["counts", "message", "running", "elapsed", "total"]) model.on(`change:${name}`, onHeader);
  model.on("change:svg", showPicture);
  model.on("change:layout_pending", showLayout);
  const timer = setInterval(() => model.get("running") && showElapsed(), 1000);
  const unhide = hideStaticPicture(runId);
  showPicture();
  showHeader();
  model.send({ kind: "hello", view: viewId }); // all states now, not only changes from here on

  return () => {
    clearInterval(timer);
    unhide();
    model.off("msg:custom", onCustom);
    for (const name of ["counts", "message", "running", "elapsed", "total"]) model.off(`change:${name}`, onHeader);
    model.off("change:svg", showPicture);
    model.off("change:layout_pending", showLayout);
  };
}

export default { render };
