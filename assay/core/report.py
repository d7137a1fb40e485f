"""Reports of one evaluation for CI systems: JUnit XML (a test case per benchmark plus one for the
composite gate) and Markdown (a summary table for a pull-request comment or a job summary).

Both are built from the job document the API returns, so they say exactly what the API says.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from assay.core.gate import summary

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


def _regressions(gate: Mapping[str, Any] | None) -> dict[Any, Mapping[str, Any]]:
    return {r.get("benchmark_index"): r for r in (gate or {}).get("regressions") or []}


def regression_text(row: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> str:
    """``qa regressed: exact_match 0.8 -> 0.4 (delta -0.4; allowed 0.05, noise 0.1) vs baseline job X``."""
    baseline = ((gate or {}).get("baseline") or {}).get("job_id")
    against = f" vs baseline job {baseline}" if baseline else ""
    if "current" not in row:
        return (
            f"{row.get('id')} regressed: no {row.get('metric')} now, {_number(row.get('baseline'))} in the "
            f"baseline (the benchmark has no result){against}"
        )
    detail = f"delta {_number(row.get('delta'))}"
    if "allowed" in row:
        detail += f"; allowed {_number(row.get('allowed'))}, noise {_number(row.get('noise'))}"
    return (
        f"{row.get('id')} regressed: {row.get('metric')} {_number(row.get('baseline'))} -> "
        f"{_number(row.get('current'))} ({detail}){against}"
    )


def _gate_case(gate: Mapping[str, Any]) -> tuple[str, str]:
    decision = gate.get("decision")
    outcome = {"passed": "passed", "failed": "failed"}.get(str(decision), "skipped")
    return outcome, summary(gate)


def junit_report(job: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> str:
    """JUnit XML: one ``testsuite`` per evaluation, a ``testcase`` per benchmark (classname = provider),
    one for the composite and, with a ``gate`` (:func:`assay.core.gate.decide`), one for the gate;
    failures name what did not pass and why, regressions against the baseline included."""
    suite = ET.Element(
        "testsuite", name=f"assay:{job.get('name', '')}", id=str(job.get("resource", {}).get("id", ""))
    )
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    cases: list[tuple[str, str, float, str, str, str]] = []
    regressed = _regressions(gate)
    for status, result in _rows(job):
        outcome, text = _verdict(status, result)
        kind = "threshold"
        regression = regressed.get(status.get("benchmark_index"))
        if regression is not None and outcome in ("passed", "failed"):
            kind = "regression" if outcome == "passed" else "threshold,regression"
            text = (
                regression_text(regression, gate)
                if outcome == "passed"
                else f"{text}; {regression_text(regression, gate)}"
            )
            outcome = "failed"
        name = f"{status.get('id')}[{status.get('benchmark_index')}]"
        cases.append((str(status.get("provider_id")), name, _seconds(status), outcome, text, kind))
    gate_outcome, gate_text = _gate(job)
    cases.append(("assay", _GATE, 0.0, gate_outcome, gate_text, "threshold"))
    if gate is not None:
        decision, decision_text = _gate_case(gate)
        cases.append(("assay", "gate", 0.0, decision, decision_text, "gate"))
    total_time = 0.0
    for classname, name, seconds, outcome, text, kind in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")
        counts["tests"] += 1
        total_time += seconds
        if outcome == "failed":
            ET.SubElement(case, "failure", message=text, type=kind).text = text
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


def markdown_report(job: Mapping[str, Any], gate: Mapping[str, Any] | None = None) -> str:
    """A Markdown summary (a pull-request comment, a check summary): the gate decision first, the
    baseline and its regressions when there is a ``gate``, then a row per benchmark."""
    gate_outcome, gate_text = _gate(job)
    if gate is not None:
        gate_outcome = _gate_case(gate)[0]
    state = job.get("status", {}).get("state")
    lines = [
        f"### {_ICONS[gate_outcome]} Assay evaluation `{_cell(str(job.get('name', '')))}`: {gate_outcome}",
        "",
        f"Model `{_cell(str(job.get('model', {}).get('name', '')))}`; job `{job.get('resource', {}).get('id', '')}` "
        f"is **{state}**; composite {gate_text}.",
        "",
    ]
    regressed = _regressions(gate)
    if gate is not None:
        lines.append(f"**{_cell(_gate_case(gate)[1])}**")
        baseline = gate.get("baseline") or {}
        if baseline.get("job_id"):
            version = f" (version `{_cell(str(baseline['version']))}`)" if baseline.get("version") else ""
            lines.append(
                f"Baseline: job `{baseline['job_id']}`{version}, chosen as {baseline.get('kind', 'given')}."
            )
        elif baseline.get("reason"):
            lines.append(f"No baseline: {baseline['reason']}.")
        lines.append("")
    lines += ["| | Benchmark | Provider | Result |", "|---|---|---|---|"]
    rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]] = _rows(job)
    for status, result in rows:
        outcome, text = _verdict(status, result)
        regression = regressed.get(status.get("benchmark_index"))
        if regression is not None:
            outcome, text = "failed", f"{text}; {regression_text(regression)}"
        lines.append(
            f"| {_ICONS[outcome]} | {_cell(str(status.get('id')))} | {_cell(str(status.get('provider_id')))} "
            f"| {_cell(text)} |"
        )
    return "\n".join(lines) + "\n"


def commit_status(
    job: Mapping[str, Any], gate: Mapping[str, Any], *, forge: str, target_url: str, context: str
) -> dict[str, Any]:
    """The body to post as a commit status: GitHub (``POST /repos/{o}/{r}/statuses/{sha}``: ``state``,
    ``description``, ``context``, ``target_url``) or GitLab (``POST /projects/{id}/statuses/{sha}``:
    ``state``, ``name``, ``description``, ``target_url``). Descriptions fit GitHub's 140 characters."""
    state = str(job.get("status", {}).get("state"))
    decision = gate.get("decision")
    description = summary(gate)
    if len(description) > 140:
        description = description[:139] + "…"
    if forge == "github":
        github = {"passed": "success", "failed": "failure"}.get(str(decision), "pending")
        if state == "failed":
            github = "error"  # the evaluation itself broke, not the model
        return {"state": github, "description": description, "context": context, "target_url": target_url}
    if decision == "pending":
        gitlab = "pending" if state == "pending" else "running"
    elif state == "cancelled":
        gitlab = "canceled"
    else:
        gitlab = "success" if decision == "passed" else "failed"
    return {"state": gitlab, "name": context, "description": description, "target_url": target_url}


__all__ = ["commit_status", "junit_report", "markdown_report", "regression_text"]
