"""The dashboard in a real browser (Debian's chromium, Playwright) against a live hub with real finished
evaluations: every page shows the API's numbers, charts carry the expected marks, a running evaluation moves
without a reload, cancel and retry work from the page, the console stays clean, and another tenant's data
never appears."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from assay.exports import build_exporter
from tests.conftest import LiveServer
from tests.lifecycle.test_local_lifecycle import exact_match_provider
from tests.registry import DockerRegistry
from tests.support.waiting import wait_for
from tests.tracking.conftest import MlflowServer
from tests.ui.conftest import (
    OTHER,
    Browser,
    Finished,
    Hub,
    accessibility_problems,
    ready,
    save_screenshot,
    sign_in,
    smoke_provider,
    stepper_provider,
)

pytestmark = pytest.mark.slow


def num(value: float) -> str:
    """The dashboard's number format (lib.js ``num``)."""
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3f}"


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def chart(page: Any, canvas_id: str) -> dict[str, Any]:
    """What a Chart.js chart holds and draws: labels, each dataset's data and point styles, and how many
    marks of each dataset were laid out at a finite position."""
    return dict(
        page.evaluate(
            """(id) => {
              const c = Chart.getChart(document.getElementById(id));
              return {
                labels: c.data.labels,
                sets: c.data.datasets.map((d, i) => ({
                  label: d.label, data: d.data, pointStyle: d.pointStyle ?? null,
                  drawn: c.getDatasetMeta(i).data.filter((e) => Number.isFinite(e.x) && Number.isFinite(e.y)).length,
                })),
              };
            }""",
            canvas_id,
        )
    )


def by_label(data: dict[str, Any], label: str) -> dict[str, Any]:
    return next(s for s in data["sets"] if s["label"] == label)


def close(a: list[Any], b: list[Any]) -> bool:
    def same(x: Any, y: Any) -> bool:
        if isinstance(x, list) and isinstance(y, list):
            return len(x) == len(y) and all(same(p, q) for p, q in zip(x, y, strict=True))
        if x is None or y is None:
            return x is y
        return abs(float(x) - float(y)) < 1e-9

    return same(a, b)


def normalised(value: float, scale: dict[str, float]) -> float:
    return min(1.0, max(0.0, (value - scale["min"]) / (scale["max"] - scale["min"])))


