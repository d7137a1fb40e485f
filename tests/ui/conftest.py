"""The dashboard's browser tests: Debian's chromium driven by Playwright, against a live local hub whose
evaluations really ran (bench/adapters/wire.py, the exact-match adapter, and tests/ui/stepper.py)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, LiveServer
from tests.lifecycle.test_local_lifecycle import exact_match_provider
from tests.support.waiting import wait_for
from tests.tracking.conftest import mlflow_server  # noqa: F401  (the export test's real MLflow server)
from tests.triggers.hub import answers
from tests.triggers.senders import registry_cloudevent

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TERMINAL = {"completed", "failed", "cancelled", "partially_failed"}
OTHER = "team-b"
STEPPER = Path(__file__).parent / "stepper.py"


@dataclass
class Browser:
    """One chromium with a fresh profile; every page it opens records console errors and page errors."""

    context: Any
    errors: list[str] = field(default_factory=list)

    def page(self) -> Any:
        page = self.context.new_page()
        page.on(
            "console",
            lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        return page


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Callable[[], Browser]]:
    """``browser()`` starts a chromium with its own fresh user-data-dir (call twice for two people)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        started: list[Any] = []

        def launch() -> Browser:
            profile = tmp_path / f"chromium-profile-{len(started)}"
            context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1360, "height": 900},
            )
            context.set_default_timeout(30_000)
            started.append(context)
            return Browser(context)

        yield launch
        for context in started:
            context.close()


def smoke_provider() -> dict[str, Any]:
    """The README tour's provider: bench/adapters/wire.py reports one phase and ``score: 1.0``."""
    return {
        "id": "smoke",
        "name": "Smoke",
        "runtime": {"local": {"command": f"{sys.executable} {REPO / 'bench' / 'adapters' / 'wire.py'}"}},
        "benchmarks": [
            {
                "id": "noop",
                "name": "No-op",
                "category": "smoke",
                "metrics": ["score"],
                "primary_score": {"metric": "score", "scale": {"min": 0, "max": 1}},
                "pass_criteria": {"threshold": 0.5},
            }
        ],
    }


def stepper_provider() -> dict[str, Any]:
    return {
        "id": "stepper",
        "name": "Stepper (the test drives its progress)",
        "runtime": {"local": {"command": f"{sys.executable} {STEPPER}"}},
        "benchmarks": [
            {
                "id": id_,
                "name": id_,
                "category": "smoke",
                "metrics": ["score"],
                "primary_score": {"metric": "score", "scale": {"min": 0, "max": 1}},
                "pass_criteria": {"threshold": 0.5},
            }
            for id_ in ("slow_a", "slow_b")
        ],
    }


POLICY = {
    "id": "acme-gate",
    "name": "Gate every acme version",
    "rule": {"sources": ["cloudevents"], "model_name": "acme-*"},
    "action": {
        "job_name": "{model} v{version}",
        "benchmarks": [
            {"id": "qa", "provider_id": "exact", "parameters": {"dataset": "{tag:answers}"}},
            {"id": "noop", "provider_id": "smoke"},
        ],
        "endpoint": {"template": "http://127.0.0.1:9/{model}/{version}/v1"},
    },
    "gate": {"max_drop": 0.05, "sigma": 2.0, "require_thresholds": False},
}


@dataclass
class Hub:
    server: LiveServer
    api: httpx.Client
    """An administrator of every tenant (the fixtures' token); ``X-Tenant`` picks the tenant."""

    def get(self, path: str, tenant: str = "default", **params: Any) -> Any:
        answer = self.api.get(f"/api/v1/evaluations/{path}", params=params, headers={"X-Tenant": tenant})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str, body: Any, tenant: str = "default") -> Any:
        answer = self.api.post(f"/api/v1/evaluations/{path}", json=body, headers={"X-Tenant": tenant})
        assert answer.status_code in (200, 201, 202), answer.text
        return answer.json()

    def finished(self, job_id: str, tenant: str = "default") -> dict[str, Any]:
        def terminal() -> dict[str, Any] | None:
            job = self.get(f"jobs/{job_id}", tenant)
            return job if job["status"]["state"] in TERMINAL and "test" in job.get("results", {}) else None

        return dict(wait_for(terminal, timeout=120))


@pytest.fixture()
def hub(start_hub: Callable[..., LiveServer]) -> Iterator[Hub]:
    server = start_hub(local_command_tenants=("default", OTHER))
    with server.client() as api:
        yield Hub(server, api)


@dataclass
class Finished:
    """What the populated hub holds: the policy's three versions, a collection run, another tenant's job."""

    versions: dict[str, dict[str, Any]]
    collection_job: dict[str, Any]
    other_job: dict[str, Any]


