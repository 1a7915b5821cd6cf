"""The fixed parts of every dashboard page: its stylesheet and its script.

The script reads the figures (and, in static files, the CSV texts) from one JSON block, draws them with
plotly.js, wires the CSV buttons and the click from a finding's point to its row, and marks the page ready
(`document.body.dataset.ready`, `window.finopsRenderMs`) for tests and for whoever measures it.
"""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
:root { --ink: #1d2430; --muted: #5f6b7a; --line: #e3e7ee; --accent: #1f4e79; --bg: #f6f8fb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: var(--bg); }
header { display: flex; gap: 18px; align-items: center; padding: 10px 22px; background: #fff;
         border-bottom: 1px solid var(--line); flex-wrap: wrap; }
header .brand { font-weight: 700; color: var(--accent); margin-right: 8px; }
header nav a { margin-right: 14px; color: var(--ink); text-decoration: none; padding: 4px 0; }
header nav a.current { border-bottom: 2px solid var(--accent); font-weight: 600; }
header .who { margin-left: auto; color: var(--muted); font-size: 13px; }
main { padding: 16px 22px 40px; max-width: 1500px; margin: 0 auto; }
h1 { font-size: 22px; margin: 6px 0 12px; }
form.filters, .filters.static { display: flex; gap: 14px; align-items: flex-end; flex-wrap: wrap; background: #fff;
         border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; margin-bottom: 14px; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 3px; }
form.filters select[multiple] { min-width: 180px; height: 64px; }
form.filters button { padding: 6px 14px; background: var(--accent); color: #fff; border: 0; border-radius: 5px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; margin-bottom: 14px; }
.kpi { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.kpi .label { color: var(--muted); font-size: 12px; }
.kpi .value { font-size: 22px; font-weight: 650; }
.kpi .detail { color: var(--muted); font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(620px, 1fr)); gap: 14px; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; min-width: 0; }
section.card h2 { font-size: 15px; margin: 2px 0 2px; }
section.card p.note { color: var(--muted); font-size: 12px; margin: 0 0 6px; }
section.card .tools { text-align: right; font-size: 12px; }
section.card .tools a, section.card .tools button { color: var(--accent); background: none; border: 0; cursor: pointer;
         font-size: 12px; text-decoration: underline; padding: 0; }
section.card .empty { color: var(--muted); padding: 40px 0; text-align: center; }
section.wide { grid-column: 1 / -1; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:target, tr.picked { background: #fff6d6; }
details code { display: block; white-space: normal; word-break: break-all; font-size: 11.5px; color: var(--muted); }
footer { color: var(--muted); font-size: 12px; margin-top: 18px; }
"""

SCRIPT = """
(function () {
  const started = performance.now();
  const payload = JSON.parse(document.getElementById("finops-data").textContent);
  const config = {responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"]};
  const drawn = [];
  for (const [id, fig] of Object.entries(payload.figures)) {
    const el = document.getElementById("plot-" + id);
    drawn.push(Plotly.newPlot(el, fig.data, fig.layout, config).then(function (gd) {
      if (id === "findings_timeline") {
        gd.on("plotly_click", function (event) {
          const findingId = event.points[0].customdata[1];
          const row = document.getElementById("finding-" + findingId);
          if (!row) { return; }
          document.querySelectorAll("tr.picked").forEach(function (r) { r.classList.remove("picked"); });
          row.classList.add("picked");
          const details = row.querySelector("details");
          if (details) { details.open = true; }
          row.scrollIntoView({block: "center"});
        });
      }
      return gd;
    }));
  }
  document.querySelectorAll("button[data-csv]").forEach(function (button) {
    button.addEventListener("click", function () {
      const name = button.dataset.csv;
      const blob = new Blob([payload.csv[name]], {type: "text/csv;charset=utf-8"});
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = button.dataset.filename;
      document.body.appendChild(link);
      link.click();
      setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 0);
    });
  });
  const team = document.getElementById("team-view-pick");
  if (team) {
    team.addEventListener("change", function () {
      if (team.value) { window.location.href = team.value; }
    });
  }
  Promise.all(drawn).then(function () {
    window.finopsRenderMs = performance.now();
    window.finopsDrawMs = performance.now() - started;
    document.body.dataset.ready = "1";
  });
})();
"""
