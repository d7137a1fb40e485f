"""Prometheus metrics: HTTP requests, DB pool gauges, and the lifecycle (benchmark durations, queue
waits, finished benchmarks and jobs). Labels stay low-cardinality: provider, status, state; never a
job id or a tenant."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HTTP_SERIES_REMEMBERED = 1024


class _PoolCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._stats()
        gauge = GaugeMetricFamily(
            "assay_db_pool_connections", "Database pool connections by state", labels=["state"]
        )
        size = stats.get("pool_size", 0)
        available = stats.get("pool_available", 0)
        gauge.add_metric(["open"], size)
        gauge.add_metric(["idle"], available)
        gauge.add_metric(["busy"], max(size - available, 0))
        yield gauge
        yield GaugeMetricFamily(
            "assay_db_pool_waiting_requests",
            "Requests waiting for a database connection",
            value=stats.get("requests_waiting", 0),
        )
        yield GaugeMetricFamily(
            "assay_db_pool_max_connections", "Pool size limit", value=stats.get("pool_max", 0)
        )


class Metrics:
    """One registry per app, so several apps in one process (tests, the local hub) never collide."""

    def __init__(self, max_provider_labels: int = 64) -> None:
        self.registry = CollectorRegistry()
        self._providers: set[str] = set()
        self._max_providers = max_provider_labels
        self.requests = Counter(
            "assay_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "assay_http_request_duration_seconds",
            "HTTP request duration, by method and route template",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        # Each request's two labelled series, found once: ``labels()`` validates and locks on every call.
        self._http_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

        self.benchmark_duration = Histogram(
            "assay_benchmark_duration_seconds",
            "Time from a benchmark's start to its terminal status, by provider and status",
            ["provider", "status"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "assay_benchmark_queue_wait_seconds",
            "Time a benchmark waited between dispatch and the start of its process, by provider",
            ["provider"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.benchmarks_finished = Counter(
            "assay_benchmarks_finished",
            "Benchmark runs that reached a terminal status, by provider, status and message code",
            ["provider", "status", "code"],
            registry=self.registry,
        )
        self.jobs_finished = Counter(
            "assay_evaluations_finished",
            "Evaluation jobs that reached a terminal state",
            ["state"],
            registry=self.registry,
        )

    def provider_label(self, provider_id: str) -> str:
        """``provider_id`` for the first providers seen, ``other`` after that: tenants name their own providers,
        and a label per name would let any tenant grow the scrape without bound."""
        if provider_id in self._providers:
            return provider_id
        if len(self._providers) < self._max_providers:
            self._providers.add(provider_id)
            return provider_id
        return "other"

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._http_series.get(key)
        if series is None:
            series = (self.requests.labels(method, route, str(status)), self.duration.labels(method, route))
            if len(self._http_series) < _HTTP_SERIES_REMEMBERED:
                self._http_series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def watch_pool(self, stats: Callable[[], Any]) -> None:
        self.registry.register(_PoolCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)
