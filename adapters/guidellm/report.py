"""Read GuideLLM's benchmarks report (its JSON output) into Assay metrics.

Pure: it takes the report as a dict. GuideLLM reports distributions (mean, median, percentiles, std_dev,
count, mean_ci) over successful requests; this module flattens them to the bare names the provider YAML uses.
Units: rates per second; latencies in MILLISECONDS (GuideLLM's request latency, in seconds, is converted).
A profile with several runs (sweep; concurrent/constant/poisson with several rates) is reported by the run
with the highest request rate, the best sustained load the server handled; every run stays in the report.
"""

from __future__ import annotations

import math
from typing import Any

from adapters.sdk import Metric

__all__ = ["LATENCY_METRICS", "THROUGHPUT_METRICS", "Metric", "ReportError", "metrics_from_report"]

# name prefix -> (GuideLLM metric key, factor to milliseconds)
_LATENCIES: dict[str, tuple[str, float]] = {
    "time_to_first_token_ms": ("time_to_first_token_ms", 1.0),
    "inter_token_latency_ms": ("inter_token_latency_ms", 1.0),
    "time_per_output_token_ms": ("time_per_output_token_ms", 1.0),
    "request_latency_ms": ("request_latency", 1000.0),
}
_RATES: dict[str, str] = {
    "requests_per_second": "requests_per_second",
    "output_tokens_per_second": "output_tokens_per_second",
    "total_tokens_per_second": "tokens_per_second",
}
_STATISTICS = ("mean", "p50", "p95", "p99")

LATENCY_METRICS: tuple[str, ...] = tuple(f"{name}_{stat}" for name in _LATENCIES for stat in _STATISTICS)
THROUGHPUT_METRICS: tuple[str, ...] = tuple(_RATES)


class ReportError(ValueError):
    """The report lacks what the adapter needs (no benchmark run, no successful request)."""


def _successful(metrics: dict[str, Any], key: str) -> dict[str, Any]:
    try:
        distribution = metrics[key]["successful"]
    except (KeyError, TypeError):
        raise ReportError(f"the GuideLLM report has no metrics.{key}.successful distribution") from None
    if not isinstance(distribution, dict):
        raise ReportError(f"metrics.{key}.successful is not a distribution: {distribution!r}")
    return distribution


def _statistic(distribution: dict[str, Any], stat: str) -> float:
    value = distribution["mean"] if stat == "mean" else distribution["percentiles"][stat]
    return float(value)


def _mean_uncertainty(
    distribution: dict[str, Any], factor: float
) -> tuple[float | None, tuple[float, float] | None]:
    count = int(distribution.get("count") or 0)
    std_dev = distribution.get("std_dev")
    stderr = float(std_dev) * factor / math.sqrt(count) if count > 1 and std_dev is not None else None
    ci = distribution.get("mean_ci")
    interval = (float(ci["lower"]) * factor, float(ci["upper"]) * factor) if isinstance(ci, dict) else None
    return stderr, interval


def _run_rate(run: dict[str, Any]) -> float:
    try:
        return float(run["metrics"]["requests_per_second"]["successful"]["mean"])
    except (KeyError, TypeError, ValueError):
        return 0.0


def select_run(report: dict[str, Any]) -> dict[str, Any]:
    """The run a multi-run profile is reported by: the one with the highest successful request rate."""
    runs = [r for r in report.get("benchmarks") or [] if isinstance(r, dict)]
    if not runs:
        raise ReportError("the GuideLLM report has no benchmark run")
    completed = [r for r in runs if (_request_totals(r).get("successful") or 0) > 0]
    if not completed:
        totals = [_request_totals(r) for r in runs]
        raise ReportError(f"no GuideLLM run had a successful request (request totals per run: {totals})")
    return max(completed, key=_run_rate)


def _request_totals(run: dict[str, Any]) -> dict[str, Any]:
    """Every request the run processed, by outcome.

    ``metrics.request_totals`` only counts requests inside GuideLLM's measurement window, whose edges
    come from timestamps taken in its worker processes: on a loaded machine a request at the edge
    falls out of it (3 sent, 2 counted). The scheduler's own counters have no window; the windowed
    totals are the fallback for reports without them."""
    state = run.get("scheduler_state") or {}
    if isinstance(state.get("processed_requests"), int):
        successful = int(state.get("successful_requests") or 0)
        errored = int(state.get("errored_requests") or 0)
        incomplete = int(state.get("cancelled_requests") or 0)
        return {
            "successful": successful,
            "errored": errored,
            "incomplete": incomplete,
            "total": successful + errored + incomplete,
        }
    return dict(run.get("metrics", {}).get("request_totals") or {})


def metrics_from_report(report: dict[str, Any]) -> tuple[list[Metric], dict[str, Any]]:
    """The metrics of the selected run, and a summary (strategy, runs, request counts, duration)."""
    run = select_run(report)
    metrics = run["metrics"]
    totals = _request_totals(run)
    successful = int(totals.get("successful") or 0)
    out: list[Metric] = []
    for name, key in _RATES.items():
        distribution = _successful(metrics, key)
        out.append(Metric(name, float(distribution["mean"]), num_samples=successful))
    for prefix, (key, factor) in _LATENCIES.items():
        distribution = _successful(metrics, key)
        count = int(distribution.get("count") or 0)
        for stat in _STATISTICS:
            value = _statistic(distribution, stat) * factor
            if stat == "mean":
                stderr, interval = _mean_uncertainty(distribution, factor)
                out.append(
                    Metric(f"{prefix}_{stat}", value, count, stderr=stderr, confidence_interval=interval)
                )
            else:
                out.append(Metric(f"{prefix}_{stat}", value, count))
    for name, key in (
        ("prompt_tokens_mean", "prompt_token_count"),
        ("output_tokens_mean", "output_token_count"),
    ):
        out.append(Metric(name, float(_successful(metrics, key)["mean"]), num_samples=successful))
    errored = int(totals.get("errored") or 0)
    incomplete = int(totals.get("incomplete") or 0)
    total = int(totals.get("total") or successful + errored + incomplete)
    out.append(Metric("requests_successful", float(successful)))
    out.append(Metric("requests_errored", float(errored)))
    out.append(Metric("requests_incomplete", float(incomplete)))
    out.append(Metric("error_rate", errored / total if total else 0.0, num_samples=total))
    strategy = (run.get("config") or {}).get("strategy") or {}
    summary = {
        "strategy": strategy.get("type_"),
        "strategy_config": strategy,
        "runs": len(report.get("benchmarks") or []),
        "selected_run_index": (run.get("config") or {}).get("run_index"),
        "duration_seconds": float(run.get("duration") or 0.0),
        "requests_total": total,
    }
    return out, summary
