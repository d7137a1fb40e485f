// Evaluation policies of the tenant, each linking to its history.
import { all, h, start, table, when } from "./lib.js";

start("policies", async (root) => {
  const { items, total } = await all("evaluations/policies", {}, 500);
  const rows = items.map((p) =>
    h(
      "tr",
      { dataset: { policyId: p.resource.id } },
      h("th", { scope: "row" }, h("a", { href: `/ui/policies/${encodeURIComponent(p.resource.id)}` }, p.name ?? p.resource.id)),
      h("td", {}, p.resource.id),
      h("td", {}, p.enabled === false ? "no" : "yes"),
      h("td", {}, (p.rule?.sources ?? []).join(", ")),
      h("td", {}, p.rule?.model_name ?? p.rule?.model_name_regex ?? "any"),
      h("td", {}, p.action?.collection?.id ?? `${(p.action?.benchmarks ?? []).length} benchmark(s)`),
      h("td", {}, p.resource.file ?? "API"),
      h("td", {}, when(p.resource.updated_at)),
    ),
  );
  root.replaceChildren(
    h("p", { role: "status" }, `${total} polic${total === 1 ? "y" : "ies"}`),
    h(
      "div",
      { class: "scroll" },
      table(
        "Evaluation policies",
        ["Name", "Id", "Enabled", "Sources", "Models", "Evaluates", "Defined in", "Updated"],
        rows.length ? rows : [h("tr", {}, h("td", { colspan: "8" }, "No policy yet."))],
        { id: "policies" },
      ),
    ),
  );
});
