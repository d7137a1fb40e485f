"""End to end: an MLflow webhook for a new model version -> an evaluation on the local runtime -> the gate
against the previous version -> a JUnit report (and `assay gate`) whose failures name the regressed benchmark."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from assay.cli import main
from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.triggers.hub import answers, finished, policy, start
from tests.triggers.senders import mlflow_delivery, model_version_created


def test_a_webhook_for_a_new_version_ends_in_a_junit_report_naming_the_regression(
    start_hub: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server, hub = start(start_hub)
    two = {
        "benchmarks": [
            {"id": "qa", "provider_id": "exact", "parameters": {"dataset": "{tag:answers}"}},
            {"id": "qa_f1", "provider_id": "exact", "parameters": {"dataset": "{tag:stable}"}},
        ],
        "endpoint": {"template": "http://127.0.0.1:9/{model}/{version}/v1"},
    }
    body = policy(["mlflow"], action=two)
    assert hub.post("/api/v1/evaluations/policies", json=body).status_code == 201
    good, poor = answers(tmp_path / "good.jsonl", 9), answers(tmp_path / "poor.jsonl", 1)

    def release(version: str, answer_file: Path) -> str:
        tags = {"answers": str(answer_file), "stable": str(good)}
        payload, headers = mlflow_delivery(
            "model_version.created", model_version_created("acme-chat", version, tags)
        )
        response = hub.post("/api/v1/webhooks/mlflow", content=payload, headers=headers)
        assert response.status_code == 202, response.text
        return str(response.json()["job_ids"][0])

    v1 = release("1", good)
    finished(hub, v1)
    junit_v1 = tmp_path / "v1.xml"
    assert (
        main(
            [
                "gate",
                "--hub",
                server.url,
                "--token",
                ADMIN_TOKEN,
                "--job",
                v1,
                "--junit",
                str(junit_v1),
                "--interval",
                "0.2",
            ]
        )
        == 0
    )

    v2 = release("2", poor)  # the gate waits for it: `assay gate` attaches before it finished
    junit = tmp_path / "reports" / "junit.xml"
    summary = tmp_path / "summary.md"
    code = main(
        [
            "gate",
            "--hub",
            server.url,
            "--token",
            ADMIN_TOKEN,
            "--job",
            v2,
            "--junit",
            str(junit),
            "--markdown",
            str(summary),
            "--timeout",
            "120",
            "--interval",
            "0.2",
        ]
    )
    assert code == 1

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    failures = {
        case.get("name"): case.find("failure")
        for case in suite.findall("testcase")
        if case.find("failure") is not None
    }
    assert set(failures) == {"qa[0]", "gate"}  # qa_f1 ran on the same answers: no regression there
    regression = failures["qa[0]"]
    assert regression is not None and regression.get("type") == "threshold,regression"  # 0.1 < 0.5 too
    assert "qa regressed: exact_match 0.9 -> 0.1" in (regression.text or "")
    assert v1 in (regression.text or "")  # against the previous version's job
    assert "1 regression(s): qa" in (failures["gate"].text or "")  # type: ignore[union-attr]
    assert "qa regressed" in summary.read_text()

    status = hub.get(f"/api/v1/evaluations/jobs/{v2}/report", params={"format": "github-status"}).json()
    assert status["state"] == "failure" and status["context"] == "assay/acme-chat v2"
    assert "qa" in status["description"] and len(status["description"]) <= 140
    assert status["target_url"].endswith(f"/api/v1/evaluations/jobs/{v2}/report?format=markdown")
    gitlab = hub.get(
        f"/api/v1/evaluations/jobs/{v2}/report", params={"format": "gitlab-status", "context": "assay/qa"}
    ).json()
    assert gitlab["state"] == "failed" and gitlab["name"] == "assay/qa"
    # The same job gated with a looser tolerance named by the caller passes.
    loose = hub.get(f"/api/v1/evaluations/jobs/{v2}/gate", params={"baseline": v1, "max_drop": "0.9"}).json()
    assert loose["decision"] == "passed" and loose["baseline"]["kind"] == "requested"
