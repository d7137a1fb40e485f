// Charts with Chart.js (shipped in ../vendor, loaded as a classic script before the page modules).
// Every chart is also told in a table beside it: the chart is a summary, the table the record.

const Chart = globalThis.Chart;

Chart.defaults.animation = false; // steady for people who dislike motion, and for screenshots
Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif";
Chart.defaults.color = "#1b1f24";
Chart.defaults.layout.padding = { top: 10, right: 10 };
Chart.defaults.datasets.line.clip = false; // a mark at the top or bottom of the scale is drawn whole
Chart.defaults.plugins.legend.labels.usePointStyle = true; // the legend shows each mark as the chart draws it

export const COLOURS = {
  ink: "#1b1f24",
  pass: "#1a7f37",
  fail: "#b3261e",
  band: "rgba(31, 78, 121, 0.28)",
  bandEdge: "#1f4e79",
  threshold: "#7a4a00",
  series: ["#1f4e79", "#b3261e", "#1a7f37", "#7a4a00", "#6f42c1", "#0b7285", "#a61e4d", "#495057"],
};

/** ``value`` on [0, 1] where 1 is best, as the hub normalises scores for the composite
 * (assay/core/scoring.py: min-max over the scale, clamped, flipped when lower is better). */
export function normalise(value, scale, lowerIsBetter) {
  if (typeof value !== "number" || !Number.isFinite(value) || !scale) return null;
  const span = scale.max - scale.min;
  if (!(span > 0)) return null;
  const unit = Math.min(1, Math.max(0, (value - scale.min) / span));
  return lowerIsBetter ? 1 - unit : unit;
}

function make(canvas, config) {
  Chart.getChart(canvas)?.destroy();
  return new Chart(canvas, config);
}

/** Per benchmark: the score (a dot, green when it passed), its 95 % confidence interval (a bar from low to
 * high) and the threshold (a dash), all on the benchmark's own scale turned to [0, 1] with 1 best. */
export function scoreChart(canvas, rows) {
  return make(canvas, {
    type: "bar",
    data: {
      labels: rows.map((r) => r.label),
      datasets: [
        {
          label: "95% confidence interval",
          data: rows.map((r) => (r.low === null || r.high === null ? null : [r.low, r.high])),
          backgroundColor: COLOURS.band,
          borderColor: COLOURS.bandEdge,
          borderWidth: 1,
          barPercentage: 0.35,
          order: 3,
        },
        {
          type: "line",
          label: "score",
          data: rows.map((r) => r.score),
          showLine: false,
          pointRadius: 7,
          pointHoverRadius: 8,
          pointStyle: rows.map((r) => (r.pass ? "circle" : "rectRot")),
          pointBackgroundColor: rows.map((r) => (r.pass ? COLOURS.pass : COLOURS.fail)),
          pointBorderColor: COLOURS.ink,
          backgroundColor: COLOURS.pass,
          borderColor: COLOURS.ink,
          order: 1,
        },
        {
          type: "line",
          label: "threshold",
          data: rows.map((r) => r.threshold),
          showLine: false,
          pointStyle: "line",
          pointRadius: 16,
          pointBorderWidth: 3,
          borderColor: COLOURS.threshold,
          pointBorderColor: COLOURS.threshold,
          order: 2,
        },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        y: { min: 0, max: 1, title: { display: true, text: "position on the benchmark's scale (1 = best)" } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });
}

/** Per benchmark: the change from the baseline (a dot, red when the gate counts it as a regression) inside
 * its noise band (± sigma combined standard errors), in scale units with "better" upwards. */
export function deltaChart(canvas, rows) {
  return make(canvas, {
    type: "bar",
    data: {
      labels: rows.map((r) => r.label),
      datasets: [
        {
          label: "noise band (± σ · combined standard error)",
          data: rows.map((r) => (r.noise === null ? null : [-r.noise, r.noise])),
          backgroundColor: COLOURS.band,
          borderColor: COLOURS.bandEdge,
          borderWidth: 1,
          barPercentage: 0.35,
          order: 2,
        },
        {
          type: "line",
          label: "change (better ↑)",
          data: rows.map((r) => r.delta),
          showLine: false,
          pointRadius: 7,
          pointStyle: rows.map((r) => (r.regressed ? "rectRot" : "circle")),
          pointBackgroundColor: rows.map((r) => (r.regressed ? COLOURS.fail : COLOURS.pass)),
          pointBorderColor: COLOURS.ink,
          backgroundColor: COLOURS.pass,
          borderColor: COLOURS.ink,
          order: 1,
        },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      scales: { y: { title: { display: true, text: "change as a share of the scale (better ↑)" } } },
      plugins: { legend: { position: "bottom" } },
    },
  });
}

/** One line per series over model versions; `failed[i]` marks a version whose gate failed. */
export function historyChart(canvas, labels, series, failed) {
  return make(canvas, {
    type: "line",
    data: {
      labels,
      datasets: series.map((s, i) => ({
        label: s.label,
        data: s.data,
        borderColor: COLOURS.series[i % COLOURS.series.length],
        backgroundColor: COLOURS.series[i % COLOURS.series.length],
        borderWidth: s.composite ? 3 : 1.5,
        borderDash: s.composite ? [] : [5, 3],
        spanGaps: true,
        pointRadius: labels.map((_, j) => (failed[j] ? 8 : 4)),
        pointStyle: labels.map((_, j) => (failed[j] ? "crossRot" : "circle")),
        pointBorderColor: labels.map((_, j) => (failed[j] ? COLOURS.fail : COLOURS.series[i % COLOURS.series.length])),
        pointBorderWidth: labels.map((_, j) => (failed[j] ? 3 : 1)),
      })),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        y: { min: 0, max: 1, title: { display: true, text: "score on [0, 1] (1 = best)" } },
        x: { title: { display: true, text: "model version" } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });
}

/** A collection's weights, one bar per benchmark. */
export function weightChart(canvas, labels, weights) {
  return make(canvas, {
    type: "bar",
    data: { labels, datasets: [{ label: "weight", data: weights, backgroundColor: COLOURS.bandEdge }] },
    options: {
      indexAxis: "y",
      responsive: true,
      maintainAspectRatio: false,
      scales: { x: { beginAtZero: true, title: { display: true, text: "weight" } } },
      plugins: { legend: { display: false } },
    },
  });
}
