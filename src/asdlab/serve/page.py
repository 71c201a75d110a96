"""The service's page for a person: pick a machine and files, see each clip's score against the machine's
training-score histogram and threshold (inline SVG drawn by plain JavaScript; no build step)."""

__all__ = ["PAGE_HTML"]

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>asdlab scoring</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 60rem; }
  h1 { font-size: 1.4rem; margin-bottom: 0.2rem; }
  .muted { color: #666; font-size: 0.9rem; }
  form { margin: 1.2rem 0; display: flex; gap: 0.8rem; align-items: center; flex-wrap: wrap; }
  .clip { border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem 1rem; margin: 0.8rem 0; }
  .clip h2 { font-size: 1rem; margin: 0 0 0.4rem 0; }
  .anomalous { color: #b00020; font-weight: 600; }
  .normal { color: #1b5e20; font-weight: 600; }
  .error { color: #b00020; }
  svg text { font-size: 11px; fill: #444; }
</style>
</head>
<body>
<h1>asdlab anomaly scoring</h1>
<div id="detector" class="muted">loading the detector&hellip;</div>
<form id="form">
  <label>Machine <select id="machine" name="machine"></select></label>
  <input id="files" type="file" name="files" accept=".wav,.flac,audio/*" multiple>
  <button id="submit" type="submit">Score</button>
</form>
<div id="status" class="muted"></div>
<div id="results"></div>
<script>
"use strict";
let machines = [];

function svgElement(name, attributes, text) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// The machine's training-score histogram, its threshold (dashed) and the clip's score (solid).
function histogram(info, score) {
  const width = 520, height = 170, left = 40, right = 15, top = 12, bottom = 32;
  const edges = info.training_scores.edges, counts = info.training_scores.counts;
  const low = Math.min(edges[0], info.threshold, score), high = Math.max(edges[edges.length - 1], info.threshold, score);
  const pad = (high - low) * 0.05 || 1e-6;
  const x = v => left + (v - (low - pad)) / ((high + pad) - (low - pad)) * (width - left - right);
  const peak = Math.max(...counts, 1);
  const y = c => height - bottom - c / peak * (height - top - bottom);
  const svg = svgElement("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                                 "aria-label": "training-score histogram with threshold and clip score"});
  counts.forEach((count, i) => svg.appendChild(svgElement("rect", {
    x: x(edges[i]), y: y(count), width: Math.max(x(edges[i + 1]) - x(edges[i]) - 1, 1),
    height: height - bottom - y(count), fill: "#9ab"})));
  svg.appendChild(svgElement("line", {x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, stroke: "#444"}));
  svg.appendChild(svgElement("line", {x1: x(info.threshold), x2: x(info.threshold), y1: top, y2: height - bottom,
                                      stroke: "#b00020", "stroke-dasharray": "5,3", "stroke-width": 2, class: "threshold"}));
  svg.appendChild(svgElement("line", {x1: x(score), x2: x(score), y1: top, y2: height - bottom,
                                      stroke: "#1565c0", "stroke-width": 3, class: "clip-score"}));
  // Labels sit right of their line, or left of it near the right edge so they are not cut off.
  const label = (at, y, text) => svg.appendChild(at > width * 0.75
    ? svgElement("text", {x: at - 4, y, "text-anchor": "end"}, text) : svgElement("text", {x: at + 4, y}, text));
  label(x(info.threshold), top + 10, "threshold");
  label(x(score), top + 24, "this clip");
  svg.appendChild(svgElement("text", {x: left, y: height - 10}, (low - pad).toPrecision(3)));
  svg.appendChild(svgElement("text", {x: width - right - 40, y: height - 10}, (high + pad).toPrecision(3)));
  svg.appendChild(svgElement("text", {x: width / 2 - 80, y: height - 10}, "anomaly score (training clips: bars)"));
  return svg;
}

function showClip(result) {
  const info = machines.find(m => m.machine === result.machine && m.section === result.section);
  const card = document.createElement("div");
  card.className = "clip";
  const title = document.createElement("h2");
  title.textContent = result.file;
  const line = document.createElement("div");
  const verdict = result.decision === 1 ? "anomalous" : "normal";
  line.innerHTML = `score <span class="score" data-score="${result.score}">${result.score.toPrecision(6)}</span>
    &middot; threshold ${result.threshold.toPrecision(6)}
    &middot; <span class="${verdict}">${verdict}</span>
    &middot; at or above ${result.percentile.toFixed(1)} % of the normal training clips`;
  card.append(title, line, histogram(info, result.score));
  document.getElementById("results").appendChild(card);
}

function showProblem(file, problem) {
  const card = document.createElement("div");
  card.className = "clip error";
  card.textContent = `${file}: ${problem}`;
  document.getElementById("results").appendChild(card);
}

async function loadDetector() {
  const response = await fetch("/v1/detector");
  const info = await response.json();
  machines = info.machines;
  document.getElementById("detector").textContent =
    `${info.recipe} detector (${info.backbone}, ${info.backend}) from ${info.source}: ` +
    `${machines.length} machine/section(s); clips up to ${info.limits.max_clip_s} s, ${info.limits.max_files} per request`;
  const select = document.getElementById("machine");
  for (const m of machines) {
    const option = document.createElement("option");
    option.value = JSON.stringify([m.machine, m.section]);
    option.textContent = `${m.machine} / section ${m.section}`;
    select.appendChild(option);
  }
}

document.getElementById("form").addEventListener("submit", async event => {
  event.preventDefault();
  const files = document.getElementById("files").files;
  const status = document.getElementById("status");
  if (!files.length) { status.textContent = "choose one or more audio files first"; return; }
  const [machine, section] = JSON.parse(document.getElementById("machine").value);
  const body = new FormData();
  for (const file of files) body.append("files", file, file.name);
  body.append("machine", machine);
  body.append("section", section);
  status.textContent = "scoring\\u2026";
  document.getElementById("results").innerHTML = "";
  const response = await fetch("/v1/score", {method: "POST", body});
  const answer = await response.json();
  if (!response.ok) {
    status.textContent = `refused (${response.status}): ${answer.detail}`;
    return;
  }
  answer.results.forEach(showClip);
  answer.skipped.forEach(s => showProblem(s.file, s.problem));
  status.textContent = `${answer.results.length} clip(s) scored` +
    (answer.skipped.length ? `, ${answer.skipped.length} skipped` : "");
  status.dataset.done = "1";
});

loadDetector().catch(error => {
  document.getElementById("detector").textContent = `could not read the detector: ${error}`;
});
</script>
</body>
</html>
"""
