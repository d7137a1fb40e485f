"""How a job moves: adapter status events, runtime exits, and settling the job's state and score."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from assay.api.jobs import BenchmarkStatusEvent
from assay.core.events import BENCHMARK_FINISHED, EVALUATION_FINISHED
from assay.core.events import evaluation_event as event
from assay.core.scoring import ScoredBenchmark, benchmark_test, composite
from assay.core.states import (
    STATE_CODES,
    TERMINAL_JOB,
    BenchmarkRun,
    Message,
    Transition,
    apply_event,
    derive_state,
    fail_run,
)
from assay.errors import NotFound, Unprocessable
from assay.lifecycle.ports import Lifecycle
from assay.store import LockedEvaluation
from assay.telemetry import Metrics

if TYPE_CHECKING:
    from assay.runtimes import ExitReason

log = logging.getLogger(__name__)

_SERVER_CODES = frozenset(
    {
        "adapter_exit_nonzero",
        "results_not_delivered",
        "benchmark_timeout",
        "runtime_start_failed",
        "runtime_lost",
        "runtime_stopped",
        "benchmark_failed",
        "evaluation_job_cancelled",
        # The Kubernetes watcher's failures (docs/cluster.md).
        "local_queue_not_found",
        "workload_inadmissible",
        "oom_killed",
        "image_pull_failed",
        "unschedulable",
        "deadline_exceeded",
        "pod_lost_without_result",
    }
)


def record_transition(
    unit: LockedEvaluation,
    transition: Transition,
    component: str,
    causation: str | None = None,
    metrics: Metrics | None = None,
) -> None:
    """Store a transition; a run that became terminal gets its test and announces ``benchmark.finished``."""
    run = transition.run
    if transition.finished and metrics is not None:
        unit.on_commit(lambda: _count_finished(metrics, run))
    if transition.finished and run.status == "completed":
        score = unit.record.plan.benchmarks[run.index].score
        test = benchmark_test(
            score.metric, score.lower_is_better, score.scale, score.threshold, run.result.get("metrics", {})
        )
        run = replace(run, result={**run.result, "test": test})
    unit.put(run)
    if transition.finished:
        unit.emit(
            event(
                BENCHMARK_FINISHED,
                unit.record.tenant,
                component,
                unit.record.id,
                {"attempt": run.attempt, "status": run.status},
                index=run.index,
                causation_id=causation,
            )
        )


def _count_finished(metrics: Metrics, run: BenchmarkRun) -> None:
    code = (run.error_message or {}).get("message_code", "") if run.status != "completed" else ""
    # Adapters choose their own codes: only the hub's are labels, to keep cardinality bounded.
    code = code if code in _SERVER_CODES else ("adapter" if code else "")
    metrics.benchmarks_finished.labels(metrics.provider_label(run.provider_id), run.status, code).inc()
    if run.started_at is not None and run.completed_at is not None:
        seconds = max(0.0, (run.completed_at - run.started_at).total_seconds())
        metrics.benchmark_duration.labels(metrics.provider_label(run.provider_id), run.status).observe(
            seconds
        )


def _started(ctx: Lifecycle, unit: LockedEvaluation) -> None:
    if unit.record.state == "pending" and any(r.status != "pending" for r in unit.runs()):
        unit.set(
            state="running",
            started_at=unit.record.started_at or ctx.clock(),
            message=Message("Evaluation job is running", STATE_CODES["running"]).as_dict(),
        )


async def record_event(
    ctx: Lifecycle,
    evaluation_id: str,
    tenant: str | None,
    status: BenchmarkStatusEvent,
    *,
    attempt: int | None = None,
) -> Literal["applied", "ignored", "late", "stale"]:
    """Apply an adapter's status event. Late events (the job is finished), events of an ``attempt`` that is no
    longer the run's current one (a launch before a retry) and replays change nothing."""
    # A terminal status carries results the adapter believes delivered: that commit is durable.
    # A phase or progress update is not worth a WAL flush.
    durable = status.status in ("completed", "failed", "cancelled")

    def apply(unit: LockedEvaluation) -> Literal["applied", "ignored", "late", "stale"]:
        if tenant is not None and unit.record.tenant != tenant:
            raise NotFound(f"Evaluation job {evaluation_id!r} does not exist")
        if unit.record.state in TERMINAL_JOB:
            return "late"
        row = unit.record.run(status.benchmark_index)
        if row is None or (row.run.provider_id, row.run.benchmark_id) != (status.provider_id, status.id):
            raise Unprocessable(
                f"Job {evaluation_id} has no benchmark ({status.provider_id!r}, {status.id!r}) at index "
                f"{status.benchmark_index}",
                message_code="unknown_benchmark",
            )
        if attempt is not None and (row.run.attempt != attempt or row.dispatched_attempt < attempt):
            return "stale"
        transition = apply_event(row.run, status, ctx.clock())
        if not transition.changed:
            return "ignored"
        record_transition(unit, transition, "callback", metrics=ctx.metrics)
        _started(ctx, unit)
        return "applied"

    # Computed from a read and written if the job did not change meanwhile (EvaluationRepository.change).
    changed = await ctx.database.evaluations.change(evaluation_id, apply, durable=durable)
    if changed is None:
        raise NotFound(f"Evaluation job {evaluation_id!r} does not exist")
    unit, outcome = changed
    assert outcome is not None  # no inbox: never a duplicate
    if outcome == "late":
        log.info("late event for finished job %s ignored", evaluation_id, extra={"late_event": True})
    elif outcome == "stale":
        log.info(
            "event of attempt %s for %s benchmark %s ignored: attempt %s is current",
            attempt,
            evaluation_id,
            status.benchmark_index,
            unit.record.runs[status.benchmark_index].run.attempt,
            extra={"stale_event": True},
        )
    elif outcome == "applied":
        await ctx.published(unit.events)
    return outcome


