// The live graph of an overseer_nb run (anywidget front end).
//
// The kernel sends the laid-out SVG (trait `svg`) and then only state changes
// (custom messages {kind: "states"}); this view sets `data-state` on the node
// <g> elements, found once per picture (a Map job -> <g>), and widget.css
// colours them. A big graph's quick picture is replaced once, by Graphviz's
// layout: the view keeps every state it was sent and colours the new picture
// with them. User actions go to the kernel as messages.
//
// A mapped job type is one node (class overseer-mapped). The kernel sends its
// items' display states counted ({kind: "states", items: {type: {state: n}}});
// this view writes `done/total` in the node's text.ov-items-count, one
// rect.ov-seg per state in its bar (rect.ov-items-track), and data-items="N" on
// its <g>. Its panel lists the items a page at a time.

const BIG = 1000; // nodes: above, a picture without animation
// the bar, left to right (display/mapped.py BAR_STATES), and its smallest segment
const BAR_STATES = ["finished", "cached", "failed", "aborted", "started", "retrying", "requeued", "blocked", "unstarted"];
const MIN_SEGMENT = 1.5;
const INSET = 1.0; // white between the track's outline and its segments (display/mapped.py INSET)
const LIST_REFRESH = 1000; // ms: an open list of items is asked for again at most this often
const HOVER_DELAY = 300; // ms the pointer rests on an unstarted node before the kernel is asked why it waits
const WHY_FRESH = 2000; // ms an answer is reused for the same node in the same state
const WAITING = new Set(["unstarted", "blocked", "retrying", "requeued"]); // display states of unstarted jobs
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

// the cell of a notebook with execution count `n` ([n]: in its prompt), in the notebook holding `el`
function cellOf(el, n) {
  const scope = el.closest(".jp-Notebook") || document;
  for (const prompt of scope.querySelectorAll(".jp-InputPrompt")) {
    if (prompt.textContent.trim() === `[${n}]:`) return prompt.closest(".jp-Cell");
  }
  return null;
}

