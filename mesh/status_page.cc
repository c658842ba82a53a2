// The status page served at "/" by the admin endpoint: one self-contained
// HTML file (no CDN, no build step) that polls /status every second and
// shows each destination as its localities, with the share of traffic each
// receives now, the plan's weights, health, and the recent events.

#include "mesh/admin.h"

namespace mesh {
namespace internal {

const char* StatusPageHtml() {
  return R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mesh status</title>
<style>
  body { font: 12px/1.35 system-ui, sans-serif; margin: 8px; color: #222; background: #f6f7f9; }
  header { display: flex; flex-wrap: wrap; gap: 4px 18px; align-items: baseline; margin-bottom: 6px; }
  header h1 { font-size: 15px; margin: 0; }
  .plain { color: #fff; background: #c0392b; padding: 1px 6px; border-radius: 3px; font-weight: bold; }
  .mtls { color: #1e7e34; font-weight: bold; }
  .err { color: #c0392b; }
  #grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(470px, 1fr)); gap: 6px; }
  .card { background: #fff; border: 1px solid #dde; border-radius: 4px; padding: 4px 6px; overflow: hidden; }
  .card h2 { font-size: 13px; margin: 0 0 2px; display: flex; justify-content: space-between; }
  .card h2 small { font-weight: normal; color: #666; }
  table { border-collapse: collapse; width: 100%; }
  td, th { padding: 1px 3px; text-align: left; white-space: nowrap; }
  th { color: #666; font-weight: normal; font-size: 11px; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .bar { background: #e8ecf2; width: 60px; height: 9px; display: inline-block; vertical-align: middle; }
  .bar span { display: block; height: 100%; background: #3b7dd8; }
  tr.backup td { color: #888; }
  tr.serving td.loc { font-weight: bold; }
  .excluded { color: #c0392b; font-size: 11px; }
  #events { margin-top: 6px; background: #fff; border: 1px solid #dde; border-radius: 4px; padding: 4px 6px; max-height: 120px; overflow: auto; }
  #events div { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
</style>
</head>
<body>
<header>
  <h1>mesh</h1>
  <span id="security">…</span>
  <span id="config"></span>
  <span id="cp"></span>
  <span id="lasterror" class="err"></span>
</header>
<div id="grid"></div>
<div id="events"><b>recent events</b><div id="eventlist"></div></div>
<script>
"use strict";
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}
function render(s) {
  const sec = document.getElementById("security");
  sec.className = s.mtls ? "mtls" : "plain";
  sec.textContent = s.mtls ? "mTLS " + s.identity : s.security;
  document.getElementById("config").textContent =
    "config " + s.config_version + " (applied " + s.configs_applied +
    ", rejected " + s.configs_rejected + (s.stale ? ", STALE" : "") + ")" +
    s.sources.map(x => "; " + x.name + " " + (x.ok ? "ok" : "FAILING")).join("");
  const cp = s.control_plane;
  document.getElementById("cp").textContent =
    "control plane " + (cp.running ? "up" : "DOWN") + ", " + cp.restarts + " restarts";
  document.getElementById("lasterror").textContent =
    s.last_error ? "last error: " + s.last_error.split("\n")[0] : "";
  const grid = document.getElementById("grid");
  grid.replaceChildren();
  for (const d of s.destinations) {
    const serving = Math.min(...d.localities.filter(l => l.recent_completed > 0 && l.priority !== null)
                                            .map(l => l.priority), 99);
    const rows = d.localities.map(l => {
      const bar = el("span", {class: "bar"}, el("span", {style: "width:" + l.recent_share + "%"}));
      const cls = l.priority === null ? "" : (l.priority === serving ? "serving" : (l.priority > serving ? "backup" : ""));
      return el("tr", {class: cls, "data-locality": l.locality},
        el("td", {class: "num"}, l.priority === null ? "-" : "P" + l.priority),
        el("td", {class: "loc"}, l.locality),
        el("td", {}, bar),
        el("td", {class: "num"}, l.recent_share.toFixed(1) + "%"),
        el("td", {class: "num", title: "weight within its priority"}, l.plan_share + "%"),
        el("td", {class: "num"}, String(l.succeeded)),
        el("td", {class: "num"}, String(l.completed - l.succeeded)),
        el("td", {class: "num", title: l.endpoints.join(" ")}, String(l.endpoints.length)));
    });
    const table = el("table", {},
      el("tr", {}, ...["", "locality", "traffic now", "", "weight", "ok", "failed", "eps"].map(h => el("th", {}, h))),
      ...rows);
    const card = el("div", {class: "card", "data-destination": d.hostname},
      el("h2", {}, d.hostname, el("small", {}, (d.plan ? d.plan.rule.split(":")[0] : "no plan yet"))),
      table);
    if (d.excluded.length) card.append(el("div", {class: "excluded"}, "excluded: " + d.excluded.join(", ")));
    grid.append(card);
  }
  const list = document.getElementById("eventlist");
  list.replaceChildren(...s.events.slice(-8).reverse().map(e =>
    el("div", {}, e.time.replace("T", " ").replace("Z", "") + "  " + e.text)));
}
async function refresh() {
  try {
    const r = await fetch("/status", {cache: "no-store"});
    render(await r.json());
  } catch (e) {
    document.getElementById("lasterror").textContent = "admin endpoint unreachable: " + e;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
)HTML";
}

}  // namespace internal
}  // namespace mesh