@pytest.fixture()
def finished(hub: Hub, tmp_path: Path) -> Finished:
    """Real evaluations, run to the end: acme-chat versions 1, 2, 3 through a policy and registry events
    (v2 answers far worse than v1: a regression beyond noise), a run of a weighted collection, and a job
    of another tenant that must never show."""
    for tenant in ("default", OTHER):
        hub.post("providers", smoke_provider(), tenant)
    hub.post("providers", exact_match_provider())
    hub.post(
        "collections",
        {
            "id": "ui-gate",
            "name": "Release gate",
            "category": "release",
            "pass_criteria": {"threshold": 0.6},
            "benchmarks": [
                {"id": "qa", "provider_id": "exact", "weight": 2},
                {"id": "noop", "provider_id": "smoke", "weight": 1},
            ],
        },
    )
    hub.post("policies", POLICY)
    versions: dict[str, dict[str, Any]] = {}
    for version, correct in (("1", 9), ("2", 2), ("3", 8)):
        data = {
            "registry": "https://registry.example",
            "model_name": "acme-chat",
            "version": version,
            "tags": {"answers": str(answers(tmp_path / f"v{version}.jsonl", correct))},
        }
        body, headers = registry_cloudevent(
            "dev.assay.registry.model_version.created.v1", data, event_id=f"v{version}"
        )
        sent = hub.api.post("/api/v1/events", content=body, headers=headers)
        assert sent.status_code == 202, sent.text
        # One at a time: each version's baseline is the one before, finished.
        versions[version] = hub.finished(sent.json()["job_ids"][0])
    collection_job = hub.post(
        "jobs",
        {
            "name": "collection run",
            "model": {"url": "http://127.0.0.1:9/v1", "name": "acme-base"},
            "collection": {"id": "ui-gate"},
            "tags": ["nightly"],
        },
    )
    other = hub.post(
        "jobs",
        {
            "name": "team-b-secret-evaluation",
            "model": {"url": "http://127.0.0.1:9/v1", "name": "model-of-team-b"},
            "benchmarks": [{"id": "noop", "provider_id": "smoke"}],
        },
        OTHER,
    )
    return Finished(
        versions=versions,
        collection_job=hub.finished(collection_job["resource"]["id"]),
        other_job=hub.finished(other["resource"]["id"], OTHER),
    )


def sign_in(page: Any, hub: Hub, token: str, tenant: str = "default", then: str = "/ui/") -> None:
    page.goto(f"{hub.server.url}/ui/sign-in?next={then}")
    page.get_by_label("API token").fill(token)
    page.get_by_label("Tenant").fill(tenant)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{hub.server.url}{then}*")


def ready(page: Any, url: str) -> None:
    """Open ``url`` and wait until the page's module rendered from the API (``body[data-ready]``)."""
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']", state="attached")


def save_screenshot(page: Any, name: str, tmp_path: Path, full_page: bool = False) -> Path:
    """A screenshot in the test's folder, also copied to ``$ASSAY_SCREENSHOT_DIR`` when set (the README's is
    made with ``ASSAY_SCREENSHOT_DIR=docs/img``)."""
    import os

    path = tmp_path / name
    page.screenshot(path=str(path), full_page=full_page)
    target = os.environ.get("ASSAY_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / name)
    return path


A11Y_CHECK = """() => {
  const problems = [];
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!el.labels?.length && !el.getAttribute("aria-label")) problems.push(`no label: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!el.textContent.trim() && !el.getAttribute("aria-label")) problems.push(`no name: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll("canvas")) {
    if (el.getAttribute("role") !== "img" || !el.getAttribute("aria-label")) problems.push(`chart without text: ${el.id}`);
  }
  for (const el of document.querySelectorAll("table")) {
    if (!el.querySelector("caption")?.textContent.trim()) problems.push(`table without caption: ${el.id}`);
  }
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const box = el.getBoundingClientRect();
    if (!own || box.width === 0 || box.right < 0 || el.closest("canvas, option")) continue;
    const style = getComputedStyle(el);
    const fg = rgb(style.color).slice(0, 3);
    const [a, b] = [lum(fg), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)}: ${el.tagName} "${el.textContent.trim().slice(0, 30)}"`);
  }
  return problems;
}"""


def accessibility_problems(page: Any) -> list[str]:
    """Unlabelled controls, nameless buttons and links, charts without a text alternative, tables without a
    caption, and text under 4.5:1 contrast against its background (WCAG AA)."""
    return list(page.evaluate(A11Y_CHECK))
