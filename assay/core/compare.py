"""Compare an evaluation with a baseline: per-benchmark and composite deltas, and which benchmarks
regressed beyond a tolerance *and* beyond noise (the adapters' standard errors), so that a CI gate
does not fail on sampling noise.

Benchmarks are matched by ``(provider_id, id)`` and occurrence (the n-th ``mmlu`` of one job with the
n-th of the other), and compared on the current job's primary metric in its direction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much worse a benchmark may get before it counts as a regression.

    ``max_drop`` is in the metric's own units, or a fraction of the baseline value when ``relative``;
    a drop must also exceed ``sigma`` combined standard errors (when both sides report one).
    """

    max_drop: float = 0.0
    relative: bool = False
    sigma: float = 2.0


def _keyed(entries: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, int], Mapping[str, Any]]:
    seen: dict[tuple[str, str], int] = {}
    keyed: dict[tuple[str, str, int], Mapping[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: int(e.get("benchmark_index", 0))):
        pair = (str(entry.get("provider_id")), str(entry.get("id")))
        occurrence = seen.get(pair, 0)
        seen[pair] = occurrence + 1
        keyed[(*pair, occurrence)] = entry
    return keyed


def _value(result: Mapping[str, Any] | None, metric: str) -> float | None:
    if result is None:
        return None
    value = (result.get("metrics") or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def compare(current: Mapping[str, Any], baseline: Mapping[str, Any], tolerance: Tolerance) -> dict[str, Any]:
    """Deltas from ``baseline`` to ``current`` (two job documents as the API returns them)."""
    plan_then = _keyed(baseline.get("plan", {}).get("benchmarks", []))
    results_now = {r.get("benchmark_index"): r for r in current.get("results", {}).get("benchmarks", [])}
    results_then = {r.get("benchmark_index"): r for r in baseline.get("results", {}).get("benchmarks", [])}
    rows: list[dict[str, Any]] = []
    for key, planned in _keyed(current.get("plan", {}).get("benchmarks", [])).items():
        then = plan_then.get(key)
        now_result = results_now.get(planned.get("benchmark_index"))
        then_result = results_then.get(then.get("benchmark_index")) if then is not None else None
        rows.append(_benchmark_row(key, planned, then, now_result, then_result, tolerance))
    regressed = [r for r in rows if r.get("regressed")]
    return {
        "job_id": current.get("resource", {}).get("id"),
        "baseline_id": baseline.get("resource", {}).get("id"),
        "tolerance": {
            "max_drop": tolerance.max_drop,
            "relative": tolerance.relative,
            "sigma": tolerance.sigma,
        },
        "benchmarks": rows,
        "composite": _composite(current, baseline),
        "regressions": [
            {"benchmark_index": r["benchmark_index"], "id": r["id"], "delta": r.get("delta")}
            for r in regressed
        ],
        "pass": not regressed,
    }


def _benchmark_row(
    key: tuple[str, str, int],
    planned: Mapping[str, Any],
    then: Mapping[str, Any] | None,
    now_result: Mapping[str, Any] | None,
    then_result: Mapping[str, Any] | None,
    tolerance: Tolerance,
) -> dict[str, Any]:
    """One benchmark of the current job against its namesake in the baseline (``then``, if any)."""
    row: dict[str, Any] = {
        "benchmark_index": planned.get("benchmark_index"),
        "provider_id": key[0],
        "id": key[1],
    }
    score = planned.get("primary_score") or {}
    metric = score.get("metric")
    if then is None or metric is None:
        return {**row, "compared": False, "reason": "not_in_baseline" if then is None else "no_primary_score"}
    lower_is_better = bool(score.get("lower_is_better"))
    value_now, value_then = _value(now_result, metric), _value(then_result, metric)
    row.update(
        metric=metric,
        lower_is_better=lower_is_better,
        baseline_benchmark_index=then.get("benchmark_index"),
    )
    if value_now is None or value_then is None:
        missing: dict[str, Any] = {
            "compared": False,
            "reason": "no_value" if value_now is None else "no_baseline_value",
        }
        if value_then is not None:
            missing.update(baseline=value_then, regressed=True)  # the baseline had a result, this run none
        return {**row, **missing}
    delta = value_now - value_then
    worse_by = -delta if not lower_is_better else delta
    row.update(compared=True, current=value_now, baseline=value_then, delta=delta)
    if value_then != 0:
        row["relative_delta"] = delta / abs(value_then)
    stderrs = [((r or {}).get("test") or {}).get("stderr") for r in (now_result, then_result)]
    allowed = tolerance.max_drop * abs(value_then) if tolerance.relative else tolerance.max_drop
    noise = 0.0
    if all(isinstance(s, int | float) for s in stderrs):
        combined = math.sqrt(sum(float(s) ** 2 for s in stderrs if s is not None))
        row["stderr"] = combined
        noise = tolerance.sigma * combined
    row.update(allowed=allowed, noise=noise)
    row["regressed"] = worse_by > allowed and worse_by > noise
    return row


def _composite(current: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    composite_now = current.get("results", {}).get("test") or {}
    composite_then = baseline.get("results", {}).get("test") or {}
    if not (composite_now.get("evaluated") and composite_then.get("evaluated")):
        return {"compared": False}
    return {
        "compared": True,
        "current": composite_now.get("score"),
        "baseline": composite_then.get("score"),
        "delta": float(composite_now["score"]) - float(composite_then["score"]),
        "current_coverage": composite_now.get("coverage"),
        "baseline_coverage": composite_then.get("coverage"),
    }


__all__ = ["Tolerance", "compare"]
