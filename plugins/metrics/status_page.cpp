// SPDX-License-Identifier: Apache-2.0
#include "status_page.hpp"

#include <cstring>

namespace streamrelay::plugins {

namespace {

const char* const kStatusPageHtml = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>streamrelay</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .3em; }
  h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
  .state { display: inline-block; padding: .1em .6em; border-radius: .8em; color: #fff; }
  .up { background: #2a7d2a; } .down { background: #b03030; }
  canvas { border: 1px solid #ccc; width: 100%; max-width: 900px; height: 180px; }
  table { border-collapse: collapse; } td, th { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: right; }
  td:first-child, th:first-child { text-align: left; }
  #error { color: #b03030; }
</style>
</head>
<body>
<h1>streamrelay</h1>
<div>frames <span id="frames">0</span> &nbsp; <span id="error"></span></div>
<h2>sources</h2>
<table id="sources"><tr><th>name</th><th>type</th><th>state</th><th>endpoint</th><th>connects</th><th>protocol errors</th><th>bytes read</th><th>endpoint failures</th></tr></table>
<h2>mirrors (streamrelay and redis sources, sources with a lease)</h2>
<table id="mirrors"><tr><th>name</th><th>mode</th><th>lease</th><th>upstream relay</th><th>upstream epoch</th><th>upstream seq</th><th>lag ms</th><th>gaps</th><th>frames missed</th><th>new epochs</th></tr></table>
<h2>streams</h2>
<table id="streams"><tr><th>name</th><th>frames</th><th>bytes</th><th>last seq</th><th>consumers</th><th>log: seqs kept</th><th>fsynced seq</th><th>bytes on disk</th><th>segments</th><th>frames written</th><th>write errors</th></tr></table>
<h2>frames/s (last 5 minutes) — now <span id="fps">0</span></h2>
<canvas id="framesChart" width="900" height="180"></canvas>
<h2>bytes/s (last 5 minutes) — now <span id="bps">0</span></h2>
<canvas id="bytesChart" width="900" height="180"></canvas>
<h2>listeners</h2>
<table id="listeners"><tr><th>name</th><th>protocol</th><th>port</th><th>inputs</th><th>clients</th><th>accepted</th><th>refused max_clients</th><th>refused allow</th><th>disconnects</th></tr></table>
<h2>consumers</h2>
<table id="consumers"><tr><th>name</th><th>kind</th><th>protocol</th><th>policy</th><th>queue frames</th><th>queue bytes</th><th>lag s</th><th>delivered</th><th>dropped</th></tr></table>
<h2>plugins</h2>
<table id="plugins"><tr><th>name</th><th>type</th><th>failures</th><th>disabled</th><th>counters and gauges</th></tr></table>
<h2>plugin files that did not load</h2>
<table id="loadFailures"><tr><th>file</th><th>why</th></tr></table>
<script>
"use strict";
// The relay's stats and recent history, put in by the server: the page shows
// figures and charts at once, before any request of its own.
const initial = /*INITIAL*/null;
const windowMs = 300000;
let samples = [];  // [unix_ms, frames_received, bytes_received], oldest first, from the relay

function text(id, value) { document.getElementById(id).textContent = value; }

function addSamples(more) {
  samples = samples.concat(more);
  if (samples.length === 0) return;
  const cutoff = samples[samples.length - 1][0] - windowMs;
  samples = samples.filter(s => s[0] >= cutoff);
}

// Per-second rates of column `k` between consecutive samples.
function rates(k) {
  const out = [];
  for (let i = 1; i < samples.length; ++i) {
    const dt = Math.max(0.001, (samples[i][0] - samples[i - 1][0]) / 1000);
    out.push({t: samples[i][0], v: (samples[i][k] - samples[i - 1][k]) / dt});
  }
  return out;
}

function draw(id, k) {
  const canvas = document.getElementById(id), g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const points = rates(k);
  if (points.length === 0) return;
  const end = points[points.length - 1].t, max = Math.max(1, ...points.map(p => p.v));
  g.fillStyle = "#666"; g.fillText(max.toFixed(0), 4, 12);
  g.strokeStyle = "#2a5db0"; g.lineWidth = 2; g.beginPath();
  points.forEach((p, i) => {
    const x = canvas.width * (1 - (end - p.t) / windowMs), y = canvas.height - 4 - (canvas.height - 20) * p.v / max;
    i === 0 ? g.moveTo(x, y) : g.lineTo(x, y);
  });
  g.stroke();
}

function fillTable(id, rows) {
  const table = document.getElementById(id);
  while (table.rows.length > 1) table.deleteRow(1);
  for (const cells of rows) {
    const row = table.insertRow();
    for (const c of cells) row.insertCell().textContent = c;
  }
}

function render(s) {
  const fps = rates(1), bps = rates(2);
  text("fps", fps.length ? fps[fps.length - 1].v.toFixed(1) : "0");
  text("bps", bps.length ? bps[bps.length - 1].v.toFixed(0) : "0");
  text("frames", s.frames_received);
  fillTable("sources", s.sources.map(u => [u.name, u.type, u.connected ? "connected" : "disconnected",
    u.endpoint || "", u.connects, u.protocol_errors, u.bytes_read,
    (u.endpoints || []).map(p => p.address + " " + p.failures).join(", ")]));
  for (const row of document.getElementById("sources").rows) {
    const cell = row.cells[2];
    if (cell.tagName === "TD") cell.innerHTML = '<span class="state ' + (cell.textContent === "connected" ? "up" : "down") +
      '">' + cell.textContent + "</span>";
  }
  fillTable("mirrors", s.sources.filter(u => u.upstream_seq !== undefined).map(u => [u.name,
    u.type === "streamrelay" ? (u.mirror ? "mirror" : "renumber") : u.type,
    u.lease ? u.lease.key + (u.lease.holding ? " held here since " + new Date(u.lease.holder_since_unix_ms).toISOString()
                                             : " held elsewhere: following") : "",
    u.endpoint || "", u.upstream_epoch, u.upstream_seq, u.lag_ms.toFixed(1), u.gaps, u.frames_missed, u.new_epochs]));
  fillTable("streams", s.streams.map(t => [t.name, t.frames, t.bytes, t.last_seq, t.consumers].concat(t.log
    ? [t.log.first_seq + " to " + t.log.last_seq, t.log.fsynced_seq, t.log.bytes, t.log.segments, t.log.frames_written,
       t.log.write_errors]
    : ["no log", "", "", "", "", ""])));
  fillTable("listeners", s.listeners.map(l => [l.name, l.protocol, l.port, l.inputs.join(", "), l.clients, l.accepted, l.refused_max_clients,
    l.refused_allow, Object.entries(l.disconnects).filter(e => e[1] > 0).map(e => e[0] + " " + e[1]).join(", ") || "0"]));
  fillTable("consumers", s.consumers.map(c => [c.name, c.kind, c.protocol || "", c.policy, c.queue_frames, c.queue_bytes, c.lag_seconds.toFixed(3),
    c.delivered, c.dropped]));
  fillTable("plugins", s.plugins.map(p => [p.name, p.type, p.failures, p.disabled ? "yes" : "no",
    Object.entries(Object.assign({}, p.counters, p.gauges)).map(e => e[0] + " " + e[1]).join(", ")]));
  fillTable("loadFailures", s.plugin_load_failures.map(f => [f.file, f.error]));
  draw("framesChart", 1); draw("bytesChart", 2);
}

async function refresh() {
  try {
    const after = samples.length ? samples[samples.length - 1][0] : -1;
    const [s, h] = await Promise.all([fetch("stats").then(r => r.json()),
                                      fetch("history?after=" + after).then(r => r.json())]);
    addSamples(h.samples);
    render(s);
    text("error", "");
  } catch (e) {
    text("error", "relay unreachable: " + e);
  }
}

if (initial) {
  addSamples(initial.history.samples);
  render(initial.stats);
}
setInterval(refresh, 1000);
</script>
</body>
</html>
)HTML";

const char* const kInitialMark = "/*INITIAL*/null";

// JSON inside a <script> element: no "</script>" or "<!--" may appear in it.
// A '<' can only be inside a JSON string, where \u003c means the same.
std::string scriptSafe(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (char c : json) {
    if (c == '<') out += "\\u003c";
    else out += c;
  }
  return out;
}

}  // namespace

std::string renderStatusPage(const std::string& statsJson, const std::string& historyJson) {
  std::string page = kStatusPageHtml;
  const std::size_t mark = page.find(kInitialMark);
  page.replace(mark, std::strlen(kInitialMark),
               "{\"stats\": " + scriptSafe(statsJson) + ", \"history\": " + scriptSafe(historyJson) + "}");
  return page;
}

}  // namespace streamrelay::plugins
