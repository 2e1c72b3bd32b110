// The live view: renders each snapshot the server sends (GET /state once, then
// server-sent events on /events). Every text goes through textContent: nothing from
// the app is ever parsed as HTML.
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
let last = null;

function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function row(...cells) {
  return el("tr", {}, ...cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
}

function size(n) {
  if (n === null || n === undefined) return "…";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
  return n + " B";
}

const WIDTH = 640, PER_ROW = 4, ROW = 80;

// Controllers on top, then components, unknown containers and plugins, each group in
// rows of at most PER_ROW.
function layout(containers) {
  const groups = { controller: [], component: [], unknown: [], plugin: [] };
  for (const c of containers) (groups[c.role] || groups.unknown).push(c);
  const rows = [];
  for (const g of ["controller", "component", "unknown", "plugin"]) {
    for (let i = 0; i < groups[g].length; i += PER_ROW) rows.push(groups[g].slice(i, i + PER_ROW));
  }
  const height = Math.max(380, rows.length * ROW + 40);
  const gap = rows.length > 1 ? Math.min(150, (height - 80) / (rows.length - 1)) : 0;
  const top = (height - gap * (rows.length - 1)) / 2;
  const pos = {};
  rows.forEach((r, i) => r.forEach((c, j) => {
    pos[c.name] = { x: ((j + 1) * WIDTH) / (r.length + 1), y: top + i * gap };
  }));
  return { pos, height };
}

function graph(s) {
  const svg = document.getElementById("graph");
  const { pos, height } = layout(s.containers);
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${height}`);
  svg.style.height = `${height}px`;
  svg.replaceChildren();
  const pairs = new Set(s.edges.map((e) => e.from + "\u0000" + e.to));
  for (const e of s.edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    // Edges bend: two between one pair apart, and one along a row over the boxes between.
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const bend = (pairs.has(e.to + "\u0000" + e.from) ? 14 : 0) + (Math.abs(dy) < 1 ? 64 + len / 4 : 0);
    const cx = (a.x + b.x) / 2 + (-dy / len) * bend, cy = (a.y + b.y) / 2 + (dx / len) * bend;
    const g = el("svg:g", { class: "edge" + (e.plugin ? " plugin" : ""), "data-from": e.from, "data-to": e.to });
    g.append(el("svg:path", { d: `M ${a.x} ${a.y} Q ${cx} ${cy} ${b.x} ${b.y}`, "marker-end": "url(#arrow)" }));
    // The label sits on the curve, a third of the way from the sender.
    const t = 0.35, lx = (1 - t) * (1 - t) * a.x + 2 * (1 - t) * t * cx + t * t * b.x;
    const ly = (1 - t) * (1 - t) * a.y + 2 * (1 - t) * t * cy + t * t * b.y;
    g.append(el("svg:text", { x: lx, y: ly }, `${e.rate}/s (${e.count})`));
    g.append(el("svg:title", {}, `${e.from} → ${e.to}: ${e.count} messages, ${e.rate}/s${losses(e)}`));
    svg.append(g);
  }
  const defs = el("svg:defs", {});
  const marker = el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: 38, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" });
  marker.append(el("svg:path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8893a8" }));
  defs.append(marker);
  svg.append(defs);
  for (const c of s.containers) {
    const p = pos[c.name];
    const g = el("svg:g", { class: `node ${c.state}`, "data-name": c.name, "data-role": c.role, "data-state": c.state, "data-started": c.started });
    g.append(el("svg:rect", { x: p.x - 55, y: p.y - 18, width: 110, height: 36 }));
    g.append(el("svg:text", { x: p.x, y: p.y - 2 }, c.name));
    const state = c.started && c.state !== "started" ? `started, ${c.state}` : c.state;
    g.append(el("svg:text", { x: p.x, y: p.y + 12, class: "role" }, `${c.role} · ${state}`));
    svg.append(g);
  }
}

// Lost and duplicate messages of an edge (by the senders' sequence numbers), if any, and
// whether its receiver acknowledges end to end.
function losses(e) {
  return (e.lost ? ` · ${e.lost} lost` : "") + (e.duplicates ? ` · ${e.duplicates} duplicates` : "") +
    (e.acks ? ` · acknowledged end to end (${e.acks} acks)` : "");
}

function edges(s) {
  const box = document.getElementById("edges");
  box.replaceChildren();
  const list = [...s.edges].sort((a, b) => b.count - a.count);
  for (const e of list) {
    const d = el("div", { class: "edge-box", "data-from": e.from, "data-to": e.to });
    d.append(el("h3", {}, `${e.from} → ${e.to}${e.plugin ? " (plugin)" : ""} · ${e.count} messages · ${e.rate}/s${losses(e)}`));
    const t = el("table", {});
    for (const m of e.latest) t.append(row(`+${(m.ms / 1000).toFixed(1)}s`, m.type, el("td", { class: "repr" }, m.repr)));
    d.append(t);
    box.append(d);
  }
}

function files(s) {
  const body = document.querySelector("#files tbody");
  body.replaceChildren();
  for (const f of s.files) {
    const bar = el("span", { class: "bar" }, el("i", { style: `width:${f.percent}%` }));
    const tr = row(f.name, f.sender, f.receivers.join(", ") || "…", size(f.size),
      el("td", {}, bar, ` ${f.percent} %`), f.result);
    tr.setAttribute("data-file", f.name);
    tr.setAttribute("data-percent", f.percent);
    body.append(tr);
  }
}

function logs(s) {
  const min = LEVELS.indexOf(document.getElementById("level").value);
  const q = document.getElementById("search").value.toLowerCase();
  const body = document.querySelector("#logs tbody");
  body.replaceChildren();
  for (const r of [...s.logs].reverse()) {
    const lvl = LEVELS.indexOf(r.level);
    if (lvl >= 0 && lvl < min) continue;
    const text = `${r.container} ${r.logger} ${r.message}`;
    if (q && !text.toLowerCase().includes(q)) continue;
    const tr = row(r.time, el("td", { class: "lvl-" + r.level }, r.level), r.container, r.logger, el("td", { class: "msg" }, r.message));
    tr.setAttribute("data-log", r.container);
    body.append(tr);
  }
}

function records(s) {
  const body = document.querySelector("#records tbody");
  body.replaceChildren();
  for (const r of [...s.records].reverse()) body.append(row(`+${(r.ms / 1000).toFixed(1)}s`, r.kind, el("td", { class: "msg" }, r.json)));
  const errs = document.querySelector("#errors tbody");
  errs.replaceChildren();
  for (const e of [...s.errors].reverse()) errs.append(row(`+${(e.ms / 1000).toFixed(1)}s`, e.topic, el("td", { class: "msg" }, e.error)));
}

function render(s) {
  last = s;
  const started = performance.now();
  graph(s);
  edges(s);
  files(s);
  logs(s);
  records(s);
  const d = s.dropped;
  document.getElementById("total").textContent =
    `${s.total} messages · ${s.containers.length} containers` +
    (d.containers || d.edges ? ` · over the limits: ${d.containers} containers, ${d.edges} edges not shown` : "");
  document.body.setAttribute("data-rendered-ms", (performance.now() - started).toFixed(1));
  document.body.setAttribute("data-server-ms", s.ms);
}

document.getElementById("level").addEventListener("change", () => last && logs(last));
document.getElementById("search").addEventListener("input", () => last && logs(last));

fetch("/state").then((r) => r.json()).then(render).catch(() => {});
const status = document.getElementById("status");
const source = new EventSource("/events");
source.onopen = () => { status.textContent = "live"; status.dataset.status = "live"; };
source.onerror = () => { status.textContent = "connection lost, retrying"; status.dataset.status = "lost"; };
source.onmessage = (m) => render(JSON.parse(m.data));
