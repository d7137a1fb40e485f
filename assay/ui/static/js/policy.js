// A policy's history: its evaluations per model version (jobs tagged policy:<id>), the composite and each
// benchmark's score over versions, and each version's gate decision, regressions and baseline.
import { TERMINAL, all, api, badge, h, isNumber, num, pathPart, pct, start, table } from "./lib.js";
import { historyChart } from "./charts.js";

const policyId = pathPart(2);

/** Natural version order, as the hub orders registry versions (9 < 10, v1.9 < v1.10). */
export function versionOrder(a, b) {
  const parts = (v) => String(v).split(/(\d+)/).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  const x = parts(a);
  const y = parts(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] === undefined) return -1;
    if (y[i] === undefined) return 1;
    if (x[i] === y[i]) continue;
    if (typeof x[i] === "number" && typeof y[i] === "number") return x[i] - y[i];
    return String(x[i]) < String(y[i]) ? -1 : 1;
  }
  return 0;
}

function triggerOf(job) {
  const trigger = job.custom?.assay_trigger ?? {};
  return { model: trigger.model ?? job.model?.name ?? "?", version: trigger.version ?? job.resource.created_at };
}

start("policies", async (root) => {
  const policy = await api(`evaluations/policies/${encodeURIComponent(policyId)}`);
  document.getElementById("page-title").textContent = `Policy ${policy.name ?? policyId}`;
  const found = await all("evaluations/jobs", { tags: `policy:${policyId}` }, 200);
  const jobs = found.items
    .map((job) => ({ job, ...triggerOf(job) }))
    .sort((a, b) => (a.model === b.model ? versionOrder(a.version, b.version) : a.model < b.model ? -1 : 1));
  const gates = await Promise.all(
    jobs.map(({ job }) =>
      TERMINAL.has(job.status.state) ? api(`evaluations/jobs/${encodeURIComponent(job.resource.id)}/gate`).catch(() => null) : null,
    ),
  );
  const labelOf = new Map(jobs.map(({ job, model, version }) => [job.resource.id, `${model} ${version}`]));
  const labels = jobs.map(({ model, version }) => `${model} ${version}`);
  const benchmarks = new Map();
  jobs.forEach(({ job }, j) => {
    for (const result of job.results?.benchmarks ?? []) {
      const key = `${result.provider_id}/${result.id}`;
      if (!benchmarks.has(key)) benchmarks.set(key, new Array(jobs.length).fill(null));
      const value = result.test?.normalised_score;
      benchmarks.get(key)[j] = isNumber(value) ? value : null;
    }
  });
  const series = [
    { label: "composite", composite: true, data: jobs.map(({ job }) => (job.results?.test?.evaluated ? job.results.test.score : null)) },
    ...[...benchmarks].map(([label, data]) => ({ label, data })),
  ];
  const failed = gates.map((g) => g?.decision === "failed");

  const rule = policy.rule ?? {};
  const gateRules = policy.gate ?? {};
  const summary = h(
    "dl",
    { class: "facts", id: "policy-facts" },
    [
      ["Enabled", policy.enabled === false ? "no" : "yes"],
      ["Sources", (rule.sources ?? []).join(", ") || "—"],
      ["Models", rule.model_name ?? rule.model_name_regex ?? "any"],
      ["Evaluates", policy.action?.collection?.id ? `collection ${policy.action.collection.id}` : `${(policy.action?.benchmarks ?? []).length} benchmark(s)`],
      ["Baseline", policy.baseline?.kind ? `${policy.baseline.kind}${policy.baseline.alias ? ` (${policy.baseline.alias})` : ""}` : "previous_version"],
      ["Gate", `max drop ${num(gateRules.max_drop ?? 0)}${gateRules.relative ? " (relative)" : ""}, σ ${gateRules.sigma ?? 2}, thresholds ${gateRules.require_thresholds === false ? "not required" : "required"}`],
    ].map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))),
  );
  const canvas = h("canvas", { id: "history-chart", role: "img", "aria-label": "Composite and benchmark scores per model version; crosses mark failed gates" });
  const rows = jobs.map(({ job }, j) => {
    const gate = gates[j];
    const test = job.results?.test;
    const baselineId = gate?.baseline?.job_id;
    return h(
      "tr",
      { dataset: { jobId: job.resource.id, decision: gate?.decision ?? "" } },
      h("th", { scope: "row" }, labels[j]),
      h("td", {}, h("a", { href: `/ui/evaluations/${encodeURIComponent(job.resource.id)}` }, job.name ?? job.resource.id)),
      h("td", {}, badge(job.status.state)),
      h("td", { class: "num" }, test?.evaluated ? num(test.score) : "—"),
      h("td", { class: "num" }, test?.evaluated ? pct(test.coverage) : "—"),
      h("td", {}, gate ? badge(gate.decision) : "—"),
      h("td", {}, (gate?.reasons ?? []).map((r) => r.replaceAll("_", " ")).join("; ") || "—"),
      h("td", {}, (gate?.regressions ?? []).map((r) => `${r.id} ${num(r.baseline)} → ${num(r.current)}`).join("; ") || "—"),
      h(
        "td",
        {},
        baselineId
          ? [
              h("a", { href: `/ui/evaluations/${encodeURIComponent(baselineId)}` }, labelOf.get(baselineId) ?? baselineId),
              " · ",
              h("a", { href: `/ui/compare?job=${encodeURIComponent(job.resource.id)}&baseline=${encodeURIComponent(baselineId)}` }, "compare"),
            ]
          : (gate?.baseline?.reason ?? "—").replaceAll("_", " "),
      ),
    );
  });
  root.replaceChildren(
    summary,
    h(
      "section",
      { "aria-labelledby": "h-history" },
      h("h2", { id: "h-history" }, "Scores per model version"),
      jobs.length ? h("div", { class: "chart" }, canvas) : h("p", { class: "muted" }, "No evaluation yet."),
      h(
        "div",
        { class: "scroll" },
        table(
          "Each model version's evaluation, gate decision and baseline",
          ["Version", "Evaluation", "State", "Composite", "Coverage", "Gate", "Why", "Regressions", "Baseline"],
          rows,
          { id: "history" },
        ),
      ),
    ),
  );
  if (jobs.length) historyChart(canvas, labels, series, failed);
});
