"""Assemble the lifecycle for one process: the whole local hub, or a single Knative function."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

from cloudevents.http import CloudEvent

from assay.core.credentials import LaunchSigner
from assay.core.events import CATALOGUE, OutboxEvent
from assay.events import HttpSink, LocalBroker, Publisher
from assay.lifecycle import handlers
from assay.lifecycle.ports import Exporter, Lifecycle, Runtime, SweepStep
from assay.settings import Settings
from assay.store import Database, migrate
from assay.telemetry import Metrics, tracing

if TYPE_CHECKING:
    # The local runtime, its sidecar supervisor and assay.auth's keys are imported where a local runtime is built
    # (the local hub, a function without a runtime of its own): a function on Kubernetes never loads them.
    from assay.lifecycle.local_runner import LocalRunner
    from assay.runtimes.sidecar import LocalSidecar

log = logging.getLogger(__name__)

_RETRY_AFTER_SECONDS = 2.0


def _local_runner(runtime: Runtime | None) -> LocalRunner | None:
    """``runtime`` if it is the local runtime. Its module is imported only where one is built, so a process
    that has not imported it holds none."""
    module = sys.modules.get("assay.lifecycle.local_runner")
    return (
        cast("LocalRunner", runtime)
        if module is not None and isinstance(runtime, module.LocalRunner)
        else None
    )


@dataclass(slots=True)
class Hub:
    """A running lifecycle: what the HTTP routes and the CloudEvent functions call into."""

    lifecycle: Lifecycle
    publisher: Publisher
    sink: HttpSink | None = None
    sidecar: LocalSidecar | None = None
    owns_database: bool = False
    """Set by :func:`open_hub`: :meth:`close` closes the pool last."""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def begin_shutdown(self) -> None:
        """The process was asked to stop: nothing more starts from the runtime's queue (what runs keeps running
        until :meth:`close`), so no adapter starts that the stop would kill at once."""
        runtime = _local_runner(self.lifecycle.runtime)
        if runtime is not None:
            runtime.hold()

    async def close(self) -> None:
        """Stop the runtime first (its exits are recorded while the database is still open), all within
        ``shutdown_timeout_seconds``: the runtime's processes are always stopped; what cannot be recorded or
        delivered in time (the database is away) is left to the next start's sweep and the sidecar's spool."""
        settings = self.lifecycle.settings
        stop_by = time.monotonic() + settings.shutdown_timeout_seconds

        def left() -> float:
            return max(0.0, stop_by - time.monotonic())

        runtime = self.lifecycle.runtime
        if runtime is not None:
            local = _local_runner(runtime)
            closing = local.close(stop_by=stop_by) if local is not None else runtime.close()
            try:
                # Beyond the deadline only the processes' own grace: cancelling kills what is left of them.
                await asyncio.wait_for(closing, left() + settings.stop_grace_seconds + 1.0)
            except TimeoutError:
                log.warning(
                    "the runtime did not stop within the shutdown deadline; its processes were killed"
                )
        try:
            await asyncio.wait_for(self.publisher.drain(), left())
        except TimeoutError:
            log.warning(
                "events not delivered before the shutdown deadline stay in the outbox for the next start"
            )
        self._stop.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.sink is not None:
            await self.sink.close()
        if self.sidecar is not None:
            # Its undelivered events are on disk: a short flush, then it goes.
            await self.sidecar.close(grace_seconds=max(1.0, min(5.0, left())))
        if self.owns_database:
            await self.lifecycle.database.close()


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
    sweep_steps: Sequence[SweepStep] = (),
    sidecar: LocalSidecar | None = None,
) -> Hub:
    """Everything in one process: in-process broker, event delivery and retries, local runtime, periodic sweep;
    ``exporter`` (from a caller allowed mlflow and oras) exports finished jobs; ``sidecar``: one already spawned
    (``assay up``), else :func:`~assay.runtimes.sidecar.local_sidecar`'s.

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
        sweep_steps=sweep_steps,
    )
    from assay.auth import launch_signer
    from assay.lifecycle.local_runner import LocalRunner

    jobs_root = settings.local_jobs_dir
    if sidecar is None:
        from assay.runtimes.sidecar import local_sidecar

        sidecar = local_sidecar(settings)
    runner = LocalRunner(ctx, jobs_root, signer=signer or launch_signer(settings), sidecar=sidecar)
    # Before the hub serves (its own interpreter: about 0.9 s, less when ``assay up`` spawned it before importing
    # the app): a job submitted at once is launched at once, so a launch is never waiting on it.
    await runner.start_sidecar()
    ctx.runtime = runner
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
    sweep_steps: Sequence[SweepStep] = (),
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
        settings=settings,
        database=database,
        runtime=None,
        publish=publish,
        deliver=deliver,
        metrics=metrics,
        exporter=exporter,
        sweep_steps=sweep_steps,
    )
    ctx.runtime = runtime(settings) if runtime is not None else None
    sidecar = None
    if ctx.runtime is None and with_runtime:
        from assay.auth import launch_signer
        from assay.lifecycle.local_runner import LocalRunner
        from assay.runtimes.sidecar import local_sidecar

        # Adapters report through the sidecar, which adds each launch's credential (started at the first launch).
        sidecar = local_sidecar(settings)
        ctx.runtime = LocalRunner(
            ctx, settings.local_jobs_dir, signer=signer or launch_signer(settings), sidecar=sidecar
        )
    return Hub(lifecycle=ctx, publisher=publisher, sink=sink, sidecar=sidecar)


async def open_hub(
    settings: Settings,
    kind: Literal["local", "function"],
    *,
    prepare: Callable[[Database], Awaitable[None]] | None = None,
    sweep_steps: Sequence[SweepStep] = (),
    with_runtime: bool = False,
    runtime: RuntimeFactory | None = None,
    metrics: Metrics | None = None,
    exporter: Exporter | None = None,
    signer: LaunchSigner | None = None,
    sidecar: LocalSidecar | None = None,
) -> Hub:
    """The one way a process starts Assay (the local hub, the submit/callback services, the event functions):
    migrate the schema, open the pool with every database setting, run ``prepare`` (the catalogue's sync),
    then start the lifecycle of ``kind`` (:func:`start_local_hub` or :func:`start_function`, whose other
    arguments these are). The hub owns the pool: :meth:`Hub.close` closes it last."""
    if not settings.database_url:
        raise ValueError("open_hub needs settings.database_url (assay up starts an embedded server)")
    tracing.configure(settings, "assay" if kind == "local" else "assay-function")  # off unless OTEL_* say
    await migrate(settings.database_url)
    database = await Database.open(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_connect_timeout,
        outage_wait=settings.db_outage_wait_seconds,
        statement_timeout=settings.db_statement_timeout_seconds,
        lock_timeout=settings.db_lock_timeout_seconds,
    )
    try:
        if metrics is not None:
            metrics.watch_pool(database.pool.get_stats)
        if prepare is not None:
            await prepare(database)
        if kind == "local":
            hub = await start_local_hub(
                settings,
                database,
                metrics,
                exporter=exporter,
                signer=signer,
                sweep_steps=sweep_steps,
                sidecar=sidecar,
            )
        else:
            hub = start_function(
                settings,
                database,
                with_runtime=with_runtime,
                runtime=runtime,
                metrics=metrics,
                exporter=exporter,
                signer=signer,
                sweep_steps=sweep_steps,
            )
    except BaseException:
        await database.close()
        raise
    hub.owns_database = True
    return hub


__all__ = ["Hub", "RuntimeFactory", "open_hub", "start_function", "start_local_hub"]
