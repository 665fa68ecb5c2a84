// Live updates of the Stepwise UI, over Server-Sent Events: the run page
// follows the status of its steps and tasks, the task page follows its
// logs. Our own code; nothing else is loaded.
"use strict";

function followRun(box) {
  const url = box.dataset.events;
  if (!url) return;
  const es = new EventSource(url);
  es.addEventListener("state", (ev) => {
    const st = JSON.parse(ev.data);
    const rs = document.getElementById("run-status");
    if (rs) { rs.textContent = st.status; rs.className = "status " + st.status; }
    for (const [name, s] of Object.entries(st.steps)) {
      const g = document.querySelector('g[data-step="' + CSS.escape(name) + '"]');
      if (!g) continue;
      g.setAttribute("class", "node " + (s.status || "pending"));
      const rect = g.querySelector("rect");
      const c = {succeeded: ["#d4f4dd", "#2e8b57"], failed: ["#fbd5d5", "#c62828"], running: ["#fff3c4", "#b8860b"]}[s.status] || ["#eef0f3", "#8a8f98"];
      if (rect) { rect.setAttribute("fill", c[0]); rect.setAttribute("stroke", c[1]); }
      const sub = g.querySelector("text.sub");
      if (sub && s.sub) sub.textContent = s.sub;
    }
    for (const [task, status] of Object.entries(st.tasks)) {
      let el = document.querySelector('[data-task="' + CSS.escape(task) + '"]');
      if (!el) el = addTask(box, task);
      if (el) { el.textContent = status; el.className = "status " + status; }
    }
    if (st.ended) es.close();
  });
  es.onerror = () => es.close();
}

// addTask adds a row for a task that started after the page was made.
function addTask(box, task) {
  const table = document.getElementById("tasks");
  if (!table) return null;
  const tr = table.insertRow();
  const a = document.createElement("a");
  a.href = box.dataset.base + task;
  a.textContent = task;
  tr.insertCell().append(a);
  const span = document.createElement("span");
  span.dataset.task = task;
  tr.insertCell().append(span);
  return span;
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
  const follows = document.querySelectorAll("pre[data-follow]");
  for (const pre of follows) followLog(pre);
  const frame = document.getElementById("card");
  if (frame && follows.length > 0) refreshCard(frame);
});
