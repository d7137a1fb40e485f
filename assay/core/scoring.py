"""Scoring configuration: which metric, direction, scale and threshold judge a benchmark.

Each of the four is resolved on its own through the chain job entry -> collection entry -> provider
benchmark, so an entry that names only a metric still inherits the provider's threshold
(EvalHub 1.0.2 silently dropped it). A provider's direction, scale and threshold describe the
provider's primary metric, so they are inherited only while the resolved metric is that metric.
A scale given nowhere in the chain falls back to the default-scale table (assay/core/scales.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assay.api import MetricScale, PassCriteria, PrimaryScore
from assay.core.scales import default_scale


@dataclass(frozen=True, slots=True)
class ScoreLayer:
    """What one level of the chain (job, collection or provider) says about scoring."""

    primary_score: PrimaryScore | None = None
    pass_criteria: PassCriteria | None = None


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    metric: str | None
    lower_is_better: bool
    scale: MetricScale | None
    threshold: float | None


def resolve_score_config(layers: Sequence[ScoreLayer]) -> ScoreConfig:
    """Resolve scoring from ``layers``, most specific first (job, collection, provider)."""
    metric = next((lay.primary_score.metric for lay in layers if lay.primary_score), None)

    def same_metric(layer: ScoreLayer) -> bool:
        # A layer that names no metric speaks about whatever metric is resolved.
        return layer.primary_score is None or layer.primary_score.metric == metric

    lower_is_better = False
    for layer in layers:
        score = layer.primary_score
        if score is not None and score.metric == metric and score.lower_is_better is not None:
            lower_is_better = score.lower_is_better
            break
    scale = next(
        (
            lay.primary_score.scale
            for lay in layers
            if lay.primary_score and lay.primary_score.metric == metric and lay.primary_score.scale
        ),
        None,
    )
    if scale is None:
        scale = default_scale(metric)  # a well-known proportion (assay/core/scales.py)
    threshold = next(
        (lay.pass_criteria.threshold for lay in layers if lay.pass_criteria and same_metric(lay)), None
    )
    return ScoreConfig(metric=metric, lower_is_better=lower_is_better, scale=scale, threshold=threshold)


# --- judging results ------------------------------------------------------------------------------

_STDERR_SUFFIXES = ("_stderr", "_se", "_std_err")


def normalise(value: float, scale: MetricScale, lower_is_better: bool) -> float:
    """``value`` on [0, 1] where 1 is best: min-max over the metric's scale, clamped, then flipped if
    lower is better. float64 throughout."""
    # Halved operands: max - min of a scale spanning most of the float range would overflow to inf.
    unit = (float(value) / 2 - scale.min / 2) / (scale.max / 2 - scale.min / 2)
    unit = min(1.0, max(0.0, unit))
    return 1.0 - unit if lower_is_better else unit


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def stderr_of(metric: str, metrics: Mapping[str, Any]) -> float | None:
    """The standard error an adapter reported beside ``metric`` (``acc_stderr``, ``acc_stderr,none``...)."""
    base, _, filt = metric.partition(",")
    for suffix in _STDERR_SUFFIXES:
        for key in (f"{base}{suffix}", f"{base}{suffix},{filt}" if filt else None):
            if key is not None and key in metrics:
                found = _number(metrics[key])
                if found is not None and found >= 0:
                    return found
    return None


def benchmark_test(
    metric: str | None,
    lower_is_better: bool,
    scale: MetricScale | None,
    threshold: float | None,
    metrics: Mapping[str, Any],
) -> dict[str, Any]:
    """The per-benchmark test of a completed run. Never silent: when the run cannot be judged the
    test says why (``evaluated: false`` with ``reason``) and counts as not passed."""
    if metric is None:
        return {"evaluated": False, "reason": "no_primary_score", "pass": False}
    test: dict[str, Any] = {"primary_score_metric": metric, "lower_is_better": lower_is_better}
    if metric not in metrics:
        return {
            **test,
            "evaluated": False,
            "reason": "metric_missing",
            "error": "metric_missing",
            "pass": False,
        }
    value = _number(metrics[metric])
    if value is None:
        return {
            **test,
            "evaluated": False,
            "reason": "metric_not_numeric",
            "error": "metric_not_numeric",
            "pass": False,
        }
    test["primary_score"] = value
    stderr = stderr_of(metric, metrics)
    if stderr is not None:
        test["stderr"] = stderr
        test["confidence_interval"] = {
            "level": 0.95,
            "low": value - _Z95 * stderr,
            "high": value + _Z95 * stderr,
        }
    if scale is not None:
        test["normalised_score"] = normalise(value, scale, lower_is_better)
        test["scale"] = {"min": scale.min, "max": scale.max}
    if threshold is None:
        return {**test, "evaluated": False, "reason": "no_threshold", "pass": False}
    passed = value <= threshold if lower_is_better else value >= threshold
    return {**test, "evaluated": True, "threshold": threshold, "pass": passed}


_Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class ScoredBenchmark:
    """What the composite needs to know about one benchmark of the job."""

    index: int
    weight: float
    status: str
    test: Mapping[str, Any] | None
    scale: MetricScale | None


def composite(benchmarks: Sequence[ScoredBenchmark], threshold: float) -> dict[str, Any]:
    """The job's weighted score on normalised [0, 1] values.

    Weight 0 excludes a benchmark. A weighted benchmark that failed, was cancelled, or produced no
    usable primary metric counts as 0 and lowers ``coverage`` (the share of weight that was really
    scored). One whose metric has no scale cannot be normalised: it is left out of the score, listed
    in ``unscored``, and its weight still lowers ``coverage``. ``stderr`` propagates the adapters'
    standard errors.

    When no weighted benchmark has a scale the composite is ``evaluated: false`` and the per-benchmark
    tests decide ``pass`` (:func:`benchmarks_verdict`): a job is never failed because nothing could be
    normalised.
    """
    weighted = [b for b in benchmarks if b.weight > 0]
    counted = [b for b in weighted if b.scale is not None]
    unscored = [b.index for b in weighted if b.scale is None]
    total_weight = sum(b.weight for b in counted)
    all_weight = sum(b.weight for b in weighted)
    if total_weight == 0:
        return {
            "evaluated": False,
            "reason": "nothing_to_score",
            "decided_by": "benchmarks",
            "threshold": threshold,
            "pass": benchmarks_verdict(weighted),
            "coverage": 0.0,
            "benchmarks_counted": 0,
            "benchmarks_not_scored": 0,
            "unscored": unscored,
        }
    acc = 0.0
    variance = 0.0
    scored_weight = 0.0
    failed = 0
    for b in counted:
        score = (b.test or {}).get("normalised_score")
        if b.status != "completed" or score is None:
            failed += 1
            continue
        acc += b.weight * float(score)
        scored_weight += b.weight
        stderr = (b.test or {}).get("stderr")
        if stderr is not None and b.scale is not None:
            variance += (b.weight * float(stderr) / (b.scale.max - b.scale.min)) ** 2
    score = acc / total_weight
    result: dict[str, Any] = {
        "evaluated": True,
        "score": score,
        "threshold": threshold,
        "pass": score >= threshold,
        "coverage": scored_weight / all_weight,
        "benchmarks_counted": len(counted),
        "benchmarks_not_scored": failed,
    }
    if variance > 0:
        result["stderr"] = math.sqrt(variance) / total_weight
    if unscored:
        result["unscored"] = unscored
    return result


def benchmarks_verdict(benchmarks: Sequence[ScoredBenchmark]) -> bool | None:
    """The verdict of the per-benchmark tests when no composite can be computed.

    False when a benchmark did not complete or a test that could be judged failed; True when every
    benchmark completed and at least one test was judged, all passing; None (JSON ``null``) when no
    test could be judged at all: nothing says pass, and nothing says fail.
    """
    judged = 0
    for b in benchmarks:
        if b.status != "completed":
            return False
        test = b.test or {}
        if test.get("evaluated"):
            judged += 1
            if not test.get("pass"):
                return False
    return True if judged else None


__all__ = [
    "ScoreConfig",
    "ScoreLayer",
    "ScoredBenchmark",
    "benchmark_test",
    "benchmarks_verdict",
    "composite",
    "normalise",
    "resolve_score_config",
    "stderr_of",
]
