"""CI reports from job documents: every benchmark a test case, the gate one more, text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from assay.core.report import junit_report, markdown_report


def document(
    state: str, *entries: tuple[str, dict[str, Any] | None], composite: dict[str, Any] | None = None
) -> dict[str, Any]:
    statuses = []
    results = []
    for index, (status, result) in enumerate(entries):
        statuses.append(
            {
                "id": f"b{index}",
                "provider_id": "p",
                "benchmark_index": index,
                "status": status,
                "started_at": "2026-11-22T01:00:00Z",
                "completed_at": "2026-11-22T01:00:02.5Z",
                **(
                    {"error_message": {"message": "boom <&>", "message_code": "evaluation_error"}}
                    if status == "failed"
                    else {}
                ),
            }
        )
        if result is not None:
            results.append({"benchmark_index": index, **result})
    return {
        "name": "nightly",
        "resource": {"id": "job-1"},
        "model": {"name": "m"},
        "status": {"state": state, "benchmarks": statuses},
        "results": {"benchmarks": results, **({"test": composite} if composite else {})},
    }


PASSING = {
    "test": {
        "evaluated": True,
        "pass": True,
        "primary_score": 0.8,
        "threshold": 0.5,
        "primary_score_metric": "acc",
    }
}


def test_a_passing_job_has_no_failures_and_carries_timings() -> None:
    job = document(
        "completed",
        ("completed", PASSING),
        composite={"evaluated": True, "pass": True, "score": 0.8, "threshold": 0.5, "coverage": 1.0},
    )
    suite = ET.fromstring(junit_report(job)).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "2",
        "0",
        "0",
        "0",
    )
    assert suite.get("time") == "2.500"
    assert markdown_report(job).startswith("### ✅ Assay evaluation `nightly`: passed")


def test_a_running_job_reports_pending_work_as_skipped_and_escapes_text() -> None:
    job = document("running", ("running", None), ("failed", None))
    xml = junit_report(job)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    assert (suite.get("skipped"), suite.get("errors")) == ("2", "1")  # the running benchmark and the gate
    assert "boom &lt;&amp;&gt;" in xml
    assert "no composite yet" in markdown_report(job)


def test_lower_is_better_and_unjudged_benchmarks_say_why() -> None:
    latency = {
        "test": {
            "evaluated": True,
            "pass": False,
            "primary_score": 900,
            "threshold": 500,
            "lower_is_better": True,
            "primary_score_metric": "ttft_ms",
        }
    }
    missing = {
        "test": {"evaluated": False, "reason": "metric_missing", "pass": False, "primary_score_metric": "acc"}
    }
    text = markdown_report(document("completed", ("completed", latency), ("completed", missing)))
    assert "ttft_ms = 900 (needs <= 500)" in text
    assert "not judged: metric_missing (acc)" in text
