"""Read a benchmark's metrics out of an Inspect log's results, under the names the catalogue uses.

Inspect reports, per scorer (and per epoch reducer when several are asked for), a set of metrics such as
``accuracy`` and ``stderr``. The adapter names them:

- the first scorer's metrics bare (``accuracy``), as Inspect's own headline uses the first scorer; every further
  scorer's as ``<scorer>/<metric>`` (``model_graded_qa/accuracy``); a scorer listed once per reducer gets
  ``<scorer>:<reducer>`` (``includes:max/accuracy``), except the first entry, which stays bare;
- Inspect's ``stderr`` metric is the standard error of the mean of the scores, so it travels as the ``stderr`` of the
  scorer's mean-type metric (``accuracy`` or ``mean``; sent as ``<metric>_stderr``), and as a metric of its own only
  when the scorer has no such metric;
- a metric whose value is a dictionary (grouped metrics) is reported per key as ``<metric>/<key>``;
- ``samples_errored`` counts samples that ended with an error (0 when none), so a tolerated failure is visible next
  to the scores.

Pure: no Inspect import; it reads ``EvalResults.model_dump()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from adapters.sdk import EvaluationResult, finite_number

__all__ = ["MEAN_METRICS", "SAMPLES_ERRORED", "metric_results"]

MEAN_METRICS = ("accuracy", "mean")
SAMPLES_ERRORED = "samples_errored"
_STDERR = "stderr"


def _value(metric: Any) -> Any:
    return metric.get("value") if isinstance(metric, Mapping) else metric


def _prefixes(scores: list[Mapping[str, Any]]) -> list[str]:
    names = Counter(str(entry.get("name") or entry.get("scorer") or "score") for entry in scores)
    prefixes = []
    for position, entry in enumerate(scores):
        if position == 0:
            prefixes.append("")
            continue
        name = str(entry.get("name") or entry.get("scorer") or "score")
        reducer = entry.get("reducer")
        if names[name] > 1 and reducer:
            name = f"{name}:{reducer}"
        prefixes.append(f"{name}/")
    return prefixes


def metric_results(results: Mapping[str, Any], *, samples_errored: int = 0) -> list[EvaluationResult]:
    """Every scorer metric of ``results`` (``EvalResults`` as a dictionary), with stderr, plus
    ``samples_errored``."""
    scores = [entry for entry in results.get("scores") or [] if isinstance(entry, Mapping)]
    reported: list[EvaluationResult] = []
    for prefix, entry in zip(_prefixes(scores), scores, strict=True):
        metrics = entry.get("metrics") or {}
        if not isinstance(metrics, Mapping):
            continue
        stderr = finite_number(_value(metrics.get(_STDERR)))
        has_mean = any(name in metrics for name in MEAN_METRICS)
        scored = entry.get("scored_samples")
        metadata = {
            "scorer": entry.get("scorer") or entry.get("name"),
            "reducer": entry.get("reducer"),
        }
        for name, metric in metrics.items():
            if name == _STDERR and has_mean:
                continue
            value = _value(metric)
            if isinstance(value, Mapping):
                pairs = [(f"{prefix}{name}/{key}", inner) for key, inner in value.items()]
            else:
                pairs = [(f"{prefix}{name}", value)]
            for metric_name, raw in pairs:
                number = finite_number(raw)
                if number is None:
                    continue  # a list-valued or NaN metric (no samples scored) has no score to report
                reported.append(
                    EvaluationResult(
                        metric_name=metric_name,
                        metric_value=number,
                        stderr=abs(stderr) if stderr is not None and name in MEAN_METRICS else None,
                        num_samples=scored if isinstance(scored, int) and scored > 0 else None,
                        metadata={**metadata, "inspect_metric": name},
                    )
                )
    reported.append(
        EvaluationResult(metric_name=SAMPLES_ERRORED, metric_value=samples_errored, metric_type="int")
    )
    return reported
