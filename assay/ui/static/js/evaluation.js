// One evaluation: scores with confidence intervals against thresholds and direction, the composite with
// coverage, the gate's decision and why, usage, timings, the adapter's log tail, export links, and the
// cancel and retry buttons. Follows a running evaluation until it finishes.
import {
  ApiError,
  TERMINAL,
  alert,
  api,
  badge,
  duration,
  h,
  isNumber,
  num,
  pathPart,
  pct,
  poll,
  progressBar,
  seconds,
  start,
  table,
  when,
} from "./lib.js";
import { normalise, scoreChart } from "./charts.js";

const jobId = pathPart(2);

function plannedOf(job, index) {
  return (job.plan?.benchmarks ?? []).find((p) => p.benchmark_index === index) ?? {};
}

function resultOf(job, index) {
  return (job.results?.benchmarks ?? []).find((r) => r.benchmark_index === index);
}

function direction(lowerIsBetter) {
  return lowerIsBetter ? "↓ lower is better" : "↑ higher is better";
}

function verdict(test) {
  if (!test) return "—";
  if (!test.evaluated) return h("span", { class: "muted" }, `not judged: ${(test.reason ?? "no result").replaceAll("_", " ")}`);
  return test.pass ? badge("pass") : badge("fail");
}

function usageText(usage) {
  // Tokens and cache hits always (the sidecar counts them); any other counter only when it is not zero.
  if (!usage || typeof usage !== "object") return "—";
  const always = ["total_tokens", "cache_hits"];
  const parts = Object.entries(usage)
    .filter(([k, v]) => isNumber(v) && (always.includes(k) || v !== 0))
    .sort(([a], [b]) => always.indexOf(b) - always.indexOf(a))
    .map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`);
  return parts.length ? parts.join(", ") : "—";
}

function exportLinks(job, result) {
  const links = [];
  const experiment = job.results?.mlflow_experiment_url;
  if (result?.mlflow_run_id) {
    links.push(
      experiment && /^https?:\/\//.test(experiment)
        ? h("a", { href: `${experiment}/runs/${encodeURIComponent(result.mlflow_run_id)}`, rel: "noopener" }, "MLflow run")
        : h("span", {}, `MLflow run ${result.mlflow_run_id}`),
    );
  }
  const reference = result?.artifacts?.oci_reference;
  if (reference) links.push(h("code", { class: "oci", title: "OCI artifact" }, reference));
  return links.length ? links : "—";
}

function scoreCell(test) {
  if (!test || !isNumber(test.primary_score)) return "—";
  const ci = test.confidence_interval;
  return h(
    "span",
    { class: "score" },
    num(test.primary_score),
    ci ? h("small", { class: "ci" }, ` [${num(ci.low)}, ${num(ci.high)}]`) : null,
  );
}

function benchmarkRows(job) {
  return (job.status?.benchmarks ?? []).map((status) => {
    const index = status.benchmark_index;
    const planned = plannedOf(job, index);
    const result = resultOf(job, index);
    const test = result?.test;
    const metric = test?.primary_score_metric ?? planned.primary_score?.metric ?? "—";
    const lower = test?.lower_is_better ?? planned.primary_score?.lower_is_better ?? false;
    const threshold = test?.threshold ?? planned.pass_criteria?.threshold;
    return h(
      "tr",
      { dataset: { benchmark: String(index), status: status.status } },
      h("th", { scope: "row" }, `${status.provider_id}/${status.id}`),
      h(
        "td",
        {},
        badge(status.status),
        TERMINAL.has(status.status) ? null : progressBar(status.progress ?? 0, `${status.id} progress`),
        status.error_message ? h("div", { class: "error-text" }, status.error_message) : null,
      ),
      h("td", {}, metric),
      h("td", { class: "num" }, scoreCell(test)),
      h("td", { class: "num" }, isNumber(threshold) ? num(threshold) : "—"),
      h("td", {}, direction(lower)),
      h("td", {}, verdict(test)),
      h("td", { class: "num" }, isNumber(planned.weight) ? String(planned.weight) : "—"),
      h("td", {}, usageText(result?.usage)),
      h("td", { class: "num" }, duration(seconds(status.started_at, status.completed_at))),
      h("td", {}, exportLinks(job, result)),
    );
  });
}

function chartRows(job) {
  const rows = [];
  for (const result of job.results?.benchmarks ?? []) {
    const test = result.test ?? {};
    if (!isNumber(test.primary_score) || !test.scale) continue;
    const lower = Boolean(test.lower_is_better);
    const ci = test.confidence_interval;
    rows.push({
      label: result.id,
      index: result.benchmark_index,
      score: test.normalised_score ?? normalise(test.primary_score, test.scale, lower),
      low: ci ? normalise(ci.low, test.scale, lower) : null,
      high: ci ? normalise(ci.high, test.scale, lower) : null,
      threshold: isNumber(test.threshold) ? normalise(test.threshold, test.scale, lower) : null,
      pass: Boolean(test.pass),
    });
  }
  return rows;
}

function compositePanel(job, gate) {
  const test = job.results?.test;
  const items = [];
  if (test?.evaluated) {
    items.push(
      h("div", { class: "stat" }, h("dt", {}, "Composite"), h("dd", { id: "composite-score" }, num(test.score))),
      h("div", { class: "stat" }, h("dt", {}, "Threshold"), h("dd", { id: "composite-threshold" }, num(test.threshold))),
      h("div", { class: "stat" }, h("dt", {}, "Coverage"), h("dd", { id: "composite-coverage" }, pct(test.coverage))),
      h("div", { class: "stat" }, h("dt", {}, "Result"), h("dd", { id: "composite-result" }, test.pass ? badge("pass") : badge("fail"))),
    );
    if (isNumber(test.stderr)) items.push(h("div", { class: "stat" }, h("dt", {}, "Std. error"), h("dd", {}, num(test.stderr))));
  } else if (test) {
    items.push(h("div", { class: "stat" }, h("dt", {}, "Composite"), h("dd", { id: "composite-score" }, `not judged: ${test.reason ?? ""}`)));
  }
  if (gate) {
    items.push(h("div", { class: "stat" }, h("dt", {}, "Gate"), h("dd", { id: "gate-decision" }, badge(gate.decision))));
  }
  const why = [];
  if (gate?.reasons?.length) {
    why.push(h("p", { id: "gate-reasons" }, "Why: ", gate.reasons.map((r) => r.replaceAll("_", " ")).join("; ")));
  }
  for (const r of gate?.regressions ?? []) {
    why.push(
      h(
        "p",
        { class: "regression" },
        `Regression: ${r.provider_id}/${r.id} ${r.metric} ${num(r.baseline)} → ${num(r.current)} (${num(r.delta)}; tolerance ${num(r.allowed)}, noise ${num(r.noise)})`,
      ),
    );
  }
  if (gate?.baseline?.job_id) {
    why.push(
      h(
        "p",
        { id: "gate-baseline" },
        "Baseline: ",
        h("a", { href: `/ui/evaluations/${encodeURIComponent(gate.baseline.job_id)}` }, gate.baseline.job_id),
        gate.baseline.version ? ` (version ${gate.baseline.version})` : "",
        " · ",
        h("a", { href: `/ui/compare?job=${encodeURIComponent(jobId)}&baseline=${encodeURIComponent(gate.baseline.job_id)}` }, "compare"),
      ),
    );
  } else if (gate?.baseline?.reason) {
    why.push(h("p", {}, `No baseline: ${gate.baseline.reason.replaceAll("_", " ")}`));
  }
  return h("section", { "aria-labelledby": "h-result" }, h("h2", { id: "h-result" }, "Result"), h("dl", { class: "stats" }, items), why);
}

function facts(job) {
  const total = seconds(job.status.started_at, job.status.completed_at);
  const rows = [
    ["State", badge(job.status.state)],
    ["Message", job.status.message?.message ?? "—"],
    ["Model", `${job.model?.name ?? "—"} (${job.model?.url ?? "—"})`],
    ["Collection", job.collection?.id ?? "—"],
    ["Owner", job.resource.owner ?? "—"],
    ["Tags", (job.tags ?? []).join(", ") || "—"],
    ["Created", when(job.resource.created_at)],
    ["Started", when(job.status.started_at)],
    ["Finished", when(job.status.completed_at)],
    ["Duration", duration(total)],
    ["Progress", progressBar(job.status.progress ?? 0, "evaluation progress")],
  ];
  const experiment = job.results?.mlflow_experiment_url;
  if (experiment && /^https?:\/\//.test(experiment)) rows.push(["MLflow", h("a", { href: experiment, rel: "noopener" }, "experiment")]);
  const card = job.results?.oci?.evaluation_card?.oci_reference;
  if (card) rows.push(["Evaluation card", h("code", {}, card)]);
  return h("dl", { class: "facts", id: "facts" }, rows.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
}

function actions(job, refresh, say) {
  const terminal = TERMINAL.has(job.status.state);
  const retryable = terminal && (job.status.benchmarks ?? []).some((b) => b.status === "failed" || b.status === "cancelled");
  const act = (label, path, confirmText) =>
    h(
      "button",
      {
        type: "button",
        id: `${label.toLowerCase()}-button`,
        onclick: async (event) => {
          if (confirmText && !window.confirm(confirmText)) return;
          const button = event.currentTarget;
          button.disabled = true;
          try {
            await api(path, { method: "POST" });
            say(`${label} requested.`);
            await refresh();
          } catch (error) {
            say(`${label} failed: ${error.message}`);
            button.disabled = false;
          }
        },
      },
      label,
    );
  return h(
    "div",
    { class: "actions" },
    terminal ? null : act("Cancel", `evaluations/jobs/${encodeURIComponent(jobId)}/cancel`, "Cancel this evaluation?"),
    retryable ? act("Retry", `evaluations/jobs/${encodeURIComponent(jobId)}/retry`, null) : null,
    h("a", { href: `/api/v1/evaluations/jobs/${encodeURIComponent(jobId)}/report?format=markdown` }, "Markdown report"),
  );
}

start("evaluation", async (root) => {
  const notice = h("p", { id: "notice", role: "status", "aria-live": "polite" });
  const say = (text) => (notice.textContent = text);
  let job = null;
  let gate = null;
  let gateReadFor = null;
  const canvas = h("canvas", { id: "score-chart", role: "img", "aria-label": "Scores with 95% confidence intervals and thresholds per benchmark" });
  const chartBox = h("div", { class: "chart" }, canvas);
  const logs = h("pre", { id: "log-tail", tabindex: "0", "aria-label": "Adapter log tail" });

  const refresh = async () => {
    job = await api(`evaluations/jobs/${encodeURIComponent(jobId)}`);
    const state = job.status.state;
    if (TERMINAL.has(state) && gateReadFor !== job.resource.updated_at) {
      try {
        gate = await api(`evaluations/jobs/${encodeURIComponent(jobId)}/gate`);
      } catch (error) {
        gate = null;
        if (!(error instanceof ApiError)) throw error;
      }
      gateReadFor = job.resource.updated_at;
    }
    const text = await api(`evaluations/jobs/${encodeURIComponent(jobId)}/logs`, { query: { tail_lines: 200 }, text: true });
    document.getElementById("page-title").textContent = job.name ?? jobId;
    document.title = `${job.name ?? jobId} · Assay`;
    const rows = chartRows(job);
    const focused = document.activeElement?.id; // keep a keyboard user's place across refreshes
    root.replaceChildren(
      notice,
      actions(job, refresh, say),
      h("section", { "aria-labelledby": "h-facts" }, h("h2", { id: "h-facts" }, "Evaluation"), facts(job)),
      TERMINAL.has(state) ? compositePanel(job, gate) : null,
      h(
        "section",
        { "aria-labelledby": "h-benchmarks" },
        h("h2", { id: "h-benchmarks" }, "Benchmarks"),
        rows.length ? chartBox : h("p", { class: "muted" }, "No scored benchmark yet."),
        h(
          "div",
          { class: "scroll" },
          table(
            "Per benchmark: score with its 95% confidence interval, threshold and direction",
            ["Benchmark", "Status", "Metric", "Score [95% CI]", "Threshold", "Direction", "Result", "Weight", "Usage", "Time", "Exports"],
            benchmarkRows(job),
            { id: "benchmarks" },
          ),
        ),
      ),
      h("section", { "aria-labelledby": "h-logs" }, h("h2", { id: "h-logs" }, "Log tail"), logs),
    );
    logs.textContent = text || "(no output yet)";
    if (rows.length) scoreChart(canvas, rows);
    if (focused) document.getElementById(focused)?.focus();
    document.body.dataset.state = state;
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed ?? 0) + 1);
  };

  try {
    await refresh();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      root.replaceChildren(alert(`No evaluation ${jobId} in tenant ${document.getElementById("tenant-name").textContent}.`));
      return;
    }
    throw error;
  }
  poll(refresh, () => job && !TERMINAL.has(job.status.state), { fast: 1500, slow: 60000 });
});
