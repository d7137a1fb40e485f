// Compare two evaluations: per-benchmark deltas with their noise bands, regressions marked exactly as the
// gate decides them (the hub's /gate and /compare routes: assay/core/gate.py over assay/core/compare.py).
import { TERMINAL, all, api, badge, h, isNumber, num, pct, signed, start, table, when } from "./lib.js";
import { deltaChart } from "./charts.js";

function picker(id, label, jobs, chosen) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h(
      "select",
      { id, name: id === "pick-job" ? "job" : "baseline", required: true },
      h("option", { value: "" }, "choose an evaluation"),
      jobs.map((j) =>
        h(
          "option",
          { value: j.resource.id, selected: j.resource.id === chosen },
          `${j.name ?? j.resource.id} · ${j.model?.name ?? "?"} · ${j.status.state} · ${when(j.resource.created_at)}`,
        ),
      ),
    ),
  );
}

function scaleOf(job, index) {
  const planned = (job.plan?.benchmarks ?? []).find((p) => p.benchmark_index === index);
  const scale = planned?.primary_score?.scale;
  return scale && scale.max > scale.min ? scale : null;
}

function rowsFor(job, comparison) {
  return comparison.benchmarks.map((r) => {
    const cells = [
      h("th", { scope: "row" }, `${r.provider_id}/${r.id}`),
      h("td", {}, r.metric ?? "—"),
      h("td", {}, r.lower_is_better ? "↓ lower is better" : r.metric ? "↑ higher is better" : "—"),
      h("td", { class: "num" }, num(r.baseline)),
      h("td", { class: "num" }, num(r.current)),
      h("td", { class: "num delta" }, r.compared ? signed(r.delta) : "—"),
      h("td", { class: "num" }, isNumber(r.relative_delta) ? `${(r.relative_delta * 100).toFixed(1)}%` : "—"),
      h("td", { class: "num" }, r.compared ? `± ${num(r.noise)}` : "—"),
      h("td", { class: "num" }, r.compared ? num(r.allowed) : "—"),
      h(
        "td",
        {},
        r.regressed
          ? badge("regressed")
          : r.compared
            ? h("span", {}, "within tolerance or noise")
            : h("span", { class: "muted" }, (r.reason ?? "").replaceAll("_", " ")),
      ),
    ];
    return h("tr", { dataset: { benchmark: String(r.benchmark_index), regressed: String(Boolean(r.regressed)) } }, cells);
  });
}

function chartRows(job, comparison) {
  const rows = [];
  for (const r of comparison.benchmarks) {
    const scale = scaleOf(job, r.benchmark_index);
    if (!r.compared || !scale) continue;
    const span = scale.max - scale.min;
    const better = r.lower_is_better ? -1 : 1;
    rows.push({
      label: r.id,
      delta: (better * r.delta) / span,
      noise: isNumber(r.noise) ? r.noise / span : null,
      regressed: Boolean(r.regressed),
    });
  }
  return rows;
}