// scroll the notebook to cell In[n] and outline it a moment (JupyterLab, Notebook 7); false if it is not there
function showCell(el, n) {
  const cell = cellOf(el, n);
  if (!cell) return false;
  cell.scrollIntoView({ block: "center" });
  const before = cell.style.outline;
  cell.style.outline = "2px solid var(--jp-brand-color1, #1976d2)";
  setTimeout(() => { cell.style.outline = before; }, 1500);
  return true;
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

// "train[3]" -> "train": the node of an item is its type's
function typeOf(job) {
  return job == null ? job : job.replace(/\[\d+\]$/, "");
}

// [state, x, width] of a bar of `width` from `x` (display/mapped.py segments)
function segments(counts, x, width) {
  const total = BAR_STATES.reduce((n, s) => n + (counts[s] || 0), 0);
  if (total <= 0 || width <= 0) return [];
  const widths = new Map();
  for (const s of BAR_STATES) if ((counts[s] || 0) > 0) widths.set(s, (width * counts[s]) / total);
  const small = [...widths].filter(([, w]) => w < MIN_SEGMENT).map(([s]) => s);
  if (small.length && small.length < widths.size) {
    let widest = null;
    for (const [s, w] of widths) if (widest === null || w > widths.get(widest)) widest = s;
    widths.set(widest, widths.get(widest) - small.reduce((n, s) => n + (MIN_SEGMENT - widths.get(s)), 0));
    for (const s of small) widths.set(s, MIN_SEGMENT);
  }
  const found = [];
  let at = x;
  for (const s of BAR_STATES) {
    if (!widths.has(s)) continue;
    const w = Math.max(0, widths.get(s));
    found.push([s, at, w]);
    at += w;
  }
  return found;
}

function render({ model, el }) {
  const viewId = Math.random().toString(36).slice(2);
  const runId = model.get("run_id");
  const labels = Object.assign({}, BUTTONS, model.get("labels") || {});
  el.classList.add("overseer-graph");
  // thousands of nodes: no fill transitions or pulse, each would repaint the whole picture every frame
  el.classList.toggle("ov-big", (model.get("nodes") || model.get("total") || 0) > BIG);
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
  const tip = h("div", { class: "ov-tooltip", role: "tooltip", hidden: "" });
  el.append(header, progress, message, note, layoutNote, h("div", { class: "ov-body" }, canvas, panel), legend, tip);
  legend.innerHTML = model.get("legend") || "";

  let nodes = new Map(); // job -> its node <g> in the picture shown
  const states = new Map(); // job -> display state: all the kernel sent, to colour a new picture
  const items = new Map(); // mapped type -> {state: items} (null: not known yet), as the kernel sent
  let bars = new Map(); // mapped type -> {g, text, track, segments} in the picture shown, found once per picture
  let selected = null;
  let list = { state: null, offset: 0 }; // the page of items the panel of a mapped type shows
  let askedAt = 0; // when the open panel was last asked for (performance.now())
  let askTimer = null;
  let previewed = []; // jobs whose nodes carry ov-preview
  let hovering = null; // {action, job} of the button under the pointer
  let elapsedAt = performance.now();

  function paint(job, state) {
    const g = nodes.get(job);
    if (g && g.getAttribute("data-state") !== state) g.setAttribute("data-state", state);
  }

  function nodeOf(job) {
    return nodes.get(job) || nodes.get(typeOf(job));
  }

  // a mapped node: done/total, data-items and the bar's segments
  function paintItems(job) {
    const bar = bars.get(job);
    if (!bar) return;
    const { g, text, track } = bar;
    const counts = items.get(job);
    for (const old of bar.segments) old.remove();
    bar.segments = [];
    if (counts == null) {
      g.removeAttribute("data-items");
      if (text) text.textContent = "";
      return;
    }
    const n = Object.values(counts).reduce((a, b) => a + b, 0);
    g.setAttribute("data-items", String(n));
    if (text) text.textContent = `${(counts.finished || 0) + (counts.cached || 0)}/${n}`;
    if (!track) return;
    const x = parseFloat(track.getAttribute("x")), w = parseFloat(track.getAttribute("width"));
    const y = parseFloat(track.getAttribute("y")), height = parseFloat(track.getAttribute("height"));
    let after = track;
    for (const [state, sx, sw] of segments(counts, x + INSET, w - 2 * INSET)) {
      const r = document.createElementNS(track.namespaceURI, "rect");
      r.setAttribute("class", "ov-seg");
      r.setAttribute("data-state", state);
      r.setAttribute("x", sx.toFixed(2));
      r.setAttribute("y", (y + INSET).toFixed(2));
      r.setAttribute("width", sw.toFixed(2));
      r.setAttribute("height", String(height - 2 * INSET));
      after.after(r);
      after = r;
      bar.segments.push(r);
    }
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
    bars = new Map();
    for (const job of model.get("mapped") || []) {
      const g = nodes.get(job);
      if (g) bars.set(job, { g, text: g.querySelector("text.ov-items-count"), track: g.querySelector("rect.ov-items-track"),
        segments: [...g.querySelectorAll("rect.ov-seg")] });
    }
    for (const [job, state] of states) paint(job, state);
    for (const job of items.keys()) paintItems(job);
    if (selected) nodeOf(selected)?.classList.add("ov-selected");
    for (const job of previewed) nodes.get(job)?.classList.add("ov-preview");
    showLayout();
  }

  function showLayout() {
    const layout = model.get("layout") || "";
    el.dataset.layout = layout;
    const n = (model.get("nodes") || model.get("total") || 0).toLocaleString();
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
  }

  function applyItems(counts) {
    for (const job in counts) {
      items.set(job, counts[job]);
      paintItems(job);
    }
  }

  // a states (or snapshot) message: nodes, bars, and the open panel if what it shows changed
  function onStates(changes, counts) {
    changes = changes || {};
    counts = counts || {};
    applyStates(changes);
    applyItems(counts);
    if (!selected) return;
    const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
    const kind = typeOf(selected);
    if (kind !== selected || items.has(selected)) {
      // a mapped type or an item: its list changes with every item, so it is asked for at most once a second
      if (has(counts, kind) || has(changes, kind)) askSoon();
    } else if (has(changes, selected)) askDetails();
  }

  function showHeader() {
    const c = model.get("counts") || {};
    const total = model.get("total") || 0;
    counts.replaceChildren(
      ...Object.entries(c).map(([state, n]) =>
        h("span", { class: "ov-chip", "data-state": state, title: state },
          h("span", { class: "ov-swatch", "data-state": state }), `${n} ${state}`)),
    );
    const done = (c.finished || 0) + (c.cached || 0);  // a reused job is done too
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
    if (selected) nodeOf(selected)?.classList.remove("ov-selected");
    if (typeOf(job) !== typeOf(selected)) list = { state: null, offset: 0 }; // an item and its type share one list
    selected = job;
    if (!job) {
      panel.hidden = true;
      return;
    }
    nodeOf(job)?.classList.add("ov-selected");
    panel.hidden = false;
    panel.replaceChildren(h("div", { class: "ov-panel-title", text: job }), h("div", { text: "loading…" }));
    askDetails();
  }

  function askDetails() {
    clearTimeout(askTimer);
    askTimer = null;
    askedAt = performance.now();
    model.send({ kind: "select", view: viewId, job: selected, state: list.state, offset: list.offset });
  }

  // while the pointer is over the panel its list is not redrawn under it (a click would miss): later
  let inPanel = false, stale = false;
  function askSoon() {
    if (inPanel) {
      stale = true;
      return;
    }
    if (askTimer) return;
    const wait = Math.max(0, askedAt + LIST_REFRESH - performance.now());
    askTimer = setTimeout(() => { askTimer = null; if (selected) askDetails(); }, wait);
  }
  panel.addEventListener("pointerenter", () => { inPanel = true; });
  panel.addEventListener("pointerleave", () => {
    inPanel = false;
    if (stale) {
      stale = false;
      askSoon();
    }
  });

  function section(label, text, cls) {
    if (!text) return null;
    return h("details", { class: `ov-section ${cls}`, open: "" }, h("summary", { text: label }), h("pre", { text }));
  }

  // a location the user can click to see its cell, where the page is a notebook that has it
  function jumpTo(node, count) {
    if (count == null || !el.closest(".jp-Notebook")) return node;
    node.classList.add("ov-jump");
    node.dataset.cell = String(count);
    node.setAttribute("role", "link");
    node.setAttribute("tabindex", "0");
    node.title = `show cell In[${count}]`;
    return node;
  }

  // the traceback, its text as sent: the failing line of each frame (IPython's ---->) and each frame's place marked
  function tracebackSection(text) {
    if (!text) return null;
    const pre = h("pre", {});
    for (const line of text.split("\n")) {
      let cls = null, cell = null;
      if (/^-*> ?\d+( |$)/.test(line)) cls = "ov-tb-here";
      else if (/^(Cell In\[\d+\]|File ".*"), line \d+/.test(line)) {
        cls = "ov-tb-where";
        const m = /^Cell In\[(\d+)\]/.exec(line);
        if (m) cell = Number(m[1]);
      }
      const span = h("span", cls ? { class: cls } : {}, line);
      pre.append(cls === "ov-tb-where" ? jumpTo(span, cell) : span, "\n");
    }
    if (pre.lastChild) pre.lastChild.remove(); // the text's own last line break stays the only one
    return h("details", { class: "ov-section ov-traceback", open: "" }, h("summary", { text: "traceback" }), pre);
  }

  function whereLine(d) {
    if (!d.where) return null;
    return jumpTo(h("div", { class: "ov-where", text: d.where.text }), d.where.cell);
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
    let back = null;
    if (d.item_of) {
      back = h("button", { class: "ov-back", type: "button", "data-back": d.item_of, text: `← all items of ${d.item_of}` });
      back.addEventListener("click", () => select(d.item_of));
    }
    panel.classList.toggle("ov-wide", !!d.mapped);
    panel.replaceChildren(...[
      back,
      h("div", { class: "ov-panel-head" }, h("span", { class: "ov-panel-title", text: d.job }), close),
      h("div", { class: "ov-status" },
        h("span", { class: "ov-chip", "data-state": d.display_state },
          h("span", { class: "ov-swatch", "data-state": d.display_state }), d.display_state),
        ` status: ${d.status}`),
      d.message ? h("div", { class: "ov-job-message", text: d.message }) : null,
      d.explain ? h("div", { class: "ov-explain", text: d.explain }) : null,
      d.why ? h("div", { class: "ov-why", text: d.why }) : null,
      whereLine(d),
      d.changed ? h("div", { class: "ov-changed", role: "note", text: d.changed }) : null,
      h("div", { class: "ov-panel-buttons" }, ...buttons),
      d.mapped ? itemList(d.job, d.items) : table,
      tracebackSection(d.traceback),
      section("stdout (tail)", d.stdout, "ov-stdout"),
      section("stderr (tail)", d.stderr, "ov-stderr"),
      d.result ? h("div", { class: "ov-result" }, h("span", { class: "ov-muted", text: "result: " }), h("code", { text: d.result })) : null,
    ].filter((c) => c != null));
  }

  // the items of a mapped type: a filter per state, a page of rows (failed first), a pager
  function itemList(job, page) {
    if (!page.known) {
      return h("div", { class: "ov-items-list ov-muted", text: `items not known yet: one job per item of ${page.over}'s result, once it finished` });
    }
    const filters = [["", `all ${page.total.toLocaleString()}`], ...BAR_STATES.filter((s) => page.counts[s]).map((s) => [s, `${page.counts[s].toLocaleString()} ${s}`])]
      .map(([state, text]) => {
        const b = h("button", { class: "ov-filter", type: "button", "data-filter": state, "aria-pressed": String((page.state || "") === state) },
          state ? h("span", { class: "ov-swatch", "data-state": state }) : null, text);
        b.addEventListener("click", () => { list = { state: state || null, offset: 0 }; askDetails(); });
        return b;
      });
    const rows = page.rows.map((r) => {
      const buttons = [["retry", "Retry"], ["rerun", "Rerun"]].map(([action, text]) => {
        const b = h("button", { class: `ov-button ov-item-${action}`, type: "button", "data-action": action, "data-job": r.job,
          title: `${labels[action]}: ${r.job}`, "aria-label": `${text} ${r.job}`, text });
        b.disabled = !r.can[action];
        return b;
      });
      return h("tr", { "data-job": r.job, "data-state": r.state, tabindex: "0" },
        h("td", { class: "ov-item-name", text: r.job }),
        h("td", {}, h("span", { class: "ov-chip", "data-state": r.state }, h("span", { class: "ov-swatch", "data-state": r.state }), r.state)),
        h("td", { class: "ov-num", text: String(r.attempts) }),
        h("td", { class: "ov-num", text: r.duration == null ? "—" : fmtSeconds(r.duration) + (r.running ? "…" : "") }),
        h("td", { class: "ov-item-error", title: r.error, text: r.error }),
        h("td", { class: "ov-item-buttons" }, ...buttons));
    });
    const first = page.matching ? page.offset + 1 : 0, last = page.offset + page.rows.length;
    const left = page.matching - page.rows.length;
    const pager = h("div", { class: "ov-pager" },
      h("span", { class: "ov-muted", text: `items ${first.toLocaleString()}–${last.toLocaleString()} of ${page.matching.toLocaleString()}` +
        (page.state ? ` ${page.state}` : " (failed first)") + (left > 0 ? `; ${left.toLocaleString()} not shown` : "") }));
    for (const [text, offset, cls] of [["‹ previous", page.offset - page.limit, "ov-prev"], ["next ›", page.offset + page.limit, "ov-next"]]) {
      if (offset < 0 || offset >= page.matching) continue;
      const b = h("button", { class: `ov-page ${cls}`, type: "button", "data-offset": String(offset), text });
      b.addEventListener("click", () => { list = { state: page.state, offset }; askDetails(); });
      pager.append(b);
    }
    const head = h("thead", {}, h("tr", {}, ...["item", "state", "attempts", "duration", "error", ""].map((t) => h("th", { text: t }))));
    return h("div", { class: "ov-items-list" },
      h("div", { class: "ov-filters" }, ...filters),
      rows.length ? h("table", { class: "ov-items-table" }, head, h("tbody", {}, ...rows))
        : h("div", { class: "ov-muted", text: page.total ? "no item in this state" : "no items: the list it maps over was empty" }),
      pager);
  }

  // -- previews and actions ------------------------------------------------------------------
  function clearPreview() {
    el.classList.remove("ov-previewing");
    for (const job of previewed) nodes.get(job)?.classList.remove("ov-preview");
    for (const row of panel.querySelectorAll("tr.ov-preview")) row.classList.remove("ov-preview");
    previewed = [];
  }

  // the nodes of what a button would run again glow (an item's: its type's); so do listed items
  function showPreview(msg) {
    clearPreview();
    el.classList.add("ov-previewing");
    previewed = msg.nodes || [...new Set(msg.jobs.map(typeOf))];
    for (const job of previewed) nodes.get(job)?.classList.add("ov-preview");
    const jobs = new Set(msg.jobs);
    for (const row of panel.querySelectorAll("tr[data-job]")) if (jobs.has(row.dataset.job)) row.classList.add("ov-preview");
  }

  function jobsText(msg) {
    const n = msg.count ?? msg.jobs.length;
    return `${n.toLocaleString()} job${n === 1 ? "" : "s"} (${msg.jobs.slice(0, 8).join(", ")}${n > 8 ? ", …" : ""})`;
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
    const jump = event.target.closest && event.target.closest(".ov-jump");
    if (jump && el.contains(jump)) return void showCell(el, Number(jump.dataset.cell));
    const b = buttonOf(event);
    if (b) {
      if (b.disabled) return;
      note.textContent = `${b.textContent}…`;
      model.send({ kind: "action", view: viewId, action: b.dataset.action, job: b.dataset.job || null });
      return;
    }
    const row = event.target.closest && event.target.closest("tr[data-job]");
    if (row && panel.contains(row)) return select(row.dataset.job);
    const g = event.target.closest && event.target.closest("g[data-job]");
    if (g && canvas.contains(g)) select(g.getAttribute("data-job"));
  }

  function onKey(event) {
    const jump = event.key === "Enter" && event.target.closest && event.target.closest(".ov-jump");
    if (jump && el.contains(jump)) return void showCell(el, Number(jump.dataset.cell));
    const row = event.key === "Enter" && event.target.closest && event.target.closest("tr[data-job]");
    if (row && panel.contains(row)) select(row.dataset.job);
  }

  // -- the tooltip of an unstarted node: what it waits for (run.why), asked once the pointer rests on it ---------
  let tipJob = null, tipTimer = null;
  const whyKnown = new Map(); // job -> {state, text, at}: a recent answer

  function hideTip() {
    clearTimeout(tipTimer);
    tipTimer = null;
    tipJob = null;
    tip.hidden = true;
  }

  function showTip(job, text) {
    const g = nodes.get(job);
    if (!g || !text) return;
    const box = g.getBoundingClientRect(), base = el.getBoundingClientRect();
    tip.textContent = text;
    tip.dataset.job = job;
    tip.style.left = `${Math.max(0, box.left - base.left)}px`;
    tip.style.top = `${box.bottom - base.top + 4}px`;
    tip.hidden = false;
  }

  function onNodeOver(event) {
    const g = event.target.closest && event.target.closest("g[data-job]");
    if (!g || !canvas.contains(g)) return;
    const job = g.getAttribute("data-job");
    if (job === tipJob) return;
    hideTip();
    const state = g.getAttribute("data-state");
    if (!WAITING.has(state)) return;
    tipJob = job;
    tipTimer = setTimeout(() => {
      const known = whyKnown.get(job);
      if (known && known.state === state && performance.now() - known.at < WHY_FRESH) showTip(job, known.text);
      else model.send({ kind: "why", view: viewId, job });
    }, HOVER_DELAY);
  }

  function onNodeOut(event) {
    const g = event.target.closest && event.target.closest("g[data-job]");
    if (!g || (event.relatedTarget && g.contains(event.relatedTarget))) return;
    if (g.getAttribute("data-job") === tipJob) hideTip();
  }

  canvas.addEventListener("pointerover", onNodeOver);
  canvas.addEventListener("pointerout", onNodeOut);
  el.addEventListener("pointerover", onEnter);
  el.addEventListener("pointerout", onLeave);
  el.addEventListener("focusin", onEnter);
  el.addEventListener("focusout", onLeave);
  el.addEventListener("click", onClick);
  el.addEventListener("keydown", onKey);

  function onCustom(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.kind === "states" || msg.kind === "snapshot") return onStates(msg.states, msg.items);
    if (msg.view !== viewId) return; // a reply to another view of the same run
    if (msg.kind === "details") {
      if (msg.job === selected) showDetails(msg.details);
    } else if (msg.kind === "why") {
      whyKnown.set(msg.job, { state: nodes.get(msg.job)?.getAttribute("data-state"), text: msg.why, at: performance.now() });
      if (msg.job === tipJob) showTip(msg.job, msg.why);
    } else if (msg.kind === "preview") {
      if (hovering && hovering.action === msg.action && (hovering.job || null) === (msg.job || null)) {
        showPreview(msg);
        note.textContent = (msg.count ?? msg.jobs.length) ? `${labels[msg.action]}: ${jobsText(msg)}` : `${labels[msg.action]}: nothing to do`;
      }
    } else if (msg.kind === "done") {
      clearPreview();
      const n = msg.count ?? msg.jobs.length;
      note.textContent = `${labels[msg.action]}${msg.job ? ` ${msg.job}` : ""}: ${n.toLocaleString()} job${n === 1 ? "" : "s"}`;
      if (selected) askDetails();
    } else if (msg.kind === "error") {
      if (msg.for === "preview") clearPreview();
      // an item forgotten (its type maps anew): back to its type's list
      if (msg.for === "select" && msg.job === selected && typeOf(selected) !== selected) return select(typeOf(selected));
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
    clearTimeout(askTimer);
    clearTimeout(tipTimer);
    unhide();
    model.off("msg:custom", onCustom);
    for (const name of ["counts", "message", "running", "elapsed", "total"]) model.off(`change:${name}`, onHeader);
    model.off("change:svg", showPicture);
    model.off("change:layout_pending", showLayout);
  };
}

export default { render };
