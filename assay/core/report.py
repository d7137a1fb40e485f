"""Reports of one evaluation for CI systems: JUnit XML (a test case per benchmark plus one for the
composite gate) and Markdown (a summary table for a pull-request comment or a job summary).

Both are built from the job document the API returns, so they say exactly what the API says.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

_GATE = "composite"


def _seconds(entry: Mapping[str, Any]) -> float:
    try:
        started = datetime.fromisoformat(str(entry["started_at"]).replace("Z", "+00:00"))
        completed = datetime.fromisoformat(str(entry["completed_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return max(0.0, (completed - started).total_seconds())


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _verdict(status: Mapping[str, Any], result: Mapping[str, Any] | None) -> tuple[str, str]:
    """(outcome, explanation): outcome is passed, failed (the test did not pass), error (the run
    failed), skipped (cancelled or still running)."""
    state = status.get("status")
    if state == "failed":
        error = status.get("error_message") or {}
        return "error", f"{error.get('message_code', 'benchmark_failed')}: {error.get('message', '')}".strip()
    if state != "completed":
        return "skipped", f"benchmark {state}"
    test = (result or {}).get("test") or {}
    metric = test.get("primary_score_metric", "?")
    if test.get("evaluated"):
        direction = "<=" if test.get("lower_is_better") else ">="
        value, threshold = _number(test.get("primary_score")), _number(test.get("threshold"))
        text = f"{metric} = {value} (needs {direction} {threshold})"
        return ("passed" if test.get("pass") else "failed"), text
    return "failed", f"not judged: {test.get('reason', 'no test')} ({metric})"


def _rows(job: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], Mapping[str, Any] | None]]:
    results = {r.get("benchmark_index"): r for r in job.get("results", {}).get("benchmarks", [])}
    return [(s, results.get(s.get("benchmark_index"))) for s in job.get("status", {}).get("benchmarks", [])]


def _gate(job: Mapping[str, Any]) -> tuple[str, str]:
    composite = job.get("results", {}).get("test")
    if not composite:
        return "skipped", f"job is {job.get('status', {}).get('state')}: no composite yet"
    if not composite.get("evaluated"):
        return "failed", f"not judged: {composite.get('reason', 'no score')}"
    text = (
        f"score {_number(composite.get('score'))} (needs >= {_number(composite.get('threshold'))}), "
        f"coverage {_number(composite.get('coverage'))}"
    )
    return ("passed" if composite.get("pass") else "failed"), text


def junit_report(job: Mapping[str, Any]) -> str:
    """JUnit XML: one ``testsuite`` per evaluation, a ``testcase`` per benchmark (classname = provider)
    and one for the composite gate; failures name what did not pass and why."""
    suite = ET.Element(
        "testsuite", name=f"assay:{job.get('name', '')}", id=str(job.get("resource", {}).get("id", ""))
    )
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    cases: list[tuple[str, str, float, str, str]] = []
    for status, result in _rows(job):
        outcome, text = _verdict(status, result)
        name = f"{status.get('id')}[{status.get('benchmark_index')}]"
        cases.append((str(status.get("provider_id")), name, _seconds(status), outcome, text))
    gate_outcome, gate_text = _gate(job)
    cases.append(("assay", _GATE, 0.0, gate_outcome, gate_text))
    total_time = 0.0
    for classname, name, seconds, outcome, text in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")
        counts["tests"] += 1
        total_time += seconds
        if outcome == "failed":
            ET.SubElement(case, "failure", message=text, type="threshold").text = text
            counts["failures"] += 1
        elif outcome == "error":
            ET.SubElement(case, "error", message=text, type="benchmark_failed").text = text
            counts["errors"] += 1
        elif outcome == "skipped":
            ET.SubElement(case, "skipped", message=text)
            counts["skipped"] += 1
        else:
            ET.SubElement(case, "system-out").text = text
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", f"{total_time:.3f}")
    suites = ET.Element("testsuites", name="assay")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


_ICONS = {"passed": "✅", "failed": "❌", "error": "💥", "skipped": "⏭️"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(job: Mapping[str, Any]) -> str:
    """A Markdown summary: the gate decision first, then a row per benchmark."""
    gate_outcome, gate_text = _gate(job)
    state = job.get("status", {}).get("state")
    lines = [
        f"### {_ICONS[gate_outcome]} Assay evaluation `{_cell(str(job.get('name', '')))}`: {gate_outcome}",
        "",
        f"Model `{_cell(str(job.get('model', {}).get('name', '')))}`; job `{job.get('resource', {}).get('id', '')}` "
        f"is **{state}**; composite {gate_text}.",
        "",
        "| | Benchmark | Provider | Result |",
        "|---|---|---|---|",
    ]
    rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]] = _rows(job)
    for status, result in rows:
        outcome, text = _verdict(status, result)
        lines.append(
            f"| {_ICONS[outcome]} | {_cell(str(status.get('id')))} | {_cell(str(status.get('provider_id')))} "
            f"| {_cell(text)} |"
        )
    return "\n".join(lines) + "\n"


__all__ = ["junit_report", "markdown_report"]
