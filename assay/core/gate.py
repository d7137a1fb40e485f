"""The CI gate of one evaluation: its pass criteria (the composite threshold) AND no benchmark worse than
the baseline by more than the tolerance and more than the noise (``sigma`` combined standard errors),
so sampling noise alone never fails a build. Pure: two job documents in, a decision out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from assay.core.compare import Tolerance, compare

Decision = Literal["passed", "failed", "pending"]
_TERMINAL = frozenset({"completed", "failed", "cancelled", "partially_failed"})


@dataclass(frozen=True, slots=True)
class GateRules:
    tolerance: Tolerance = field(default_factory=Tolerance)
    require_thresholds: bool = True
    """The composite test (``results.test``) must pass."""


def _state(job: Mapping[str, Any]) -> str:
    return str((job.get("status") or {}).get("state", ""))


def _regression(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "benchmark_index",
        "provider_id",
        "id",
        "metric",
        "lower_is_better",
        "current",
        "baseline",
        "delta",
    )
    found = {k: row[k] for k in keys if k in row}
    for optional in ("relative_delta", "stderr", "allowed", "noise"):
        if optional in row:
            found[optional] = row[optional]
    return found


def decide(
    job: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    rules: GateRules,
    *,
    baseline_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The gate of ``job`` (a job document as the API returns it) against ``baseline`` (another, or None).

    ``pending`` while either job runs; ``failed`` when the evaluation failed, partially failed or was
    cancelled, when the baseline failed or was cancelled (nothing to compare with), when the composite misses
    its threshold (with ``require_thresholds``) or when any benchmark regressed (a benchmark that had a result
    in the baseline and has none now included);
    ``passed`` otherwise. ``reasons`` says which, ``regressions`` names each regressed benchmark.
    """
    state = _state(job)
    tolerance = rules.tolerance
    gate: dict[str, Any] = {
        "job_id": (job.get("resource") or {}).get("id"),
        "state": state,
        "tolerance": {
            "max_drop": tolerance.max_drop,
            "relative": tolerance.relative,
            "sigma": tolerance.sigma,
        },
        "require_thresholds": rules.require_thresholds,
        "baseline": None,
        "regressions": [],
    }
    if baseline is not None or baseline_info:
        gate["baseline"] = {
            **(baseline_info or {}),
            "job_id": (baseline or {}).get("resource", {}).get("id"),
            "state": _state(baseline) if baseline is not None else None,
        }
    pending = []
    if state not in _TERMINAL:
        pending.append("evaluation_running")
    if baseline is not None and _state(baseline) not in _TERMINAL:
        pending.append("baseline_running")
    if pending:
        return {**gate, "decision": "pending", "reasons": pending}

    reasons: list[str] = []
    if state in ("failed", "cancelled", "partially_failed"):
        reasons.append(f"evaluation_{state}")  # a benchmark without a result cannot pass a gate
    if baseline is not None and _state(baseline) in ("failed", "cancelled"):
        reasons.append(f"baseline_{_state(baseline)}")  # nothing to compare with: never a silent pass
    composite = (job.get("results") or {}).get("test") or {}
    gate["thresholds"] = {
        "evaluated": bool(composite.get("evaluated")),
        "pass": composite.get("pass"),
        "score": composite.get("score"),
        "threshold": composite.get("threshold"),
    }
    if rules.require_thresholds and not (composite.get("evaluated") and composite.get("pass")):
        reasons.append("threshold_not_met")
    if baseline is not None:
        comparison = compare(job, baseline, tolerance)
        gate["comparison"] = {"benchmarks": comparison["benchmarks"], "composite": comparison["composite"]}
        gate["regressions"] = [_regression(r) for r in comparison["benchmarks"] if r.get("regressed")]
        if gate["regressions"]:
            reasons.append("regression")
    return {**gate, "decision": "failed" if reasons else "passed", "reasons": reasons}


def summary(gate: Mapping[str, Any]) -> str:
    """One line for a commit status: the decision and what decided it."""
    decision = gate.get("decision")
    if decision == "pending":
        waiting = "the baseline" if "baseline_running" in gate.get("reasons", []) else "the evaluation"
        return f"Assay gate pending: waiting for {waiting}"
    parts = []
    regressions = gate.get("regressions") or []
    if regressions:
        names = ", ".join(str(r.get("id")) for r in regressions)
        parts.append(f"{len(regressions)} regression(s): {names}")
    if "threshold_not_met" in gate.get("reasons", []):
        score = (gate.get("thresholds") or {}).get("score")
        threshold = (gate.get("thresholds") or {}).get("threshold")
        parts.append(
            f"composite {score:.3g} below {threshold:.3g}"
            if isinstance(score, int | float) and isinstance(threshold, int | float)
            else "composite not judged"
        )
    for reason in gate.get("reasons", []):
        for subject in ("evaluation", "baseline"):
            if reason.startswith(f"{subject}_") and reason != "baseline_running":
                parts.append(f"{subject} {reason.removeprefix(subject + '_').replace('_', ' ')}")
    if decision == "passed":
        baseline = gate.get("baseline") or {}
        against = f" vs {baseline['job_id']}" if baseline.get("job_id") else ""
        return f"Assay gate passed{against}"
    return "Assay gate failed: " + "; ".join(parts)


__all__ = ["Decision", "GateRules", "decide", "summary"]
