// The catalogue: providers and their benchmarks (metrics, scales, direction, thresholds), and collections
// with their weights.
import { all, h, isNumber, num, start, table } from "./lib.js";
import { weightChart } from "./charts.js";

function scaleText(score) {
  const scale = score?.scale;
  return scale ? `${num(scale.min)} to ${num(scale.max)}` : "—";
}

function providerSection(provider) {
  const rows = (provider.benchmarks ?? []).map((b) =>
    h(
      "tr",
      { dataset: { benchmark: b.id } },
      h("th", { scope: "row" }, b.id),
      h("td", {}, b.name ?? "—"),
      h("td", {}, b.category ?? "—"),
      h("td", {}, (b.metrics ?? []).join(", ") || "—"),
      h("td", {}, b.primary_score?.metric ?? "—"),
      h("td", {}, scaleText(b.primary_score)),
      h("td", {}, b.primary_score ? (b.primary_score.lower_is_better ? "↓ lower is better" : "↑ higher is better") : "—"),
      h("td", { class: "num" }, isNumber(b.pass_criteria?.threshold) ? num(b.pass_criteria.threshold) : "—"),
    ),
  );
  const id = provider.resource.id;
  return h(
    "section",
    { class: "card", "aria-labelledby": `provider-${id}`, dataset: { providerId: id } },
    h("h3", { id: `provider-${id}` }, `${provider.name ?? id} `, h("small", {}, `(${id}${provider.resource.tenant ? "" : ", system"})`)),
    provider.description ? h("p", {}, provider.description) : null,
    h(
      "div",
      { class: "scroll" },
      table(`Benchmarks of ${id}`, ["Benchmark", "Name", "Category", "Metrics", "Primary metric", "Scale", "Direction", "Threshold"], rows),
    ),
  );
}

function collectionSection(collection, charts) {
  const id = collection.resource.id;
  const entries = collection.benchmarks ?? [];
  const weights = entries.map((b) => (isNumber(b.weight) ? b.weight : 1));
  const canvas = h("canvas", { id: `weights-${id}`, role: "img", "aria-label": `Weights of the benchmarks of ${id}` });
  charts.push(() => weightChart(canvas, entries.map((b) => `${b.provider_id}/${b.id}`), weights));
  const rows = entries.map((b, i) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, `${b.provider_id}/${b.id}`),
      h("td", { class: "num" }, String(weights[i])),
      h("td", { class: "num" }, isNumber(b.pass_criteria?.threshold) ? num(b.pass_criteria.threshold) : "inherited"),
    ),
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": `collection-${id}`, dataset: { collectionId: id } },
    h("h3", { id: `collection-${id}` }, `${collection.name ?? id} `, h("small", {}, `(${id})`)),
    h("p", {}, `category ${collection.category ?? "—"} · pass threshold ${num(collection.pass_criteria?.threshold)}`),
    h("div", { class: "chart small" }, canvas),
    table(`Benchmarks and weights of ${id}`, ["Benchmark", "Weight", "Threshold"], rows),
  );
}

start("catalogue", async (root) => {
  const [providers, collections] = await Promise.all([
    all("evaluations/providers", {}, 500),
    all("evaluations/collections", {}, 500),
  ]);
  const charts = [];
  root.replaceChildren(
    h("section", { "aria-labelledby": "h-providers", id: "providers" }, h("h2", { id: "h-providers" }, `Providers (${providers.total})`), providers.items.map(providerSection)),
    h(
      "section",
      { "aria-labelledby": "h-collections", id: "collections" },
      h("h2", { id: "h-collections" }, `Collections (${collections.total})`),
      collections.items.map((c) => collectionSection(c, charts)),
    ),
  );
  for (const draw of charts) draw();
});
