// Shared by every page: the API client, DOM building without innerHTML, number formats, page start-up.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

export const tenant = meta("assay-tenant");
const csrf = meta("assay-csrf");

export const TERMINAL = new Set(["completed", "failed", "cancelled", "partially_failed"]);

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body?.message ?? body?.detail ?? `HTTP ${status}`;
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.body = body;
  }
}

/** Call the REST API (`/api/v1/<path>`) as this page's user: the session cookie rides along, the tenant
 * is named, and any request that changes something carries the session's CSRF token. */
export async function api(path, { method = "GET", query = {}, body, text = false } = {}) {
  const url = new URL(`/api/v1/${path.replace(/^\//, "")}`, location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  const headers = { Accept: text ? "text/plain" : "application/json" };
  if (tenant) headers["X-Tenant"] = tenant;
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (response.status === 401) {
    location.assign(`/ui/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, { message: "Sign-in needed" });
  }
  if (!response.ok) {
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    throw new ApiError(response.status, answer);
  }
  if (response.status === 204) return null;
  return text ? response.text() : response.json();
}

/** Every page of a list (the API caps `limit`); `max` bounds how much one page view reads. */
export async function all(path, query = {}, max = 500) {
  const items = [];
  let offset = 0;
  for (;;) {
    const page = await api(path, { query: { ...query, limit: 100, offset } });
    items.push(...page.items);
    offset += page.items.length;
    if (!page.items.length || offset >= page.total_count || offset >= max) return { items, total: page.total_count };
  }
}

/** An element: `h("a", {href: "/x", class: "c"}, "text", child)`. Strings are text, never markup. */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export const isNumber = (value) => typeof value === "number" && Number.isFinite(value);

/** A score or metric: three decimals (whole numbers past 1000), "—" when there is none. */
export function num(value) {
  if (!isNumber(value)) return "—";
  return Math.abs(value) >= 1000 ? value.toFixed(0) : value.toFixed(3);
}

export const signed = (value) => (isNumber(value) ? `${value >= 0 ? "+" : "−"}${num(Math.abs(value))}` : "—");
export const pct = (value) => (isNumber(value) ? `${Math.round(value * 100)}%` : "—");

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function seconds(from, to) {
  if (!from || !to) return null;
  const span = (new Date(to) - new Date(from)) / 1000;
  return Number.isFinite(span) && span >= 0 ? span : null;
}

export function duration(span) {
  if (!isNumber(span)) return "—";
  if (span < 60) return `${span.toFixed(1)} s`;
  const minutes = Math.floor(span / 60);
  return minutes < 60 ? `${minutes} min ${Math.round(span % 60)} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** A badge for a state or a decision; the word itself carries the meaning, colour only repeats it. */
export function badge(word, extra = "") {
  const kind = String(word ?? "unknown");
  return h("span", { class: `badge badge-${kind.replace(/[^a-z_]/g, "")} ${extra}`.trim() }, kind.replaceAll("_", " "));
}

export function progressBar(value, label) {
  const share = isNumber(value) ? Math.max(0, Math.min(1, value)) : 0;
  return h("progress", { max: "1", value: String(share), "aria-label": label, title: pct(share) }, pct(share));
}

export function table(caption, head, rows, props = {}) {
  return h(
    "table",
    props,
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, head.map((cell) => h("th", { scope: "col" }, cell)))),
    h("tbody", {}, rows),
  );
}

export function alert(message) {
  return h("p", { class: "error", role: "alert" }, message);
}

export function pathPart(index) {
  return decodeURIComponent(location.pathname.split("/").filter(Boolean)[index] ?? "");
}

/** Start a page: mark the navigation, run `render` (async) and report failures in the page. */
export async function start(name, render) {
  for (const link of document.querySelectorAll("nav a[data-nav]")) {
    if (link.dataset.nav === name) link.setAttribute("aria-current", "page");
  }
  const root = document.getElementById("app");
  try {
    await render(root);
  } catch (error) {
    root.replaceChildren(alert(error instanceof ApiError ? `${error.message} (HTTP ${error.status})` : String(error)));
  } finally {
    document.body.dataset.ready = "true";
  }
}

/** Poll `tick` while `active()` says so: every `fast` ms while things change, `slow` otherwise, and not at
 * all while the tab is hidden. A tick never overlaps the previous one. */
export function poll(tick, active, { fast = 1500, slow = 10000 } = {}) {
  let timer = null;
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(run, active() ? fast : slow);
  };
  const run = async () => {
    if (document.hidden) return schedule();
    try {
      await tick();
    } catch (error) {
      console.warn("refresh failed", error);
    }
    schedule();
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) run();
  });
  schedule();
}
