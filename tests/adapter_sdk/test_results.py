"""adapters.sdk.results: the metrics every built-in adapter turns into EvaluationResults."""

from __future__ import annotations

import math

import pytest

from adapters.sdk import Metric, finite_number, results_from_metrics


@pytest.mark.parametrize(("value", "expected"), [(3, 3.0), (0.25, 0.25), (-1, -1.0)])
def test_finite_numbers_are_floats(value: float, expected: float) -> None:
    assert finite_number(value) == expected


@pytest.mark.parametrize("value", [True, False, "N/A", "0.5", None, [1.0], math.nan, math.inf, -math.inf])
def test_anything_else_has_no_score(value: object) -> None:
    assert finite_number(value) is None


def test_each_metric_becomes_its_result_in_order() -> None:
    results = results_from_metrics(
        [
            Metric("latency_ms_mean", 12.5, num_samples=40, stderr=0.5, confidence_interval=(11.5, 13.5)),
            Metric("attempts", 8.0),
        ]
    )
    assert [r.model_dump(exclude={"metadata"}) for r in results] == [
        {
            "metric_name": "latency_ms_mean",
            "metric_value": 12.5,
            "metric_type": "float",
            "confidence_interval": (11.5, 13.5),
            "num_samples": 40,
            "stderr": 0.5,
        },
        {
            "metric_name": "attempts",
            "metric_value": 8.0,
            "metric_type": "float",
            "confidence_interval": None,
            "num_samples": None,
            "stderr": None,
        },
    ]
    assert all(r.metadata == {} for r in results)
