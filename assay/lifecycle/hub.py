"""Assemble the lifecycle for one process: the whole local hub, or a single Knative function."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from cloudevents.http import CloudEvent

from assay.auth import launch_signer
from assay.core.credentials import LaunchSigner
from assay.core.events import CATALOGUE, OutboxEvent
from assay.events import HttpSink, LocalBroker, Publisher
from assay.lifecycle import handlers
from assay.lifecycle.context import Exporter, Lifecycle, Runtime
from assay.lifecycle.local import LocalRunner
from assay.runtimes.sidecar import LocalSidecar, SidecarOptions
from assay.settings import Settings
from assay.store import Database
from assay.telemetry import Metrics

log = logging.getLogger(__name__)

_RETRY_AFTER_SECONDS = 2.0


@dataclass(slots=True)
class Hub:
    """A running lifecycle: what the HTTP routes and the CloudEvent functions call into."""

    lifecycle: Lifecycle
    publisher: Publisher
    sink: HttpSink | None = None
    sidecar: LocalSidecar | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        """Stop the runtime first (its exits are recorded while the database is still open)."""
        if self.lifecycle.runtime is not None:
            await self.lifecycle.runtime.close()
        await self.publisher.drain()
        self._stop.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.sink is not None:
            await self.sink.close()
        if self.sidecar is not None:
            await self.sidecar.close()


async def _every(seconds: float, stop: asyncio.Event, step: Callable[[], Awaitable[object]]) -> None:
    """Run ``step`` now and then every ``seconds`` until ``stop`` is set; a failure waits for the next turn."""
    while not stop.is_set():
        try:
            await step()
        except Exception:
            log.exception("%s failed; trying again in %g s", getattr(step, "__name__", "step"), seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _no_sink(event: OutboxEvent) -> None:
    raise RuntimeError("no broker to deliver to (K_SINK is not set); the event stays in the outbox")


def _subscribe(broker: LocalBroker, ctx: Lifecycle) -> None:
    """The local equivalent of the Knative Triggers: one subscription per type and consuming function,
    as the catalogue says. The sweep is not subscribed: the local hub runs it on a timer."""

    async def dispatch(ce: CloudEvent) -> None:
        await handlers.dispatch(ctx, ce)

    async def aggregate(ce: CloudEvent) -> None:
        await handlers.aggregate(ctx, ce)

    functions = {"dispatch": dispatch, "aggregate": aggregate}
    for kind, consumers in CATALOGUE.items():
        for name in consumers:
            if name in functions:
                broker.subscribe(kind, name, functions[name])


async def start_local_hub(
    settings: Settings,
    database: Database,
    metrics: Metrics | None = None,
    *,
    exporter: Exporter | None = None,
    signer: LaunchSigner | None = None,
) -> Hub:
    """Everything in one process: in-process broker, event delivery and retries, local runtime, periodic sweep;
    ``exporter`` (from a caller allowed mlflow and oras) exports finished jobs.

    A first sweep runs at once, so work interrupted by a crash (a SIGKILLed hub) is recovered:
    undelivered events go out, queued runs are launched again, runs whose process was lost fail
    with ``runtime_lost``.
    """
    broker = LocalBroker()
    publisher = Publisher(database.outbox, broker.deliver)

    async def publish(events: Sequence[OutboxEvent]) -> None:
        publisher.deliver_soon(events)

    ctx = Lifecycle(
        settings=settings,
        database=database,
        runtime=None,
        publish=publish,
        deliver=broker.deliver,
        metrics=metrics,
        exporter=exporter,
    )
    jobs_root = settings.local_jobs_dir
    sidecar = None
    if settings.local_sidecar:
        sidecar = LocalSidecar(
            SidecarOptions(
                jobs_root=jobs_root,
                hub_url=settings.callback_base_url(),
                cache_dir=settings.model_cache_dir or settings.data_dir / "model-cache",
                max_concurrency=settings.model_max_concurrency,
                work_dir=settings.data_dir / "sidecar",
            )
        )
        await sidecar.start()
    ctx.runtime = LocalRunner(ctx, jobs_root, signer=signer or launch_signer(settings), sidecar=sidecar)
    _subscribe(broker, ctx)
    hub = Hub(lifecycle=ctx, publisher=publisher, sidecar=sidecar)

    async def retry_undelivered() -> None:
        # Fresh rows go out through deliver_soon; this retries only what that could not deliver.
        await publisher.flush(older_than_seconds=_RETRY_AFTER_SECONDS)

    async def sweep() -> None:
        await handlers.sweep(ctx)

    hub._tasks.append(asyncio.create_task(_every(1.0, hub._stop, retry_undelivered), name="assay-publisher"))
    hub._tasks.append(
        asyncio.create_task(_every(settings.sweep_interval_seconds, hub._stop, sweep), name="assay-sweep")
    )
    return hub


RuntimeFactory = Callable[[Settings], Runtime | None]
"""Builds the function's runtime from its settings (None: none of its kind is configured)."""


def start_function(
    settings: Settings,
    database: Database,
    *,
    with_runtime: bool,
    metrics: Metrics | None = None,
    runtime: RuntimeFactory | None = None,
    exporter: Exporter | None = None,
    signer: LaunchSigner | None = None,
) -> Hub:
    """One Knative function: events go to ``K_SINK`` right after commit; the sweep retries the rest.

    ``runtime`` (from the function's module, so heavy clients stay off the submit path) builds its runtime;
    without one, ``with_runtime`` gives the function the local runtime."""
    sink = HttpSink(settings.k_sink) if settings.k_sink else None
    deliver = sink.deliver if sink is not None else _no_sink
    publisher = Publisher(database.outbox, deliver)

    async def publish(events: Sequence[OutboxEvent]) -> None:
        await publisher.flush([e.id for e in events])

    ctx = Lifecycle(
        settings=settings, database=database, runtime=None, publish=publish, deliver=deliver, metrics=metrics
    )
    ctx.runtime = runtime(settings) if runtime is not None else None
    ctx.exporter = exporter
    if ctx.runtime is None and with_runtime:
        ctx.runtime = LocalRunner(ctx, settings.data_dir / "jobs", signer=signer or launch_signer(settings))
    return Hub(lifecycle=ctx, publisher=publisher, sink=sink)


__all__ = ["Hub", "RuntimeFactory", "start_function", "start_local_hub"]
