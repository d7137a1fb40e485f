"""What every lifecycle step needs: settings, the database, the runtime, and a way to publish."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from assay.core.events import OutboxEvent
from assay.core.plan import PlannedBenchmark
from assay.runtimes.observation import RunObservation, SeenLaunch
from assay.settings import Settings
from assay.store import Database, EvaluationRecord, RunRow
from assay.telemetry import Metrics

log = logging.getLogger(__name__)


class Runtime(Protocol):
    """Where benchmark runs execute (local subprocesses today, Kubernetes Jobs in a cluster)."""

    name: str
    watches: bool
    """True for a runtime whose runs live outside this process (Kubernetes): the sweep asks it to
    :meth:`observe` them. The local runtime reports exits itself."""
    queues_launches: bool
    """True for a runtime whose :meth:`launch` only queues the run in this process and starts its process once
    :func:`~assay.lifecycle.progress.runtime_spawned` recorded it (the local one): a dispatch then claims the
    runs before launching them. False (Kubernetes): a launch creates its Job at once, under the job's lock."""

    async def launch(
        self, evaluation: EvaluationRecord, runs: Sequence[tuple[PlannedBenchmark, int]]
    ) -> None:
        """Start (or queue) one process for ``runs`` (benchmark, attempt): one benchmark, or a group of one
        provider's benchmarks when its runtime takes groups. A second call for the same runs does nothing."""

    async def stop(
        self,
        evaluation_id: str,
        index: int | None = None,
        *,
        purge: bool = False,
        tenant: str | None = None,
        before: Mapping[int, int] | None = None,
    ) -> None:
        """Stop the evaluation's runs (or one of them); ``purge`` also removes their files. ``tenant`` says
        where they run when the evaluation itself may be gone (a hard delete). ``before``: only launches of
        attempts earlier than ``before[index]`` (a cancel that arrives after the job was retried)."""

    def is_active(self, evaluation_id: str, index: int, attempt: int) -> bool: ...

    def lost(self, evaluation_id: str, row: RunRow) -> bool:
        """Was this dispatched run's process lost (the hub restarted under it)?"""

    async def kill_orphan(self, evaluation_id: str, row: RunRow) -> None: ...

    def log_path(
        self, evaluation_id: str, index: int, provider_id: str, benchmark_id: str
    ) -> Path | None: ...

    async def observe(self, evaluation: EvaluationRecord, now: datetime) -> Sequence[RunObservation]:
        """What became of the evaluation's launched, unfinished runs (only when :attr:`watches`)."""

    def evaluation_of(self, resource: Mapping[str, Any]) -> str | None:
        """The evaluation a runtime resource event (an ApiServerSource event's data) is about, if any."""

    def launch_of(self, resource: Mapping[str, Any]) -> SeenLaunch | None:
        """The launch a runtime resource event is about, when the event carries one of the runtime's own
        launches whole (a Job in the ApiServerSource's ``Resource`` mode); None for anything else."""

    async def remove(self, launch: SeenLaunch, tenant: str) -> None:
        """Remove a launch the hub does not run (the sweep decides), only where ``tenant``'s runs live; one
        already gone is not an error."""

    async def close(self) -> None: ...


class Exporter(Protocol):
    """Exports a finished evaluation (MLflow runs, the OCI evaluation card and results). Implemented in
    ``assay.exports``, outside the lifecycle, so mlflow and oras stay off the submit path."""

    async def export(self, ctx: Lifecycle, evaluation_id: str) -> None:
        """Run the due exports of a terminal evaluation; failures are recorded in the job, never raised."""

    async def retry_due(self, ctx: Lifecycle) -> dict[str, int]:
        """The sweep's share: run exports that failed (after their backoff) or whose exporter died."""


@dataclass(slots=True)
class Lifecycle:
    """The shared context of the submit, callback, dispatch, aggregate and sweep steps."""

    settings: Settings
    database: Database
    runtime: Runtime | None
    publish: Callable[[Sequence[OutboxEvent]], Awaitable[None]]
    """After a commit: hand these events to the publisher (deliver them now, or in a task)."""
    deliver: Callable[[OutboxEvent], Awaitable[None]]
    """Deliver one event to the broker (the sweep republishes through this)."""
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    metrics: Metrics | None = None
    sweep_steps: Sequence[SweepStep] = ()
    """More the sweep does on every periodic tick, from layers above (the triggers' registry poll)."""
    exporter: Exporter | None = None
    """Exports finished evaluations (MLflow, OCI); injected by processes allowed the heavy clients."""

    def timeout_of(self, planned: PlannedBenchmark) -> float:
        """Seconds a benchmark may run: its own ``timeout_seconds``, else the hub's default."""
        return planned.timeout_seconds or self.settings.benchmark_timeout_seconds

    async def published(self, events: Sequence[OutboxEvent]) -> None:
        """Hand committed events to the publisher; a failure here is only logged, because the events
        are safe in the outbox and a retry or the sweep delivers them later."""
        if not events:
            return
        try:
            await self.publish(events)
        except Exception:
            log.warning(
                "publishing %d event(s) failed; the sweep will republish them", len(events), exc_info=True
            )


SweepStep = Callable[[Lifecycle], Awaitable[dict[str, int]]]
"""One more thing the periodic sweep does, from a layer above the lifecycle (the triggers' registry poll)."""

__all__ = ["Exporter", "Lifecycle", "Runtime", "SweepStep"]
