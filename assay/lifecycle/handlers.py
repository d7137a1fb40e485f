"""The CloudEvent handlers behind the dispatch, aggregate and sweep functions.

The same coroutines run in a Knative function (assay.functionhost's app under uvicorn) and in the local hub's
in-process broker. Each is idempotent on the event's ``(source, id)``; a handler raises
:class:`~assay.errors.Unprocessable` (422) for an event that can never apply and :class:`TemporaryError` (or lets a
database error escape) when a retry may succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import psycopg
from cloudevents.http import CloudEvent

from assay.core.events import (
    BENCHMARK_FINISHED,
    EVALUATION_ACCEPTED,
    EVALUATION_CANCELLED,
    EVALUATION_FINISHED,
    EVALUATION_RETRIED,
    KUBERNETES_RESOURCE_EVENTS,
)
from assay.core.events import evaluation_event as event
from assay.core.plan import PlannedBenchmark, launch_groups
from assay.core.states import TERMINAL_JOB, fail_run
from assay.errors import NotFound, TemporaryError, Unprocessable
from assay.lifecycle.ports import Lifecycle
from assay.lifecycle.progress import record_transition, settle
from assay.runtimes.observation import NOTICE_CODES, LaunchRefused, RunObservation, SeenLaunch
from assay.store import EvaluationRecord, LockedEvaluation, RunRow
from assay.telemetry import tracing

log = logging.getLogger(__name__)

_reapers: set[asyncio.Task[None]] = set()


def _payload(ce: CloudEvent) -> tuple[str, dict[str, Any]]:
    data = ce.data
    if not isinstance(data, dict) or not isinstance(data.get("evaluation_id"), str):
        raise Unprocessable(f"event {ce['id']} ({ce['type']}) carries no evaluation_id")
    return data["evaluation_id"], data


def _inbox(handler: str, ce: CloudEvent) -> tuple[str, str, str]:
    return handler, str(ce["source"]), str(ce["id"])


@contextlib.contextmanager
def _retryable() -> Iterator[None]:
    """Database trouble is transient: answer 503 so the broker redelivers."""
    try:
        yield
    except (
        psycopg.OperationalError,
        psycopg.errors.SerializationFailure,
        psycopg.errors.LockNotAvailable,
    ) as exc:
        raise TemporaryError(f"database unavailable: {exc}") from exc


async def dispatch(ctx: Lifecycle, ce: CloudEvent) -> None:
    """Launch pending runs (accepted, retried), stop runs (cancelled), reap finished ones."""
    with _retryable():
        kind = ce["type"]
        if kind in (EVALUATION_ACCEPTED, EVALUATION_RETRIED):
            await _launch_pending(ctx, ce)
        elif kind == EVALUATION_CANCELLED:
            evaluation_id, data = _payload(ce)
            if ctx.runtime is not None:
                tenant = data.get("tenant")
                purge = bool(data.get("purge"))
                await ctx.runtime.stop(
                    evaluation_id,
                    purge=purge,
                    tenant=tenant if isinstance(tenant, str) else None,
                    before=None if purge else await _retried_since_cancel(ctx, evaluation_id),
                )
        elif kind == BENCHMARK_FINISHED:
            _reap_later(ctx, ce)
        else:
            raise Unprocessable(f"dispatch does not handle {kind!r}")


async def _retried_since_cancel(ctx: Lifecycle, evaluation_id: str) -> dict[int, int] | None:
    """The current attempt of each benchmark when the job was retried after this cancel (a late or
    redelivered cancel then stops only what it was about, never the retry's launches); None otherwise."""
    try:
        record = await ctx.database.evaluations.get(evaluation_id)
    except NotFound:
        return None
    if record.cancelled:
        return None
    return {row.run.index: row.run.attempt for row in record.runs}


# Why a run could not be launched: (message, code, the runtime's own error document if it judged).
_Failure = tuple[str, str, dict[str, Any] | None]


async def _launch_pending(ctx: Lifecycle, ce: CloudEvent) -> None:
    """Launch every pending run whose current attempt was not dispatched yet.

    A runtime that only queues a launch in this process (the local one: the process starts after
    :func:`~assay.lifecycle.progress.runtime_spawned` records it, which a cancel or a retry fences off) gets its
    runs claimed first with one guarded write, then launched: two statements and no transaction held open. A
    runtime that creates its launch at once (a Kubernetes Job) is launched under the job's row lock, so that the
    sweep never takes a launch still being made for a leftover (:func:`_left_over`)."""
    evaluation_id, _ = _payload(ce)
    runtime = ctx.runtime
    if runtime is not None and runtime.queues_launches:
        await _claim_then_launch(ctx, ce, evaluation_id)
        return
    locked = ctx.database.evaluations.locked
    # Not durable: should the machine crash, the sweep dispatches again from the pending runs.
    async with locked(evaluation_id, inbox=_inbox("dispatch", ce), durable=False) as unit:
        if unit is None or unit.duplicate:
            return
        due = _due(unit.record)
        failures = await _launch_all(ctx, unit.record, due)
        for row in due:
            if row.run.index in failures:
                _fail_launch(ctx, unit, row, failures[row.run.index], ce["id"])
            else:
                unit.put_row(replace(row, dispatched_attempt=row.run.attempt))
        events = unit.events
    await ctx.published(events)


async def _claim_then_launch(ctx: Lifecycle, ce: CloudEvent, evaluation_id: str) -> None:
    """Claim the due runs (their attempt recorded as dispatched, the event in the inbox) with one guarded write,
    then launch them; a run whose launch failed is failed by a second change, if still the claimed attempt.

    Two dispatches of one job (a redelivered event, the sweep's) cannot both claim a run: the second's write finds
    the job's version moved and computes again from a read that shows the run claimed. Should the hub stop
    between the claim and the launch, the run is dispatched without a process: the sweep launches it again
    (:meth:`Runtime.lost`, no ``runtime_ref``), as it does for a run queued and not yet started."""
    evaluations = ctx.database.evaluations

    def claim(unit: LockedEvaluation) -> list[RunRow]:
        due = _due(unit.record)
        for row in due:
            unit.put_row(replace(row, dispatched_attempt=row.run.attempt))
        return due

    # Not durable: should the machine crash, the sweep dispatches again from the pending runs.
    claimed = await evaluations.change(evaluation_id, claim, inbox=_inbox("dispatch", ce), durable=False)
    if claimed is None:
        return
    unit, due = claimed
    if not due:
        return  # a redelivered event, or nothing due
    failures = await _launch_all(ctx, unit.record, due)
    if not failures:
        return
    by_index = {row.run.index: row for row in due}

    def fail(unit: LockedEvaluation) -> None:
        for index, failure in failures.items():
            claimed_row, row = by_index[index], unit.rows()[index]
            if row.run.attempt == claimed_row.run.attempt and not row.run.terminal:
                # Never recorded as launched, as under the lock: the sweep tells such runs from leftovers.
                unit.put_row(replace(row, dispatched_attempt=claimed_row.dispatched_attempt))
                _fail_launch(ctx, unit, row, failure, ce["id"])

    failed = await evaluations.change(evaluation_id, fail, durable=False)
    if failed is not None:
        await ctx.published(failed[0].events)


def _due(record: EvaluationRecord) -> list[RunRow]:
    """The pending runs whose current attempt was not dispatched yet (none once the job is cancelled or over)."""
    if record.cancelled or record.state in TERMINAL_JOB:
        return []
    return [
        row for row in record.runs if row.run.status == "pending" and row.dispatched_attempt < row.run.attempt
    ]


async def _launch_all(ctx: Lifecycle, record: EvaluationRecord, due: list[RunRow]) -> dict[int, _Failure]:
    """Launch ``due`` in the plan's launch groups, eight at a time; why each run that failed to launch failed."""
    runtime = ctx.runtime
    if runtime is None:
        text = "The runtime could not start the benchmark: no runtime is configured on this hub"
        return {row.run.index: (text, "runtime_start_failed", None) for row in due}
    failures: dict[int, _Failure] = {}
    limit = asyncio.Semaphore(8)

    async def launch_one(runs: list[tuple[PlannedBenchmark, int]]) -> None:
        async with limit:
            try:
                await tracing.traced(
                    "launch", runtime.launch(record, runs), lambda: _launched(record.id, runs)
                )
            except LaunchRefused as exc:
                log.warning("launch of %s of %s refused: %s", [p.index for p, _ in runs], record.id, exc)
                error = exc.note().as_dict()
                failures.update({p.index: (exc.message, exc.message_code, error) for p, _ in runs})
            except Exception as exc:
                # The exception's text stays in the log: it may carry what users must not see (a client's HTTP
                # headers, hosts, raw server answers).
                log.exception("launching %s of %s failed", [p.index for p, _ in runs], record.id)
                text = (
                    f"The runtime could not start the benchmark ({type(exc).__name__}); the hub's log has the "
                    "details"
                )
                failures.update({p.index: (text, "runtime_start_failed", None) for p, _ in runs})

    groups = launch_groups(record.plan, [(row.run.index, row.run.attempt) for row in due])
    await asyncio.gather(*(launch_one(runs) for runs in groups))
    return failures


def _fail_launch(
    ctx: Lifecycle, unit: LockedEvaluation, row: RunRow, failure: _Failure, causation: str
) -> None:
    text, code, error = failure
    transition = fail_run(row.run, text, code, ctx.clock(), origin="server")
    if error is not None:  # the runtime's own judgement: its origin and reason
        transition = replace(transition, run=replace(transition.run, error_message=error))
    record_transition(unit, transition, "dispatch", causation, ctx.metrics)


def _launched(evaluation_id: str, runs: list[tuple[PlannedBenchmark, int]]) -> dict[str, str]:
    """The attributes of a launch's span (built only while tracing is on)."""
    return {
        "assay.evaluation.id": evaluation_id,
        "assay.provider.id": runs[0][0].provider_id,
        "assay.benchmark.indices": ",".join(str(p.index) for p, _ in runs),
    }


def _reap_later(ctx: Lifecycle, ce: CloudEvent) -> None:
    """An adapter that reported a terminal status should exit; stop it if it lingers."""
    runtime = ctx.runtime
    if runtime is None:
        return
    evaluation_id, data = _payload(ce)
    index, attempt = int(data.get("benchmark_index", -1)), int(data.get("attempt", 0))
    if not runtime.is_active(evaluation_id, index, attempt):
        return

    async def reap() -> None:
        await asyncio.sleep(ctx.settings.reap_grace_seconds)
        if runtime.is_active(evaluation_id, index, attempt):
            log.info(
                "stopping benchmark %d of %s: it reported a terminal status but kept running",
                index,
                evaluation_id,
            )
            await runtime.stop(evaluation_id, index)

    task = asyncio.get_running_loop().create_task(reap())
    _reapers.add(task)
    task.add_done_callback(_reapers.discard)


async def aggregate(ctx: Lifecycle, ce: CloudEvent) -> None:
    """On ``benchmark.finished``: derive the job's state; once every run is terminal, score the job.
    On ``evaluation.finished``: export the finished job (MLflow, OCI), after its terminal state is committed;
    an export's failure is recorded in the job for the sweep to retry, never raised."""
    with _retryable():
        if ce["type"] == EVALUATION_FINISHED:
            evaluation_id, data = _payload(ce)
            # Events from before "exports" was carried say nothing: the exporter reads the job to know.
            if ctx.exporter is not None and data.get("exports") is not False:
                # Idempotent without the inbox: the exports table says what is done for this finish.
                await tracing.traced(
                    "export", ctx.exporter.export(ctx, evaluation_id), {"assay.evaluation.id": evaluation_id}
                )
            return
        if ce["type"] != BENCHMARK_FINISHED:
            raise Unprocessable(f"aggregate does not handle {ce['type']!r}")
        evaluation_id, _ = _payload(ce)
        # Not durable: the settled state is derived from the (durable) runs, and the sweep settles again.
        # Computed from a read and written if the job did not change meanwhile (EvaluationRepository.change).
        changed = await ctx.database.evaluations.change(
            evaluation_id,
            lambda unit: settle(ctx, unit, causation=ce["id"]),
            inbox=_inbox("aggregate", ce),
            durable=False,
        )
        if changed is not None and not changed[0].duplicate:
            await ctx.published(changed[0].events)


async def sweep(ctx: Lifecycle, ce: CloudEvent | None = None) -> dict[str, int]:
    """Reconcile: republish stuck events, fail runs past their deadline or whose process was lost,
    dispatch runs that were never launched, and settle jobs whose runs are all terminal.

    An ApiServerSource event (a Job, pod or Workload changed) reconciles only the evaluation it is about."""
    counts = {
        "republished": 0,
        "timed_out": 0,
        "lost": 0,
        "redispatched": 0,
        "settled": 0,
        "watched": 0,
        "removed": 0,
        "errors": 0,
    }
    if ce is not None and ce["type"] in KUBERNETES_RESOURCE_EVENTS:
        with _retryable():
            evaluation_id = _evaluation_of_resource(ctx, ce)
            if evaluation_id is not None:
                await _reconcile(ctx, evaluation_id, counts, _running_launch(ctx, ce, evaluation_id))
        return counts
    with _retryable():
        stats = await ctx.database.outbox.deliver_pending(
            ctx.deliver, older_than_seconds=ctx.settings.outbox_stale_seconds
        )
        counts["republished"] = stats.delivered
        for evaluation_id in await ctx.database.evaluations.open_ids():
            await _reconcile_one(ctx, evaluation_id, counts)
        await ctx.database.outbox.prune()
    for step in ctx.sweep_steps:
        try:
            counts.update(await step(ctx))
        except Exception:  # one failing step (a registry away) must not stop the others or the next sweep
            log.exception("sweep step %s failed", getattr(step, "__name__", step))
    if ctx.exporter is not None:
        with _retryable():
            counts.update(await ctx.exporter.retry_due(ctx))
    if any(counts.values()):
        log.info("sweep: %s", counts, extra={"sweep": counts})
    return counts


def _evaluation_of_resource(ctx: Lifecycle, ce: CloudEvent) -> str | None:
    data = ce.data if isinstance(ce.data, dict) else {}
    if ctx.runtime is None:
        return None
    found = ctx.runtime.evaluation_of(data)
    if found is None and isinstance(ce.get("subject"), str):
        # Reference mode without data: the subject is the object's path, ending in its name.
        found = ctx.runtime.evaluation_of({"name": str(ce["subject"]).rsplit("/", 1)[-1]})
    return found


def _running_launch(ctx: Lifecycle, ce: CloudEvent, evaluation_id: str) -> SeenLaunch | None:
    """The launch of ``evaluation_id`` the event shows still running (a Job of Assay's, whole), if any."""
    data = ce.data if isinstance(ce.data, dict) else {}
    seen = ctx.runtime.launch_of(data) if ctx.runtime is not None else None
    return seen if seen is not None and seen.running and seen.evaluation_id == evaluation_id else None


def _left_over(rows: list[RunRow], seen: SeenLaunch) -> bool:
    """A launch the hub does not run: every benchmark it was created for has a later attempt, or failed at its
    launch without the launch ever being recorded (the API server took a create after the hub's request had
    timed out, or made the object and answered an error). Such a Job would hold Kueue quota and a node until its
    ``activeDeadlineSeconds``, its callbacks fenced off as stale. Judged under the job's lock, which a dispatch
    holds while it creates: a launch still being made is never taken for a leftover."""
    by_index = {row.run.index: row for row in rows}
    return all(index in by_index and _gave_up(by_index[index], seen.attempt) for index in seen.indices)


def _gave_up(row: RunRow, attempt: int) -> bool:
    """Whether the hub gave up attempt ``attempt`` of this run: a later attempt replaced it, or it failed
    without ever being recorded as launched."""
    run = row.run
    return run.attempt > attempt or (
        run.attempt == attempt and run.terminal and row.dispatched_attempt < attempt
    )


async def _observe(ctx: Lifecycle, evaluation_id: str) -> list[RunObservation]:
    """Ask a watching runtime what became of the job's launched runs, before taking the job's lock (the
    runtime's I/O must not hold it)."""
    runtime = ctx.runtime
    if runtime is None or not runtime.watches:
        return []
    try:
        record = await ctx.database.evaluations.get(evaluation_id)
    except NotFound:  # deleted meanwhile: nothing to watch
        return []
    if record.state in TERMINAL_JOB:
        return []
    return list(await runtime.observe(record, ctx.clock()))


def _apply_observations(
    ctx: Lifecycle, unit: LockedEvaluation, observations: list[RunObservation], orphans: list[RunRow]
) -> int:
    """Record what the runtime saw, for runs still at the observed attempt: failures (the launch is then
    removed), the queue notice as the run's warning (never over an adapter's own warning), the start."""
    failed = 0
    for seen in observations:
        row = unit.rows()[seen.index]
        run = row.run
        if run.terminal or run.attempt != seen.attempt or row.dispatched_attempt < run.attempt:
            continue
        # The hub's deadline runs only while the runtime gives the run resources: a run Kueue preempted and
        # re-queued has none until it is admitted again (its wait is the watcher's admission timeout).
        if seen.runtime_ref is not None and (row.runtime_ref, row.deadline_at) != (
            seen.runtime_ref,
            seen.deadline_at,
        ):
            row = replace(row, runtime_ref=seen.runtime_ref, deadline_at=seen.deadline_at)
            unit.put_row(row)
        if seen.failure is not None:
            transition = fail_run(run, seen.failure.message, seen.failure.message_code, ctx.clock())
            error = seen.failure.as_dict()
            transition = replace(transition, run=replace(transition.run, error_message=error))
            record_transition(unit, transition, "sweep", metrics=ctx.metrics)
            orphans.append(row)
            failed += 1
        elif seen.notice is not None:
            current = run.warning_message or {}
            if (
                not current or current.get("message_code") in NOTICE_CODES
            ) and current != seen.notice.as_dict():
                unit.put(replace(run, warning_message=seen.notice.as_dict()))
    return failed


async def _reconcile_one(ctx: Lifecycle, evaluation_id: str, counts: dict[str, int]) -> None:
    """Reconcile one evaluation of a sweep; a runtime error about it (a namespace the runtime may not read,
    the API server timing out) is logged and left to the next sweep instead of ending this one for every
    evaluation after it. Database errors still end the sweep (the broker redelivers the tick)."""
    try:
        await _reconcile(ctx, evaluation_id, counts)
    except psycopg.Error:
        raise
    except Exception:
        log.exception("reconciling evaluation %s failed; the next sweep tries again", evaluation_id)
        counts["errors"] += 1


async def _reconcile(
    ctx: Lifecycle, evaluation_id: str, counts: dict[str, int], seen: SeenLaunch | None = None
) -> None:
    """Reconcile one evaluation under its lock; with ``seen`` (a Job event's launch), remove that launch too when
    it is :func:`_left_over`, whatever the evaluation's state."""
    runtime = ctx.runtime
    orphans: list[RunRow] = []
    leftover: tuple[SeenLaunch, str] | None = None
    observations = await _observe(ctx, evaluation_id)
    has_pending_events = await ctx.database.outbox.has_pending_for(evaluation_id)
    async with ctx.database.evaluations.locked(evaluation_id) as unit:
        if unit is None:
            return
        if seen is not None and _left_over(unit.rows(), seen):
            leftover = seen, unit.record.tenant
        if unit.record.state not in TERMINAL_JOB:
            _reconcile_open(ctx, unit, observations, has_pending_events, counts, orphans)
        events = unit.events
    await ctx.published(events)
    if runtime is None:
        return
    for row in orphans:
        try:
            await runtime.kill_orphan(evaluation_id, row)
        except Exception:  # logged; its activeDeadlineSeconds ends the Job at the latest
            log.exception("removing the launch of %s benchmark %d failed", evaluation_id, row.run.index)
    if leftover is not None:
        launch, tenant = leftover
        log.warning(
            "removing launch %s of %s benchmarks %s attempt %d: the hub does not run it",
            launch.runtime_ref,
            evaluation_id,
            list(launch.indices),
            launch.attempt,
        )
        await runtime.remove(launch, tenant)
        counts["removed"] += 1


def _reconcile_open(
    ctx: Lifecycle,
    unit: LockedEvaluation,
    observations: list[RunObservation],
    has_pending_events: bool,
    counts: dict[str, int],
    orphans: list[RunRow],
) -> None:
    """An open evaluation's share: what the runtime saw, deadlines, lost and never-dispatched runs, settling."""
    now = ctx.clock()
    runtime = ctx.runtime
    evaluation_id = unit.record.id
    counts["watched"] += _apply_observations(ctx, unit, observations, orphans)
    redispatch = False
    for row in unit.rows():
        run = row.run
        if run.terminal:
            continue
        if row.deadline_at is not None and row.deadline_at < now:
            timeout = ctx.timeout_of(unit.record.plan.benchmarks[run.index])
            record_transition(
                unit,
                fail_run(
                    run,
                    f"The benchmark did not finish within its timeout of {timeout:g} s",
                    "benchmark_timeout",
                    now,
                ),
                "sweep",
                metrics=ctx.metrics,
            )
            counts["timed_out"] += 1
            if runtime is not None:
                orphans.append(row)
        elif (
            runtime is not None and row.dispatched_attempt >= run.attempt and runtime.lost(evaluation_id, row)
        ):
            if row.runtime_ref is None:
                # Queued but never started when the hub went away: just launch it again.
                unit.put_row(replace(row, dispatched_attempt=run.attempt - 1))
                redispatch = True
                counts["redispatched"] += 1
            else:
                orphans.append(row)
                record_transition(
                    unit,
                    fail_run(
                        run,
                        "The hub restarted while the benchmark was running and its process was lost; "
                        f"retry with POST /api/v1/evaluations/jobs/{evaluation_id}/retry",
                        "runtime_lost",
                        now,
                    ),
                    "sweep",
                    metrics=ctx.metrics,
                )
                counts["lost"] += 1
        elif (
            row.dispatched_attempt < run.attempt
            and not has_pending_events
            and now - unit.record.updated_at > timedelta(seconds=ctx.settings.dispatch_stale_seconds)
        ):
            redispatch = True
            counts["redispatched"] += 1
    if redispatch:
        unit.emit(
            event(EVALUATION_ACCEPTED, unit.record.tenant, "sweep", evaluation_id, {"redispatch": True})
        )
    before = unit.current("state")
    settle(ctx, unit)
    if unit.current("state") in TERMINAL_JOB and before not in TERMINAL_JOB:
        counts["settled"] += 1


__all__ = ["aggregate", "dispatch", "sweep"]