start("compare", async (root) => {
  const params = new URLSearchParams(location.search);
  const jobId = params.get("job") ?? "";
  const baselineId = params.get("baseline") ?? "";
  const recent = (await all("evaluations/jobs", {}, 200)).items;
  const tolerance = ["max_drop", "sigma"].map((name) =>
    h(
      "div",
      { class: "field" },
      h("label", { for: `tol-${name}` }, name === "max_drop" ? "Max drop (blank: the policy's)" : "Sigma (blank: the policy's)"),
      h("input", { id: `tol-${name}`, name, type: "number", step: "any", min: "0", value: params.get(name) ?? "" }),
    ),
  );
  const form = h(
    "form",
    { class: "filters", method: "get", action: "/ui/compare", "aria-label": "Choose evaluations to compare" },
    picker("pick-job", "Evaluation", recent, jobId),
    picker("pick-baseline", "Baseline", recent, baselineId),
    tolerance,
    h(
      "div",
      { class: "field check" },
      h("input", { id: "tol-relative", name: "relative", type: "checkbox", value: "true", checked: params.get("relative") === "true" }),
      h("label", { for: "tol-relative" }, "Max drop relative to the baseline"),
    ),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Compare")),
  );
  root.replaceChildren(form);
  if (!jobId || !baselineId) {
    root.append(h("p", { class: "muted" }, "Choose an evaluation and the baseline to compare it with."));
    return;
  }
  const [job, baseline] = await Promise.all(
    [jobId, baselineId].map((id) => api(`evaluations/jobs/${encodeURIComponent(id)}`)),
  );
  const asked = { baseline: baselineId };
  for (const name of ["max_drop", "sigma", "relative"]) if (params.get(name)) asked[name] = params.get(name);
  // The gate decides with the job's policy's tolerance unless one is asked for; the comparison uses the same.
  const gate = await api(`evaluations/jobs/${encodeURIComponent(jobId)}/gate`, { query: asked });
  const comparison = await api(`evaluations/jobs/${encodeURIComponent(jobId)}/compare`, {
    query: { baseline: baselineId, ...gate.tolerance },
  });
  const regressions = comparison.benchmarks.filter((r) => r.regressed);
  const composite = comparison.composite;
  const canvas = h("canvas", { id: "delta-chart", role: "img", "aria-label": "Change per benchmark with its noise band" });
  const rows = chartRows(job, comparison);
  const side = (label, j) =>
    h(
      "div",
      { class: "side" },
      h("h3", {}, label),
      h("p", {}, h("a", { href: `/ui/evaluations/${encodeURIComponent(j.resource.id)}` }, j.name ?? j.resource.id)),
      h("p", {}, `${j.model?.name ?? "?"} · `, badge(j.status.state), ` · ${when(j.resource.created_at)}`),
      h("p", {}, `composite ${num(j.results?.test?.score)} · coverage ${pct(j.results?.test?.coverage)}`),
    );
  root.append(
    h("section", { class: "sides", "aria-label": "The two evaluations" }, side("Baseline", baseline), side("Evaluation", job)),
    h(
      "section",
      { "aria-labelledby": "h-decision" },
      h("h2", { id: "h-decision" }, "Gate"),
      h(
        "dl",
        { class: "stats" },
        h("div", { class: "stat" }, h("dt", {}, "Decision"), h("dd", { id: "gate-decision" }, badge(gate.decision))),
        h("div", { class: "stat" }, h("dt", {}, "Regressions"), h("dd", { id: "regression-count" }, String(regressions.length))),
        h("div", { class: "stat" }, h("dt", {}, "Composite change"), h("dd", { id: "composite-delta" }, composite.compared ? signed(composite.delta) : "—")),
        h(
          "div",
          { class: "stat" },
          h("dt", {}, "Tolerance"),
          h("dd", {}, `max drop ${num(gate.tolerance.max_drop)}${gate.tolerance.relative ? " (relative)" : ""}, σ ${gate.tolerance.sigma}`),
        ),
      ),
      gate.reasons?.length ? h("p", { id: "gate-reasons" }, "Why: ", gate.reasons.map((r) => r.replaceAll("_", " ")).join("; ")) : null,
      TERMINAL.has(job.status.state) && TERMINAL.has(baseline.status.state) ? null : h("p", { class: "muted" }, "One of them is still running."),
    ),
    h(
      "section",
      { "aria-labelledby": "h-deltas" },
      h("h2", { id: "h-deltas" }, "Per benchmark"),
      rows.length ? h("div", { class: "chart" }, canvas) : null,
      h(
        "div",
        { class: "scroll" },
        table(
          "Change from the baseline: a regression is worse than both the tolerance and the noise (σ × combined standard error)",
          ["Benchmark", "Metric", "Direction", "Baseline", "Current", "Change", "Relative", "Noise", "Tolerance", "Verdict"],
          rowsFor(job, comparison),
          { id: "deltas" },
        ),
      ),
    ),
  );
  if (rows.length) deltaChart(canvas, rows);
});
