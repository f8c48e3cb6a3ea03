// Draws the analytics page from /analytics/data.json with the vendored Chart.js (window.Chart).
const root = document.getElementById("analytics");
const PALETTE = ["#4f46e5", "#0ea5e9", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899"];
const PERCENT = new Set(["feedback_rate", "thumbs_ratio"]);

const fmt = {
  interactions: (v) => v.toLocaleString(),
  feedback: (v) => v.toLocaleString(),
  feedback_rate: (v) => `${(v * 100).toFixed(1)}%`,
  thumbs_ratio: (v) => `${(v * 100).toFixed(1)}%`,
  average_rating: (v) => (v == null ? "–" : `${v.toFixed(2)} ★`),
  comparisons: (v) => v.toLocaleString(),
};

function cell(value, name = "") {
  const td = document.createElement("td");
  if (typeof value === "number") {
    td.className = "num";
    if (/(rate|ratio)$/.test(name) && value >= 0 && value <= 1) td.textContent = `${(value * 100).toFixed(1)}%`;
    else if (name.endsWith("_ms")) td.textContent = `${value.toFixed(0)} ms`;
    else if (name === "strength" || name.startsWith("ci_") || name === "rating") td.textContent = value.toFixed(1);
    else td.textContent = Number.isInteger(value) ? value.toLocaleString() : value.toFixed(2);
  } else {
    td.textContent = value == null ? "–" : String(value);
  }
  return td;
}

function leaderboard(table, rows) {
  const head = table.tHead;
  const body = table.tBodies[0];
  head.replaceChildren();
  body.replaceChildren();
  if (!rows.length) {
    const tr = body.insertRow();
    const td = cell("No model has feedback yet.");
    td.className = "muted";
    tr.append(td);
    return;
  }
  // A rating with its confidence interval reads as one column.
  const merged = rows.map((row) => {
    if (row.ci_low == null || row.ci_high == null || typeof row.rating !== "number") return row;
    const { ci_low: low, ci_high: high, strength, ...rest } = row;
    return { ...rest, rating: `${row.rating.toFixed(0)} (${low.toFixed(0)}–${high.toFixed(0)})` };
  });
  rows = merged;
  const columns = Object.keys(rows[0]);
  const tr = head.insertRow();
  for (const name of columns) {
    const th = document.createElement("th");
    th.textContent = name.replace(/_ms$/, "").replace(/^average_/, "avg_").replace(/_ratio$/, "").replaceAll("_", " ");
    if (name !== "model") th.className = "num";
    tr.append(th);
  }
  for (const row of rows) {
    const line = body.insertRow();
    for (const name of columns) line.append(cell(row[name], name));
  }
}

function lineChart(canvas, data, metric) {
  const models = data.timeseries.models;
  const datasets = models.map((model, n) => ({
    label: model,
    data: data.timeseries.series[metric][model],
    borderColor: PALETTE[n % PALETTE.length],
    backgroundColor: PALETTE[n % PALETTE.length],
    spanGaps: true,
    tension: 0.25,
    pointRadius: 2.5,
    borderWidth: 2,
  }));
  return new window.Chart(canvas, {
    type: "line",
    data: { labels: data.timeseries.buckets, datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 10, boxHeight: 10 } } },
      scales: {
        x: { grid: { display: false }, ticks: { maxTicksLimit: 8 } },
        y: {
          beginAtZero: metric !== "average_rating",
          suggestedMax: PERCENT.has(metric) ? 1 : metric === "average_rating" ? 5 : undefined,
          suggestedMin: metric === "average_rating" ? 1 : undefined,
          ticks: PERCENT.has(metric) ? { callback: (v) => `${Math.round(v * 100)}%` } : {},
        },
      },
    },
  });
}

async function main() {
  const error = document.getElementById("analytics-error");
  let data;
  try {
    const reply = await fetch(root.dataset.src, { credentials: "same-origin" });
    if (!reply.ok) throw new Error(`the server answered ${reply.status}`);
    data = await reply.json();
  } catch (exc) {
    error.textContent = `Could not load the analytics: ${exc.message}`;
    error.hidden = false;
    return;
  }
  for (const [name, value] of Object.entries(data.summary)) {
    const el = root.querySelector(`[data-stat="${name}"]`);
    if (el) el.textContent = fmt[name] ? fmt[name](value) : String(value);
  }
  for (const h of root.querySelectorAll("h3[data-title]")) h.textContent = data.metrics[h.dataset.title];
  for (const canvas of root.querySelectorAll("canvas[data-metric]")) lineChart(canvas, data, canvas.dataset.metric);
  new window.Chart(document.getElementById("rating-distribution"), {
    type: "bar",
    data: {
      labels: data.rating_distribution.labels,
      datasets: [{ label: "ratings", data: data.rating_distribution.counts, backgroundColor: "#f5a623", borderRadius: 4 }],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      plugins: { legend: { display: false } },
      scales: { x: { grid: { display: false } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  });
  root.dataset.ready = "1";
}

async function board() {
  const table = document.getElementById("leaderboard");
  try {
    const reply = await fetch(root.dataset.leaderboard, { credentials: "same-origin" });
    if (!reply.ok) throw new Error(`the server answered ${reply.status}`);
    leaderboard(table, (await reply.json()).leaderboard);
  } catch (exc) {
    table.tBodies[0].replaceChildren();
    const td = cell(`Could not load the leaderboard: ${exc.message}`);
    td.className = "muted";
    table.tBodies[0].insertRow().append(td);
  }
  root.dataset.leaderboardReady = "1";
}

main();
board();
