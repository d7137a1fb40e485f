// Evaluations: a filterable list that follows running evaluations live (polling the jobs list, which the
// hub answers from its rendered-job cache while nothing changed), with progress per benchmark.
import { TERMINAL, all, badge, h, num, pct, progressBar, start, table, when, poll } from "./lib.js";

const STATES = ["", "pending", "running", "completed", "failed", "partially_failed", "cancelled"];
const FILTERS = ["status", "model", "collection", "policy", "tags", "owner"];

function readFilters() {
  const params = new URLSearchParams(location.search);
  return Object.fromEntries(FILTERS.map((name) => [name, params.get(name) ?? ""]));
}

function filterForm(filters, onChange) {
  const field = (name, label, control) =>
    h("div", { class: "field" }, h("label", { for: `filter-${name}` }, label), control);
  const text = (name, hint) =>
    h("input", { id: `filter-${name}`, name, type: "text", value: filters[name], placeholder: hint, autocomplete: "off" });
  const state = h(
    "select",
    { id: "filter-status", name: "status" },
    STATES.map((s) => h("option", { value: s, selected: s === filters.status }, s ? s.replaceAll("_", " ") : "any")),
  );
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter evaluations" },
    field("status", "State", state),
    field("model", "Model", text("model", "name contains")),
    field("collection", "Collection", text("collection", "collection id")),
    field("policy", "Policy", text("policy", "policy id")),
    field("tags", "Tags", text("tags", "a,b (all) or a|b (any)")),
    field("owner", "Owner", text("owner", "user")),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Apply"), h("a", { href: "/ui/" }, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = Object.fromEntries(FILTERS.map((name) => [name, String(data.get(name) ?? "").trim()]));
    const params = new URLSearchParams(Object.entries(next).filter(([, v]) => v));
    history.replaceState(null, "", `/ui/${params.size ? `?${params}` : ""}`);
    onChange(next);
  });
  return form;
}

function query(filters) {
  const tags = [filters.tags, filters.policy ? `policy:${filters.policy}` : ""].filter(Boolean).join(",");
  return { status: filters.status, tags, owner: filters.owner, collection_id: filters.collection };
}

function benchmarkProgress(job) {
  return h(
    "ul",
    { class: "bench-progress" },
    (job.status?.benchmarks ?? []).map((b) =>
      h(
        "li",
        { dataset: { benchmark: String(b.benchmark_index) } },
        h("span", { class: "bench-name" }, `${b.provider_id}/${b.id}`),
        progressBar(TERMINAL.has(b.status) ? 1 : b.progress ?? 0, `${b.id} progress`),
        h("span", { class: "bench-status" }, b.status + (b.total_steps ? ` ${b.completed_steps ?? 0}/${b.total_steps}` : "")),
      ),
    ),
  );
}

function row(job) {
  const id = job.resource.id;
  const test = job.results?.test;
  const policy = (job.tags ?? []).find((t) => t.startsWith("policy:"));
  return h(
    "tr",
    { dataset: { jobId: id, state: job.status.state } },
    h("th", { scope: "row" }, h("a", { href: `/ui/evaluations/${encodeURIComponent(id)}` }, job.name ?? id)),
    h("td", {}, badge(job.status.state)),
    h("td", {}, job.model?.name ?? "—"),
    h("td", {}, job.collection?.id ?? "—"),
    h("td", {}, policy ? h("a", { href: `/ui/policies/${encodeURIComponent(policy.slice(7))}` }, policy.slice(7)) : "—"),
    h("td", {}, job.resource.owner ?? "—"),
    h(
      "td",
      { class: "composite" },
      test?.evaluated ? `${num(test.score)} ${test.pass ? "pass" : "fail"}` : "—",
      test?.evaluated && test.coverage !== undefined ? h("small", {}, ` coverage ${pct(test.coverage)}`) : null,
    ),
    h("td", { class: "progress" }, progressBar(job.status.progress ?? 0, `${job.name ?? id} progress`), benchmarkProgress(job)),
    h("td", {}, when(job.resource.created_at)),
  );
}

start("evaluations", async (root) => {
  let filters = readFilters();
  const summary = h("p", { id: "summary", role: "status" });
  const body = h("tbody");
  const list = table(
    "Evaluations, newest first",
    ["Name", "State", "Model", "Collection", "Policy", "Owner", "Composite", "Progress", "Created"],
    [],
    { id: "evaluations" },
  );
  list.querySelector("tbody").replaceWith(body);
  let jobs = [];
  const seen = new Map();

  const refresh = async () => {
    const found = await all("evaluations/jobs", query(filters), 200);
    const wanted = filters.model.toLowerCase();
    jobs = wanted ? found.items.filter((j) => (j.model?.name ?? "").toLowerCase().includes(wanted)) : found.items;
    // Replace only the rows that changed, so focus and reading position stay put between refreshes.
    const rows = jobs.map((job) => {
      const key = `${job.resource.updated_at}|${job.status.state}|${job.status.progress}`;
      const cached = seen.get(job.resource.id);
      if (cached && cached.key === key) return cached.row;
      const fresh = row(job);
      seen.set(job.resource.id, { key, row: fresh });
      return fresh;
    });
    body.replaceChildren(...rows);
    const running = jobs.filter((j) => !TERMINAL.has(j.status.state)).length;
    summary.textContent = `${jobs.length} of ${found.total} evaluation${found.total === 1 ? "" : "s"}${running ? `, ${running} running` : ""}`;
    if (!jobs.length) body.replaceChildren(h("tr", {}, h("td", { colspan: "9" }, "No evaluation matches.")));
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed ?? 0) + 1);
  };

  root.replaceChildren(
    filterForm(filters, (next) => {
      filters = next;
      refresh();
    }),
    summary,
    h("div", { class: "scroll" }, list),
  );
  await refresh();
  poll(refresh, () => jobs.some((j) => !TERMINAL.has(j.status.state)));
});
