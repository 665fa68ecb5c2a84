// Live updates of the Stepwise UI, over Server-Sent Events: the first page
// of a runs list follows new runs and their statuses, the run page follows
// the status of its steps and tasks and its timeline, the task page
// follows its logs. Our own code; nothing else is loaded.
"use strict";

const stepColors = {succeeded: ["#d4f4dd", "#2e8b57"], failed: ["#fbd5d5", "#c62828"], running: ["#fff3c4", "#b8860b"]};

function setStatus(el, status) {
  el.textContent = status;
  el.className = "status " + status;
}

// rows maps the value of data-KEY of each row of table to the row.
function rows(table, key) {
  const m = new Map();
  for (const tr of table.querySelectorAll("tr[data-" + key + "]")) m.set(tr.dataset[key], tr);
  return m;
}

// row returns the row of table whose data-KEY is value (from have, made by
// rows), adding it with n empty cells when there is none.
function row(table, have, key, value, n) {
  let tr = have.get(value);
  if (tr) return tr;
  tr = table.insertRow();
  tr.dataset[key] = value;
  for (let i = 0; i < n; i++) tr.insertCell();
  have.set(value, tr);
  return tr;
}

// link puts a link to href, reading text, in a cell that has none yet.
function link(cell, href, text) {
  if (cell.querySelector("a")) return;
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  cell.append(a);
}

// statusIn returns the status badge of a cell, adding it.
function statusIn(cell) {
  let span = cell.querySelector("span.status");
  if (!span) {
    span = document.createElement("span");
    cell.append(span);
  }
  return span;
}

// follow listens to the stream at el's data-events, if it has one, and
// gives each state to onState, until the server ends the stream.
function follow(el, onState) {
  const url = el.dataset.events;
  if (!url) return;
  const es = new EventSource(url);
  es.addEventListener("state", (ev) => onState(JSON.parse(ev.data)));
  es.addEventListener("end", () => es.close());
  es.onerror = () => es.close();
}

function followRun(box) {
  follow(box, (st) => {
    const rs = document.getElementById("run-status");
    if (rs) setStatus(rs, st.status);
    const took = document.getElementById("run-took");
    if (took) took.textContent = st.took ? " · took " + st.took : "";
    for (const [name, s] of Object.entries(st.steps)) {
      const g = document.querySelector('g[data-step="' + CSS.escape(name) + '"]');
      if (!g) continue;
      g.setAttribute("class", "node " + (s.status || "pending"));
      const rect = g.querySelector("rect");
      const c = stepColors[s.status] || ["#eef0f3", "#8a8f98"];
      if (rect) { rect.setAttribute("fill", c[0]); rect.setAttribute("stroke", c[1]); }
      const sub = g.querySelector("text.sub");
      if (sub && s.sub) sub.textContent = s.sub;
    }
    const table = document.getElementById("tasks");
    const have = table ? rows(table, "row") : null;
    for (const t of st.tasks) {
      if (!table) break;
      const tr = row(table, have, "row", t.task, 6);
      link(tr.cells[0], box.dataset.base + t.task, t.task);
      const span = statusIn(tr.cells[1]);
      span.dataset.task = t.task;
      setStatus(span, t.status);
      tr.cells[2].textContent = t.attempts;
      tr.cells[3].textContent = t.started;
      tr.cells[4].textContent = t.took;
    }
    const count = document.getElementById("task-count");
    if (count) count.textContent = st.tasks.length;
    // The timeline is drawn by the server, its names escaped, as when the
    // page was made.
    const gantt = document.getElementById("gantt");
    if (gantt) gantt.innerHTML = st.gantt;
  });
}

// followRuns keeps the first page of a runs list as the server reads it
// with the page's filters: new runs appear, statuses change in place.
function followRuns(table) {
  follow(table, (st) => {
    const body = table.tBodies[0];
    const have = rows(table, "run");
    const old = new Set(have.values());
    let prev = body.rows[0]; // the header
    for (const r of st.runs) {
      const tr = row(table, have, "run", r.run, 6);
      old.delete(tr);
      link(tr.cells[0], "/runs/" + r.run, r.run);
      setStatus(statusIn(tr.cells[1]), r.status);
      tr.cells[2].textContent = r.user;
      tr.cells[3].textContent = r.started;
      tr.cells[4].textContent = r.took;
      tr.cells[5].replaceChildren(...(r.tags || []).flatMap((tag) => {
        const span = document.createElement("span");
        span.className = "tag";
        span.textContent = tag;
        return [span, " "];
      }));
      prev.after(tr);
      prev = tr;
    }
    for (const tr of old) tr.remove();
    const empty = body.querySelector("tr.empty");
    if (empty) empty.hidden = st.runs.length > 0;
  });
}

function followLog(pre) {
  const es = new EventSource(pre.dataset.follow);
  es.addEventListener("log", (ev) => {
    const m = JSON.parse(ev.data);
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(document.createTextNode(m.text));
    if (atEnd) pre.scrollTop = pre.scrollHeight;
    pre.dataset.off = m.off;
  });
  es.addEventListener("end", () => {
    es.close();
    pre.dataset.ended = "true";
    const ts = document.getElementById("task-status");
    if (ts && ts.textContent === "running") ts.textContent = "ended (reload for its result)";
  });
  es.onerror = () => es.close();
}

// refreshCard shows a running task's card again every few seconds (a
// card is saved at most every 3 seconds), until the task's log ends.
function refreshCard(frame) {
  const timer = setInterval(() => {
    if (document.querySelector('pre[data-ended="true"]')) { clearInterval(timer); return; }
    frame.src = frame.src;
  }, 3000);
}

document.addEventListener("DOMContentLoaded", () => {
  const run = document.getElementById("run");
  if (run) followRun(run);
  const runs = document.getElementById("runs");
  if (runs) followRuns(runs);
  const follows = document.querySelectorAll("pre[data-follow]");
  for (const pre of follows) followLog(pre);
  const frame = document.getElementById("card");
  if (frame && follows.length > 0) refreshCard(frame);
});
