"""From a framework's numbers to :class:`EvaluationResult`: what every built-in adapter does with its metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from adapters.sdk.models import EvaluationResult

__all__ = ["Metric", "finite_number", "results_from_metrics"]


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite int or float (not a bool); None for anything else ("N/A", NaN,
    a list), which has no score to report."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Metric:
    """One value read from a framework's report; ``stderr`` and ``confidence_interval`` where it gave them."""

    name: str
    value: float
    num_samples: int | None = None
    stderr: float | None = None
    confidence_interval: tuple[float, float] | None = None


def results_from_metrics(metrics: Iterable[Metric]) -> list[EvaluationResult]:
    """The :class:`EvaluationResult` of each metric, in order."""
    return [
        EvaluationResult(
            metric_name=m.name,
            metric_value=m.value,
            num_samples=m.num_samples,
            stderr=m.stderr,
            confidence_interval=m.confidence_interval,
        )
        for m in metrics
    ]
