"""Judging results: per-benchmark tests, normalised scores and the job's weighted composite.

Includes the verified EvalHub 1.0.2 counter-examples (weight 0 turned into 1, `1 - value` for a metric on
[0, 100]) and a three-benchmark example, with the results Assay gives instead (docs/compatibility.md).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from assay.api import MetricScale
from assay.core.scoring import ScoredBenchmark, benchmark_test, composite, normalise, stderr_of

Z95 = 1.959963984540054
UNIT = MetricScale(min=0, max=1)
PERCENT = MetricScale(min=0, max=100)

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


def _scale(low: float, width: float) -> MetricScale:
    return MetricScale(min=low, max=low + width)


_scales = st.builds(_scale, st.floats(-1e6, 1e6), st.floats(1e-3, 1e6))
maybe_scale = st.none() | _scales | st.just(UNIT)


def scales() -> st.SearchStrategy[MetricScale]:
    return _scales


# --- normalise --------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(scales(), finite, st.booleans())
def test_normalised_scores_lie_in_the_unit_interval(scale: MetricScale, value: float, lower: bool) -> None:
    assert 0.0 <= normalise(value, scale, lower) <= 1.0


@settings(max_examples=200, deadline=None)
@given(scales(), finite, finite)
def test_normalise_is_monotone_in_the_value_and_flips_for_lower_is_better(
    scale: MetricScale, a: float, b: float
) -> None:
    low, high = sorted((a, b))
    assert normalise(low, scale, False) <= normalise(high, scale, False)
    assert normalise(low, scale, True) >= normalise(high, scale, True)
    assert normalise(a, scale, True) == 1.0 - normalise(a, scale, False)


@settings(max_examples=100, deadline=None)
@given(scales(), st.booleans())
def test_the_ends_of_the_scale_are_worst_and_best(scale: MetricScale, lower: bool) -> None:
    best, worst = (scale.min, scale.max) if lower else (scale.max, scale.min)
    assert normalise(best, scale, lower) == 1.0
    assert normalise(worst, scale, lower) == 0.0
    # beyond the scale (an unbounded metric past its reference value) is clamped, not extrapolated
    span = scale.max - scale.min
    assert normalise(best + (span if best == scale.max else -span), scale, lower) == 1.0


def test_value_40_lower_is_better_on_0_100_normalises_to_0_6() -> None:
    """EvalHub 1.0.2 computed 1 - 40 = -39 here (docs/compatibility.md)."""
    assert normalise(40, PERCENT, True) == pytest.approx(0.6, abs=1e-15)


# --- stderr_of --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "metrics", "expected"),
    [
        ("acc", {"acc": 0.7, "acc_stderr": 0.01}, 0.01),
        ("acc,none", {"acc,none": 0.7, "acc_stderr,none": 0.02}, 0.02),
        ("acc,none", {"acc,none": 0.7, "acc_stderr": 0.03}, 0.03),
        ("acc", {"acc": 0.7, "acc_se": 0.04}, 0.04),
        ("acc", {"acc": 0.7, "acc_std_err": 0.05}, 0.05),
        ("acc", {"acc": 0.7}, None),
        ("acc", {"acc": 0.7, "acc_stderr": -0.1}, None),
        ("acc", {"acc": 0.7, "acc_stderr": "n/a"}, None),
        ("acc", {"acc": 0.7, "acc_stderr": True}, None),
        ("acc", {"acc": 0.7, "acc_stderr": float("nan")}, None),
        ("acc", {"acc": 0.7, "f1_stderr": 0.01}, None),
    ],
)
def test_stderr_is_found_beside_the_metric(
    metric: str, metrics: dict[str, Any], expected: float | None
) -> None:
    assert stderr_of(metric, metrics) == expected


# --- benchmark_test ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(finite, finite, st.booleans(), st.none() | scales())
def test_a_numeric_metric_with_a_threshold_is_judged_in_its_direction(
    value: float, threshold: float, lower: bool, scale: MetricScale | None
) -> None:
    test = benchmark_test("acc", lower, scale, threshold, {"acc": value})
    assert test["evaluated"] is True
    assert test["primary_score"] == value
    assert test["primary_score_metric"] == "acc"
    assert test["threshold"] == threshold
    assert test["lower_is_better"] is lower
    assert test["pass"] is (value <= threshold if lower else value >= threshold)
    if scale is not None:
        assert test["normalised_score"] == normalise(value, scale, lower)
        assert test["scale"] == {"min": scale.min, "max": scale.max}
    else:
        assert "normalised_score" not in test


def test_lower_is_better_passes_at_or_below_the_threshold() -> None:
    assert benchmark_test("asr", True, UNIT, 0.1, {"asr": 0.1})["pass"] is True
    assert benchmark_test("asr", True, UNIT, 0.1, {"asr": 0.05})["pass"] is True
    assert benchmark_test("asr", True, UNIT, 0.1, {"asr": 0.2})["pass"] is False


def test_a_missing_metric_fails_the_test_and_says_so() -> None:
    test = benchmark_test("acc,none", False, UNIT, 0.5, {"accuracy": 0.9})
    assert test["evaluated"] is False
    assert test["reason"] == test["error"] == "metric_missing"
    assert test["pass"] is False
    assert test["primary_score_metric"] == "acc,none"


@pytest.mark.parametrize("value", ["0.9", True, False, float("nan"), float("inf"), None, [0.9], {"v": 1}])
def test_a_non_numeric_metric_fails_the_test_and_says_so(value: object) -> None:
    test = benchmark_test("acc", False, UNIT, 0.5, {"acc": value})
    assert test["evaluated"] is False
    assert test["reason"] == test["error"] == "metric_not_numeric"
    assert test["pass"] is False


@settings(max_examples=50, deadline=None)
@given(finite, st.none() | scales())
def test_no_threshold_is_reported_not_silently_dropped(value: float, scale: MetricScale | None) -> None:
    """EvalHub 1.0.2 emitted no test at all here (docs/compatibility.md)."""
    test = benchmark_test("acc", False, scale, None, {"acc": value})
    assert test["evaluated"] is False
    assert test["reason"] == "no_threshold"
    assert test["pass"] is False
    assert test["primary_score"] == value


def test_no_primary_metric_is_reported() -> None:
    assert benchmark_test(None, False, None, 0.5, {"acc": 1.0}) == {
        "evaluated": False,
        "reason": "no_primary_score",
        "pass": False,
    }


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 1), st.floats(0, 0.5), st.sampled_from(["acc", "acc,none"]))
def test_the_95_percent_interval_brackets_the_value(value: float, se: float, metric: str) -> None:
    base, _, filt = metric.partition(",")
    key = f"{base}_stderr" + (f",{filt}" if filt else "")
    test = benchmark_test(metric, False, UNIT, 0.5, {metric: value, key: se})
    assert test["stderr"] == se
    ci = test["confidence_interval"]
    assert ci["level"] == 0.95
    assert ci["low"] <= value <= ci["high"]
    assert ci["high"] - ci["low"] == pytest.approx(2 * Z95 * se, abs=1e-12)


def test_no_stderr_means_no_interval() -> None:
    test = benchmark_test("acc", False, UNIT, 0.5, {"acc": 0.7})
    assert "stderr" not in test and "confidence_interval" not in test


# --- composite --------------------------------------------------------------------------------------


def scored(
    index: int,
    value: float | None,
    *,
    weight: float = 1.0,
    status: str = "completed",
    scale: MetricScale | None = UNIT,
    lower: bool = False,
    threshold: float | None = 0.5,
    stderr: float | None = None,
) -> ScoredBenchmark:
    metrics: dict[str, Any] = {} if value is None else {"m": value}
    if stderr is not None:
        metrics["m_stderr"] = stderr
    test = benchmark_test("m", lower, scale, threshold, metrics) if status == "completed" else None
    return ScoredBenchmark(index=index, weight=weight, status=status, test=test, scale=scale)


@st.composite
def one_benchmark(draw: st.DrawFn, index: int) -> ScoredBenchmark:
    """A benchmark of any status, weight (0 included), scale (or none), direction and result."""
    scale = draw(maybe_scale)
    low, high = (scale.min, scale.max) if scale else (0.0, 1.0)
    span = high - low
    return scored(
        index,
        draw(st.none() | st.floats(low - span / 2, high + span / 2)),
        weight=draw(weights),
        status=draw(statuses),
        scale=scale,
        lower=draw(st.booleans()),
        threshold=draw(st.none() | st.floats(low, high)),
        stderr=draw(st.none() | st.floats(0, span)),
    )


weights = st.just(0.0) | st.floats(0.01, 100)
statuses = st.sampled_from(["completed", "completed", "failed", "cancelled"])


@st.composite
def benchmark_sets(draw: st.DrawFn) -> list[ScoredBenchmark]:
    return [draw(one_benchmark(i)) for i in range(draw(st.integers(1, 6)))]


def reference(benchmarks: list[ScoredBenchmark]) -> tuple[float, float, list[int]]:
    """(score, coverage, unscored) computed independently with math.fsum."""
    weighted = [b for b in benchmarks if b.weight > 0]
    unscored = [b.index for b in weighted if b.scale is None]
    counted = [b for b in weighted if b.index not in unscored]
    total = math.fsum(b.weight for b in counted)
    ok = [
        b
        for b in counted
        if b.status == "completed" and b.test and b.test.get("normalised_score") is not None
    ]
    score = math.fsum(b.weight * b.test["normalised_score"] for b in ok) / total
    coverage = math.fsum(b.weight for b in ok) / math.fsum(b.weight for b in weighted)
    return score, coverage, unscored


def reference_verdict(benchmarks: list[ScoredBenchmark]) -> bool | None:
    """What the per-benchmark tests say when there is no composite, computed independently."""
    weighted = [b for b in benchmarks if b.weight > 0]
    if any(b.status != "completed" for b in weighted):
        return False
    judged = [b.test for b in weighted if b.test and b.test["evaluated"]]
    if not judged:
        return None
    return all(t["pass"] for t in judged)


@settings(max_examples=200, deadline=None)
@given(benchmark_sets(), st.floats(0, 1))
def test_the_composite_is_the_weighted_mean_of_normalised_scores(benchmarks, threshold) -> None:
    result = composite(benchmarks, threshold)
    weighted = [b for b in benchmarks if b.weight > 0]
    if not any(b.scale is not None for b in weighted):
        assert result["evaluated"] is False
        assert result["decided_by"] == "benchmarks"
        assert result["pass"] is reference_verdict(benchmarks)
        return
    score, coverage, unscored = reference(benchmarks)
    assert result["evaluated"] is True
    assert isinstance(result["score"], float)
    assert math.isclose(result["score"], score, rel_tol=1e-12, abs_tol=1e-15)
    assert 0.0 <= result["score"] <= 1.0
    assert math.isclose(result["coverage"], coverage, rel_tol=1e-12, abs_tol=1e-15)
    assert 0.0 <= result["coverage"] <= 1.0
    assert result["pass"] is (result["score"] >= threshold)
    assert result["threshold"] == threshold
    assert result.get("unscored", []) == unscored


@settings(max_examples=150, deadline=None)
@given(benchmark_sets(), one_benchmark(99), st.floats(0, 1), st.data())
def test_a_weight_zero_benchmark_changes_nothing(benchmarks, extra, threshold, data) -> None:
    """EvalHub 1.0.2 turned weight 0 into 1 (docs/compatibility.md): whatever its status or result, a benchmark
    of weight 0 leaves the composite exactly as it was."""
    zero = ScoredBenchmark(index=99, weight=0.0, status=extra.status, test=extra.test, scale=extra.scale)
    at = data.draw(st.integers(0, len(benchmarks)))
    with_zero = [*benchmarks[:at], zero, *benchmarks[at:]]
    assert composite(with_zero, threshold) == composite(benchmarks, threshold)


@settings(max_examples=100, deadline=None)
@given(benchmark_sets(), st.floats(0.01, 100), st.sampled_from(["failed", "cancelled"]), scales())
def test_a_failed_benchmark_counts_as_zero_and_lowers_coverage_by_its_weight_share(
    benchmarks, weight, status, scale
) -> None:
    before = composite(benchmarks, 0.5)
    assume(before["evaluated"])
    assume(not before.get("unscored"))
    total = sum(b.weight for b in benchmarks if b.weight > 0)
    after = composite(
        [*benchmarks, scored(len(benchmarks), None, weight=weight, status=status, scale=scale)], 0.5
    )
    share = weight / (total + weight)
    assert after["evaluated"] is True
    assert after["coverage"] == pytest.approx(before["coverage"] * (1 - share), rel=1e-12, abs=1e-15)
    assert after["score"] == pytest.approx(before["score"] * (1 - share), rel=1e-12, abs=1e-15)
    assert after["benchmarks_not_scored"] == before["benchmarks_not_scored"] + 1
    assert after["benchmarks_counted"] == before["benchmarks_counted"] + 1


def test_a_completed_benchmark_without_a_scale_is_listed_not_mixed_in_raw() -> None:
    """EvalHub 1.0.2 averaged raw values across scales (docs/compatibility.md): a benchmark without a
    scale is left out of the score, and coverage shows that its weight was not scored."""
    result = composite([scored(0, 0.8), scored(1, 250.0, scale=None, threshold=10)], 0.5)
    assert result["evaluated"] is True
    assert result["score"] == 0.8
    assert result["coverage"] == 0.5
    assert result["unscored"] == [1]


@pytest.mark.parametrize(
    ("value", "status", "verdict"),
    [(1.0, "completed", True), (0.2, "completed", False), (None, "failed", False)],
    ids=["passing", "below-threshold", "failed-run"],
)
def test_without_any_scale_the_benchmarks_tests_decide_pass(
    value: float | None, status: str, verdict: bool
) -> None:
    """A job whose benchmarks all passed is never failed because nothing could be normalised."""
    result = composite([scored(0, value, scale=None, threshold=0.5, status=status)], 0.5)
    assert result["evaluated"] is False
    assert result["reason"] == "nothing_to_score"
    assert result["decided_by"] == "benchmarks"
    assert result["pass"] is verdict
    assert result["coverage"] == 0.0
    assert result["unscored"] == [0]


@pytest.mark.parametrize(
    "benchmarks",
    [
        [scored(0, 0.9, weight=0), scored(1, 0.1, weight=0)],
        [scored(0, 0.9, scale=None), scored(1, 0.1, weight=0)],
        [],
    ],
    ids=["all-weights-zero", "nothing-scoreable", "empty"],
)
def test_nothing_to_score_is_not_evaluated(benchmarks: list[ScoredBenchmark]) -> None:
    result = composite(benchmarks, 0.5)
    assert result["evaluated"] is False
    assert result["reason"] == "nothing_to_score"
    assert result["pass"] is reference_verdict(benchmarks)
    assert result["pass"] is not False
    assert "score" not in result


def test_a_metric_missing_from_a_completed_benchmark_counts_as_zero() -> None:
    result = composite([scored(0, 1.0), scored(1, None)], 0.5)
    assert result["score"] == 0.5
    assert result["coverage"] == 0.5
    assert result["benchmarks_not_scored"] == 1


@settings(max_examples=100, deadline=None)
@given(benchmark_sets())
def test_the_composite_stderr_propagates_the_benchmarks_stderrs(benchmarks) -> None:
    result = composite(benchmarks, 0.5)
    assume(result["evaluated"])
    total = math.fsum(b.weight for b in benchmarks if b.weight > 0 and b.scale)
    terms = [
        (b.weight * b.test["stderr"] / (b.scale.max - b.scale.min)) ** 2
        for b in benchmarks
        if b.weight > 0
        and b.status == "completed"
        and b.scale is not None
        and b.test
        and b.test.get("normalised_score") is not None
        and b.test.get("stderr") is not None
    ]
    expected = math.sqrt(math.fsum(terms)) / total
    if expected > 0:
        assert result["stderr"] == pytest.approx(expected, rel=1e-9)
    else:
        assert "stderr" not in result


def test_stderr_of_two_equal_benchmarks_on_a_percent_scale() -> None:
    result = composite([scored(0, 60, scale=PERCENT, stderr=2), scored(1, 80, scale=PERCENT, stderr=2)], 0.5)
    assert result["score"] == pytest.approx(0.7, abs=1e-15)
    assert result["stderr"] == pytest.approx(math.sqrt(2 * 0.02**2) / 2, rel=1e-12)


# --- the verified EvalHub 1.0.2 counter-examples ----------------------------------------------------


def test_weights_2_and_0_score_only_the_weighted_benchmark() -> None:
    """Anchor §1.1: 1.0.2 scored (2·1 + 1·0)/3 = 0.667 because weight 0 became 1."""
    result = composite([scored(0, 1.0, weight=2), scored(1, 0.0, weight=0)], 0.5)
    assert result["score"] == 1.0
    assert result["coverage"] == 1.0
    assert result["benchmarks_counted"] == 1
    assert result["pass"] is True


def test_value_40_lower_is_better_on_a_percent_scale_scores_0_6() -> None:
    """Anchor §1.2: 1.0.2 let 40 with lower_is_better contribute -39."""
    test = benchmark_test("m", True, PERCENT, 50, {"m": 40})
    assert test["pass"] is True
    assert test["normalised_score"] == pytest.approx(0.6, abs=1e-15)
    result = composite([ScoredBenchmark(0, 1.0, "completed", test, PERCENT)], 0.5)
    assert result["score"] == pytest.approx(0.6, abs=1e-15)
    assert result["pass"] is True


def test_the_three_benchmark_example_of_the_contract_stays_on_the_unit_scale() -> None:
    """docs/compatibility.md: 1.0.2 returned score -19.4 for this job. In Assay the weight-0 benchmark is
    excluded, 40 on 0..100 lower-is-better is 0.6, and the benchmark without a threshold is still
    scored (its test says no_threshold)."""
    benchmarks = [
        scored(0, 0.2, weight=0, lower=True),
        scored(1, 40, scale=PERCENT, lower=True, threshold=50),
        scored(2, 0.7, threshold=None),
    ]
    assert benchmarks[2].test["reason"] == "no_threshold"
    result = composite(benchmarks, 0.5)
    assert result["score"] == pytest.approx((0.6 + 0.7) / 2, rel=1e-12)
    assert result["benchmarks_counted"] == 2
    assert result["pass"] is True


def test_the_composite_score_is_float64_not_float32() -> None:
    """Anchor §1.11: 1.0.2 serialised 2/3 as 0.6666667."""
    result = composite([scored(0, 1.0, weight=2), scored(1, 0.0, weight=1)], 0.5)
    assert result["score"] == 2 / 3