def test_every_page_shows_the_apis_numbers_and_never_another_tenants(
    hub: Hub,
    finished: Finished,
    browser: Callable[[], Browser],
    issue_token: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    person = browser()
    page = person.page()
    sign_in(page, hub, token_of(issue_token("ana", {"default": "editor"})))
    url = hub.server.url
    v1, v2, v3 = (finished.versions[v]["resource"]["id"] for v in ("1", "2", "3"))
    secrets = ("team-b-secret-evaluation", "model-of-team-b", finished.other_job["resource"]["id"])

    # Evaluations: exactly the tenant's jobs, with their composites; filters narrow them as the API does.
    ready(page, f"{url}/ui/")
    listed = hub.get("jobs")["items"]
    rows = page.locator("#evaluations tbody tr[data-job-id]")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)")) == sorted(
        j["resource"]["id"] for j in listed
    )
    assert len(listed) == 4
    for job in listed:
        row = page.locator(f"#evaluations tr[data-job-id='{job['resource']['id']}']")
        assert row.get_attribute("data-state") == job["status"]["state"]
        assert num(job["results"]["test"]["score"]) in row.locator("td.composite").inner_text()
    page.get_by_label("Policy").fill("acme-gate")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_function("() => document.querySelectorAll('#evaluations tr[data-job-id]').length === 3")
    assert "policy=acme-gate" in page.url
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)")) == sorted([v1, v2, v3])
    save_screenshot(page, "evaluations.png", tmp_path)
    ready(page, f"{url}/ui/?model=acme-base")
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)") == [
        finished.collection_job["resource"]["id"]
    ]

    # One evaluation: per-benchmark scores, intervals, thresholds, direction, the composite and the gate.
    ready(page, f"{url}/ui/evaluations/{v2}")
    job = hub.get(f"jobs/{v2}")
    gate = hub.get(f"jobs/{v2}/gate")
    results = sorted(job["results"]["benchmarks"], key=lambda r: r["benchmark_index"])
    for result in results:
        test = result["test"]
        row = page.locator(f"#benchmarks tbody tr[data-benchmark='{result['benchmark_index']}']")
        score = row.locator(".score").inner_text()
        assert score.startswith(num(test["primary_score"]))
        if "confidence_interval" in test:
            ci = test["confidence_interval"]
            assert f"[{num(ci['low'])}, {num(ci['high'])}]" in score
        cells = row.locator("td").all_inner_texts()
        assert num(test["threshold"]) in cells
        assert "↑ higher is better" in cells
        assert ("pass" if test["pass"] else "fail") in cells
        usage = result.get("usage") or {}
        if "total_tokens" in usage:
            assert f"total tokens {usage['total_tokens']}" in " ".join(cells)
    composite = job["results"]["test"]
    assert page.locator("#composite-score").inner_text() == num(composite["score"])
    assert page.locator("#composite-threshold").inner_text() == num(composite["threshold"])
    assert page.locator("#composite-coverage").inner_text() == f"{round(composite['coverage'] * 100)}%"
    assert gate["decision"] == "failed" and gate["reasons"] == ["regression"]
    assert page.locator("#gate-decision").inner_text() == "failed"
    assert "regression" in page.locator("#gate-reasons").inner_text()
    assert gate["baseline"]["job_id"] == v1
    assert page.locator("#gate-baseline a").first.inner_text() == v1
    assert "=== pod=" in page.locator("#log-tail").inner_text()
    drawn = chart(page, "score-chart")
    assert drawn["labels"] == [r["id"] for r in results]
    scales = [r["test"]["scale"] for r in results]
    assert close(by_label(drawn, "score")["data"], [r["test"]["normalised_score"] for r in results])
    assert close(
        by_label(drawn, "threshold")["data"],
        [normalised(r["test"]["threshold"], s) for r, s in zip(results, scales, strict=True)],
    )
    intervals = [
        [normalised(r["test"]["confidence_interval"][k], s) for k in ("low", "high")]
        if "confidence_interval" in r["test"]
        else None
        for r, s in zip(results, scales, strict=True)
    ]
    assert close(by_label(drawn, "95% confidence interval")["data"], intervals)
    assert [i is not None for i in intervals] == [
        True,
        False,
    ]  # the exact-match adapter reports stderr, wire.py not
    assert by_label(drawn, "score")["drawn"] == len(results) == 2
    assert by_label(drawn, "threshold")["drawn"] == 2
    assert by_label(drawn, "score")["pointStyle"] == [
        "rectRot" if not r["test"]["pass"] else "circle" for r in results
    ]
    page.set_viewport_size({"width": 1360, "height": 1500})
    save_screenshot(page, "dashboard.png", tmp_path)
    page.set_viewport_size({"width": 1360, "height": 900})

    # Compare: deltas and noise as /compare computes them with the gate's tolerance; regressions as the gate.
    ready(page, f"{url}/ui/compare?job={v2}&baseline={v1}")
    asked_gate = hub.get(f"jobs/{v2}/gate", baseline=v1)
    comparison = hub.get(f"jobs/{v2}/compare", baseline=v1, max_drop=0.05, relative="false", sigma=2.0)
    assert (
        asked_gate["tolerance"]
        == comparison["tolerance"]
        == {"max_drop": 0.05, "relative": False, "sigma": 2.0}
    )
    assert page.locator("#gate-decision").inner_text() == asked_gate["decision"] == "failed"
    regressed = [r for r in comparison["benchmarks"] if r.get("regressed")]
    assert [r["id"] for r in regressed] == [r["id"] for r in asked_gate["regressions"]] == ["qa"]
    assert page.locator("#regression-count").inner_text() == "1"
    save_screenshot(page, "compare.png", tmp_path, full_page=True)
    for r in comparison["benchmarks"]:
        row = page.locator(f"#deltas tbody tr[data-benchmark='{r['benchmark_index']}']")
        assert row.get_attribute("data-regressed") == str(bool(r.get("regressed"))).lower()
        assert num(r["current"]) in row.locator("td").all_inner_texts()
    assert page.locator("#composite-delta").inner_text().endswith(num(abs(comparison["composite"]["delta"])))
    deltas = chart(page, "delta-chart")
    compared = [r for r in comparison["benchmarks"] if r["compared"]]
    assert close(by_label(deltas, "change (better ↑)")["data"], [r["delta"] for r in compared])  # scale 0..1
    noise_band = next(s for s in deltas["sets"] if s["label"].startswith("noise band"))
    assert close(noise_band["data"], [[-r["noise"], r["noise"]] for r in compared])
    assert by_label(deltas, "change (better ↑)")["pointStyle"] == [
        "rectRot" if r["regressed"] else "circle" for r in compared
    ]

    # A policy's history: versions in version order, the composite per version, each gate and baseline.
    ready(page, f"{url}/ui/policies/acme-gate")
    history = page.locator("#history tbody tr")
    assert history.evaluate_all("rs => rs.map(r => r.dataset.jobId)") == [v1, v2, v3]
    decisions = [hub.get(f"jobs/{j}/gate")["decision"] for j in (v1, v2, v3)]
    assert decisions == ["passed", "failed", "passed"]
    assert history.evaluate_all("rs => rs.map(r => r.dataset.decision)") == decisions
    assert page.locator(f"#history tr[data-job-id='{v3}'] td").last.inner_text().startswith("acme-chat 2")
    save_screenshot(page, "policy.png", tmp_path, full_page=True)
    trend = chart(page, "history-chart")
    assert trend["labels"] == ["acme-chat 1", "acme-chat 2", "acme-chat 3"]
    scores = [finished.versions[v]["results"]["test"]["score"] for v in ("1", "2", "3")]
    assert close(by_label(trend, "composite")["data"], scores)
    qa = [
        next(r for r in finished.versions[v]["results"]["benchmarks"] if r["id"] == "qa")
        for v in ("1", "2", "3")
    ]
    assert close(by_label(trend, "exact/qa")["data"], [r["test"]["normalised_score"] for r in qa])
    assert by_label(trend, "composite")["pointStyle"] == ["circle", "crossRot", "circle"]
    assert by_label(trend, "composite")["drawn"] == 3

    # Catalogue: benchmarks with their metric, scale, direction and threshold; collections with weights.
    ready(page, f"{url}/ui/catalogue")
    qa_row = page.locator("[data-provider-id='exact'] tr[data-benchmark='qa'] td").all_inner_texts()
    assert qa_row[3] == "exact_match" and qa_row[4] == "0.000 to 1.000" and qa_row[6] == "0.500"
    assert "↑ higher is better" in qa_row
    assert page.locator("[data-provider-id='smoke']").count() == 1
    save_screenshot(page, "catalogue.png", tmp_path, full_page=True)
    weights = chart(page, "weights-ui-gate")
    assert weights["labels"] == ["exact/qa", "smoke/noop"]
    assert weights["sets"][0]["data"] == [2, 1] and weights["sets"][0]["drawn"] == 2

    ready(page, f"{url}/ui/policies")
    assert page.locator("#policies tr[data-policy-id='acme-gate']").count() == 1

    for path in (
        "/ui/",
        f"/ui/evaluations/{v2}",
        f"/ui/compare?job={v2}&baseline={v1}",
        "/ui/policies/acme-gate",
        "/ui/catalogue",
    ):
        ready(page, url + path)
        text = page.content()
        assert not any(secret in text for secret in secrets), path
        assert accessibility_problems(page) == [], path
    # The keyboard: the first Tab stop skips to the content; the filters are reached and used by keys alone.
    ready(page, f"{url}/ui/")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    page.get_by_label("Model").focus()
    page.keyboard.type("acme-base")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#evaluations tr[data-job-id]').length === 1")
    assert person.errors == []