async def runtime_spawned(
    ctx: Lifecycle, evaluation_id: str, index: int, attempt: int, runtime_ref: str, timeout_seconds: float
) -> bool:
    """The runtime is about to start the run's process: remember where, and when it must be done by.

    Called before the process exists, so a run is never started without this record (after a crash, a run
    without one was never started and is launched again; one with it is never run twice). False: the run
    moved on (finished, cancelled, retried), so it must not start. A database error escapes: not started."""
    deadline = ctx.clock() + timedelta(seconds=timeout_seconds)
    return await ctx.database.evaluations.record_spawn(evaluation_id, index, attempt, runtime_ref, deadline)


_EXIT_FAILURES: dict[str, tuple[str, str]] = {
    "timeout": (
        "benchmark_timeout",
        "The benchmark ran longer than its timeout of {timeout:g} s and was stopped",
    ),
    "shutdown": (
        "runtime_stopped",
        "The hub stopped while the benchmark was running; retry the job to run it again",
    ),
    "spawn_failed": ("runtime_start_failed", "The adapter process could not be started: {detail}"),
}


async def runtime_exited(
    ctx: Lifecycle,
    evaluation_id: str,
    index: int,
    attempt: int,
    reason: ExitReason,
    returncode: int | None,
    detail: str = "",
) -> None:
    """The run's process is gone. If the adapter never reported a terminal status, that is a failure
    with a code saying why (EvalHub 1.0.2 left such jobs pending forever)."""
    if reason == "stopped":
        return  # stopped on purpose: cancelled, superseded by a retry, or reaped after finishing
    if ctx.database.recent_jobs.finished(evaluation_id, index, attempt):
        return  # the usual case, known without a read: this process committed the adapter's terminal status
    current = await ctx.database.evaluations.run_status(evaluation_id, index)
    if current is None or current[1] != attempt or current[0] in ("completed", "failed", "cancelled"):
        return  # the usual case: the adapter reported its result before exiting
    events = []
    async with ctx.database.evaluations.locked(evaluation_id) as unit:
        if unit is None:
            return
        run = unit.record.runs[index].run
        if run.attempt != attempt or run.terminal or unit.record.state in TERMINAL_JOB:
            return
        if reason == "exited":
            if returncode == 0:
                code, text = (
                    "results_not_delivered",
                    "The adapter exited with status 0 without reporting results",
                )
            else:
                code, text = (
                    "adapter_exit_nonzero",
                    f"The adapter exited with status {returncode} without reporting a terminal status",
                )
        else:
            code, template = _EXIT_FAILURES[reason]
            timeout = ctx.timeout_of(unit.record.plan.benchmarks[index])
            text = template.format(timeout=timeout, detail=detail)
        text += f" (see GET /api/v1/evaluations/jobs/{evaluation_id}/benchmarks/{index}/logs)"
        record_transition(unit, fail_run(run, text, code, ctx.clock()), "dispatch", metrics=ctx.metrics)
        _started(ctx, unit)
        events = unit.events
    await ctx.published(events)


def asks_for_exports(request: Mapping[str, Any]) -> bool:
    """Does the job ask for anything an exporter makes (an OCI artifact, an MLflow experiment)? Carried in its
    ``evaluation.finished`` event, so a job that asks for none is not read again once finished."""
    return bool((request.get("exports") or {}).get("oci") or request.get("experiment"))


def settle(ctx: Lifecycle, unit: LockedEvaluation, causation: str | None = None) -> None:
    """Derive the job's state from its runs; on reaching a terminal state, score it and announce it."""
    if unit.record.state in TERMINAL_JOB or unit.current("cancelled"):
        return
    runs = unit.runs()
    state, message = derive_state(runs)
    if state not in TERMINAL_JOB:
        if state != unit.record.state or message.as_dict() != unit.record.message:
            unit.set(state=state, message=message.as_dict())
        return
    now = ctx.clock()
    results: dict[str, Any] = dict(unit.record.results)
    results["test"] = score_job(unit, runs)
    unit.set(state=state, message=message.as_dict(), results=results, completed_at=now)
    metrics = ctx.metrics
    if metrics is not None:
        unit.on_commit(lambda: metrics.jobs_finished.labels(state).inc())
    unit.emit(
        event(
            EVALUATION_FINISHED,
            unit.record.tenant,
            "aggregate",
            unit.record.id,
            {"state": state, "test": results["test"], "exports": asks_for_exports(unit.record.request)},
            causation_id=causation,
        )
    )


def score_job(unit: LockedEvaluation, runs: list[BenchmarkRun]) -> dict[str, Any]:
    plan = unit.record.plan
    scored = [
        ScoredBenchmark(
            index=run.index,
            weight=plan.benchmarks[run.index].weight,
            status=run.status,
            test=run.result.get("test"),
            scale=plan.benchmarks[run.index].score.scale,
        )
        for run in runs
    ]
    return composite(scored, plan.composite_threshold)


__all__ = ["record_event", "record_transition", "runtime_exited", "runtime_spawned", "score_job", "settle"]
