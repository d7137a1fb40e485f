"""Comparing an evaluation with a baseline: deltas, direction, tolerance, and noise from stderr."""

from __future__ import annotations

from typing import Any

import pytest

from assay.core.compare import Tolerance, compare


def job(
    job_id: str,
    *benchmarks: tuple[str, float | None, float | None],
    lower: bool = False,
    score: float | None = None,
) -> dict[str, Any]:
    plan = []
    results = []
    for index, (bench, value, stderr) in enumerate(benchmarks):
        plan.append(
            {
                "benchmark_index": index,
                "provider_id": "p",
                "id": bench,
                "primary_score": {"metric": "m", "lower_is_better": lower},
            }
        )
        if value is not None:
            test = {"stderr": stderr} if stderr is not None else {}
            results.append(
                {
                    "benchmark_index": index,
                    "provider_id": "p",
                    "id": bench,
                    "metrics": {"m": value},
                    "test": test,
                }
            )
    composite = {"evaluated": True, "score": score, "coverage": 1.0} if score is not None else {}
    return {
        "resource": {"id": job_id},
        "plan": {"benchmarks": plan},
        "results": {"benchmarks": results, "test": composite},
    }


def row(result: dict[str, Any], bench: str) -> dict[str, Any]:
    return next(r for r in result["benchmarks"] if r["id"] == bench)


def test_deltas_and_a_regression_beyond_tolerance() -> None:
    result = compare(
        job("new", ("a", 0.70, None), ("b", 0.90, None), score=0.8),
        job("old", ("a", 0.80, None), ("b", 0.85, None), score=0.82),
        Tolerance(max_drop=0.05),
    )
    assert row(result, "a")["delta"] == pytest.approx(-0.10) and row(result, "a")["regressed"] is True
    assert row(result, "b")["regressed"] is False  # it improved
    assert row(result, "a")["relative_delta"] == pytest.approx(-0.125)
    assert result["composite"]["delta"] == pytest.approx(-0.02)
    assert result["regressions"] == [{"benchmark_index": 0, "id": "a", "delta": pytest.approx(-0.10)}]
    assert result["pass"] is False


def test_a_drop_within_the_noise_is_not_a_regression() -> None:
    # 0.05 worse, but each side has a standard error of 0.03: 2 sigma of the difference is ~0.085.
    result = compare(
        job("new", ("a", 0.75, 0.03)), job("old", ("a", 0.80, 0.03)), Tolerance(max_drop=0.0, sigma=2.0)
    )
    assert row(result, "a")["stderr"] == pytest.approx(0.0424, abs=1e-3)
    assert row(result, "a")["regressed"] is False and result["pass"] is True
    tight = compare(job("new", ("a", 0.75, 0.01)), job("old", ("a", 0.80, 0.01)), Tolerance(sigma=2.0))
    assert tight["pass"] is False


def test_lower_is_better_and_relative_tolerance() -> None:
    slower = compare(
        job("new", ("lat", 550.0, None), lower=True),
        job("old", ("lat", 500.0, None), lower=True),
        Tolerance(max_drop=0.05, relative=True),
    )
    assert row(slower, "lat")["regressed"] is True  # 10 % slower, 5 % allowed
    faster = compare(
        job("new", ("lat", 450.0, None), lower=True),
        job("old", ("lat", 500.0, None), lower=True),
        Tolerance(),
    )
    assert faster["pass"] is True


def test_unmatched_and_missing_values_are_said_not_guessed() -> None:
    result = compare(
        job("new", ("a", 0.5, None), ("c", None, None)), job("old", ("a", 0.5, None)), Tolerance()
    )
    assert row(result, "c") == {
        "benchmark_index": 1,
        "provider_id": "p",
        "id": "c",
        "compared": False,
        "reason": "not_in_baseline",
    }
    failed = compare(job("new", ("a", None, None)), job("old", ("a", 0.5, None)), Tolerance())
    assert row(failed, "a")["reason"] == "no_value"
    assert failed["composite"] == {"compared": False}
    # A result the baseline had and this run lacks is a regression: a failed benchmark never passes a gate.
    assert row(failed, "a")["regressed"] is True and row(failed, "a")["baseline"] == 0.5
    assert failed["regressions"] == [{"benchmark_index": 0, "id": "a", "delta": None}]
    assert failed["pass"] is False


def test_duplicated_benchmarks_match_by_occurrence() -> None:
    result = compare(
        job("new", ("a", 0.1, None), ("a", 0.9, None)),
        job("old", ("a", 0.2, None), ("a", 0.8, None)),
        Tolerance(),
    )
    assert [r["delta"] for r in result["benchmarks"]] == [pytest.approx(-0.1), pytest.approx(0.1)]