def test_a_running_evaluation_moves_without_a_reload_and_is_cancelled_and_retried_from_the_page(
    hub: Hub,
    browser: Callable[[], Browser],
    issue_token: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    hub.post("providers", stepper_provider())
    gate_dir = tmp_path / "steps"
    gate_dir.mkdir()
    parameters = {"gate_dir": str(gate_dir), "steps": 4}
    job = hub.post(
        "jobs",
        {
            "name": "stepping",
            "model": {"url": "http://127.0.0.1:9/v1", "name": "stepper-model"},
            "benchmarks": [
                {"id": "slow_a", "provider_id": "stepper", "parameters": parameters},
                {"id": "slow_b", "provider_id": "stepper", "parameters": parameters},
            ],
        },
    )
    job_id = job["resource"]["id"]
    person = browser()
    page = person.page()
    sign_in(page, hub, token_of(issue_token("ben", {"default": "editor"})))
    url = hub.server.url
    ready(page, f"{url}/ui/")
    page.evaluate("() => { window.notReloaded = true; }")
    row = f"#evaluations tr[data-job-id='{job_id}']"
    page.wait_for_selector(f"{row}[data-state='running']")

    (gate_dir / "slow_a-1").touch()
    (gate_dir / "slow_a-2").touch()
    page.wait_for_function(
        "(sel) => document.querySelector(sel + \" li[data-benchmark='0'] progress\")?.value === 0.5",
        arg=row,
    )
    assert "2/4" in page.locator(f"{row} li[data-benchmark='0']").inner_text()
    assert page.locator(f"{row} > td.progress > progress").get_attribute("value") == "0.25"
    assert hub.get(f"jobs/{job_id}")["status"]["progress"] == 0.25
    assert page.evaluate("() => window.notReloaded") is True

    # The evaluation's own page follows it too, then cancels it.
    ready(page, f"{url}/ui/evaluations/{job_id}")
    page.evaluate("() => { window.notReloaded = true; }")
    (gate_dir / "slow_b-1").touch()
    page.wait_for_function(
        "() => document.querySelector(\"#benchmarks tr[data-benchmark='1'] progress\")?.value === 0.25"
    )
    assert page.evaluate("() => window.notReloaded") is True
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").focus()
    page.keyboard.press("Enter")  # by keyboard
    page.wait_for_selector("body[data-state='cancelled']", state="attached")
    assert hub.get(f"jobs/{job_id}")["status"]["state"] == "cancelled"
    assert page.locator("#cancel-button").count() == 0

    # Retry runs the cancelled benchmarks again; the page follows the new attempt to the end.
    page.get_by_role("button", name="Retry").click()
    page.wait_for_function("() => document.body.dataset.state !== 'cancelled'")
    for benchmark in ("slow_a", "slow_b"):
        for step in range(1, 5):
            (gate_dir / f"{benchmark}-{step}").touch()
    page.wait_for_selector("body[data-state='completed']", state="attached", timeout=60_000)
    done = hub.get(f"jobs/{job_id}")
    assert done["status"]["state"] == "completed"
    assert page.locator("#composite-score").inner_text() == num(done["results"]["test"]["score"])
    assert person.errors == []


def test_sign_in_session_cookie_csrf_and_tenant_walls(
    hub: Hub,
    browser: Callable[[], Browser],
    issue_token: Callable[..., dict[str, str]],
) -> None:
    mine = {"name": "mine-in-team-b", "model": {"url": "http://127.0.0.1:9/v1", "name": "b-model"}}
    theirs = {"name": "default-tenant-only", "model": {"url": "http://127.0.0.1:9/v1", "name": "a-model"}}
    for tenant in ("default", OTHER):
        hub.post("providers", smoke_provider(), tenant)
    benchmarks = [{"id": "noop", "provider_id": "smoke"}]
    own = hub.finished(hub.post("jobs", {**mine, "benchmarks": benchmarks}, OTHER)["resource"]["id"], OTHER)
    other = hub.finished(hub.post("jobs", {**theirs, "benchmarks": benchmarks})["resource"]["id"])
    url = hub.server.url
    person = browser()
    page = person.page()

    # A wrong token is refused on the sign-in page, and no cookie is set.
    page.goto(f"{url}/ui/sign-in")
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_label("Tenant").fill(OTHER)
    with page.expect_response(
        lambda r: r.url.endswith("/ui/sign-in") and r.request.method == "POST"
    ) as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    assert "not accepted" in page.locator("#sign-in-error").inner_text()
    assert person.context.cookies() == []
    person.errors.clear()  # the refused sign-in's 401 is logged by the browser as a failed resource

    token = token_of(issue_token("cleo", {OTHER: "editor"}))
    sign_in(page, hub, token, OTHER)
    (cookie,) = person.context.cookies()
    assert cookie["name"] == "assay_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert token not in page.content()
    assert page.evaluate("() => document.cookie") == ""  # page scripts never see the session

    ready(page, f"{url}/ui/")
    ids = page.locator("#evaluations tr[data-job-id]").evaluate_all("rs => rs.map(r => r.dataset.jobId)")
    assert ids == [own["resource"]["id"]]
    assert "default-tenant-only" not in page.content() and "a-model" not in page.content()
    assert person.errors == []

    # Another tenant's evaluation, by its id: not there, whatever the page or the API is asked.
    ready(page, f"{url}/ui/evaluations/{other['resource']['id']}")
    assert "No evaluation" in page.locator("[role=alert]").inner_text()
    assert "default-tenant-only" not in page.content()
    asked = page.evaluate(
        """async (id) => {
          const r = await fetch(`/api/v1/evaluations/jobs/${id}`, {headers: {"X-Tenant": "default"}});
          return r.status;
        }""",
        other["resource"]["id"],
    )
    assert asked == 403

    # Changing something with the cookie needs the session's CSRF token; with it, the API answers as usual.
    cancel = f"{url}/api/v1/evaluations/jobs/{own['resource']['id']}/cancel"
    forged = person.context.request.post(cancel, headers={"X-Tenant": OTHER})
    assert forged.status == 403 and forged.json()["message_code"] == "csrf_token_invalid"
    csrf = page.locator("meta[name='assay-csrf']").get_attribute("content")
    real = person.context.request.post(cancel, headers={"X-Tenant": OTHER, "X-CSRF-Token": csrf})
    assert real.status == 409  # authenticated and allowed; the evaluation had already finished

    # A request carrying the bearer token itself is served without signing in.
    direct = httpx.get(f"{url}/ui/", headers={"Authorization": f"Bearer {token}", "X-Tenant": OTHER})
    assert direct.status_code == 200 and f'name="assay-tenant" content="{OTHER}"' in direct.text

    # Signing out ends the session: the API no longer takes the browser for anyone.
    ready(page, f"{url}/ui/")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{url}/ui/sign-in*")
    assert person.context.cookies() == []
    assert person.context.request.get(f"{url}/api/v1/evaluations/jobs").status == 401
    unexpected = [e for e in person.errors if "status of 404" not in e and "status of 403" not in e]
    assert unexpected == []


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_an_exported_evaluation_links_its_mlflow_runs_and_oci_artifacts(
    start_hub: Callable[..., LiveServer],
    mlflow_server: MlflowServer,
    registry: DockerRegistry,
    browser: Callable[[], Browser],
    issue_token: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    server = start_hub(
        exporter=build_exporter,
        mlflow_tracking_uri=mlflow_server.url,
        oci_auth_config_path=registry.docker_config(tmp_path / "docker-config.json"),
        oci_insecure_registries=(registry.host,),
    )
    with server.client() as api:
        hub = Hub(server, api)
        hub.post("providers", exact_match_provider())
        body = {
            "name": "exported",
            "model": {"url": "http://127.0.0.1:9/v1", "name": "exported-model"},
            "benchmarks": [{"id": "qa", "provider_id": "exact"}],
            "experiment": {"name": "dashboard"},
            "exports": {"oci": {"coordinates": {"oci_host": registry.host, "oci_repository": "assay/ui"}}},
        }
        job_id = hub.post("jobs", body)["resource"]["id"]

        def exported() -> dict[str, Any] | None:
            job = hub.get(f"jobs/{job_id}")
            exports = job["results"].get("exports") or {}
            assert all(e["status"] != "abandoned" for e in exports.values()), exports
            return job if exports and all(e["status"] == "done" for e in exports.values()) else None

        job = wait_for(exported, timeout=180)
    results = job["results"]
    (benchmark,) = results["benchmarks"]
    person = browser()
    page = person.page()
    sign_in(page, hub, token_of(issue_token("eve", {"default": "viewer"})))
    ready(page, f"{server.url}/ui/evaluations/{job_id}")
    run = page.get_by_role("link", name="MLflow run")
    assert (
        run.get_attribute("href") == f"{results['mlflow_experiment_url']}/runs/{benchmark['mlflow_run_id']}"
    )
    assert (
        page.get_by_role("link", name="experiment").get_attribute("href") == results["mlflow_experiment_url"]
    )
    assert page.locator("#benchmarks code.oci").inner_text() == benchmark["artifacts"]["oci_reference"]
    assert results["oci"]["evaluation_card"]["oci_reference"] in page.locator("#facts").inner_text()
    assert person.errors == []
