"""The lifecycle state machine: how an event moves a benchmark run, and what the job's state is.

Pure functions over plain values; the clock is passed in. Rules that make at-least-once delivery
safe: a terminal benchmark status is final (a late or replayed event cannot reopen it), a replayed
event is a no-op, and progress never moves backwards within an attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from assay.api.jobs import BenchmarkStatus, BenchmarkStatusEvent, JobState

TERMINAL_BENCHMARK: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
TERMINAL_JOB: frozenset[str] = frozenset({"completed", "failed", "cancelled", "partially_failed"})
NOTICE_CODES: frozenset[str] = frozenset({"workload_queued", "workload_admitted", "workload_evicted"})
"""The codes of notices a runtime keeps current on a run's ``warning_message`` (where it waits in a queue);
a warning with any other code is the adapter's, and a notice never replaces it. A run that finishes drops
its notice: where it waited is no longer news."""

# Each job state has its own message code, so a dashboard can key diagnostics on it
# (EvalHub 1.0.2 used evaluation_job_updated for every state).
STATE_CODES: dict[str, str] = {
    "pending": "evaluation_job_created",
    "running": "evaluation_job_running",
    "completed": "evaluation_job_completed",
    "failed": "evaluation_job_failed",
    "partially_failed": "evaluation_job_partially_failed",
    "cancelled": "evaluation_job_cancelled",
}


@dataclass(frozen=True, slots=True)
class Message:
    message: str
    message_code: str
    message_origin: str = "server"

    def as_dict(self) -> dict[str, str]:
        return {
            "message": self.message,
            "message_code": self.message_code,
            "message_origin": self.message_origin,
        }


@dataclass(frozen=True, slots=True)
class BenchmarkRun:
    """The server's view of one benchmark of a job (one attempt at a time)."""

    index: int
    provider_id: str
    benchmark_id: str
    status: BenchmarkStatus = "pending"
    attempt: int = 1
    phase: str | None = None
    progress: float | None = None
    current_step: str | None = None
    total_steps: int | None = None
    completed_steps: int | None = None
    error_message: dict[str, Any] | None = None
    warning_message: dict[str, Any] | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_BENCHMARK


@dataclass(frozen=True, slots=True)
class Transition:
    run: BenchmarkRun
    changed: bool
    finished: bool  # this event made the run terminal


def apply_event(run: BenchmarkRun, event: BenchmarkStatusEvent, now: datetime) -> Transition:
    """The run after ``event``. A terminal run never changes; timestamps are stamped by the server
    unless the adapter supplied them; a terminal result carries metrics and artifacts."""
    if run.terminal:
        return Transition(run, changed=False, finished=False)
    status = event.status
    if status == "pending" and run.status != "pending":
        status = run.status  # an adapter cannot move a started run back to pending
    terminal = status in TERMINAL_BENCHMARK
    progress = run.progress
    if event.progress is not None:
        progress = max(progress or 0.0, event.progress)
    if event.total_steps and event.completed_steps is not None:
        progress = max(progress or 0.0, min(1.0, event.completed_steps / event.total_steps))
    if status == "completed":
        progress = 1.0
    started_at = run.started_at
    if started_at is None and status != "pending":
        started_at = event.started_at or now
    completed_at = (event.completed_at or now) if terminal else None
    error = event.error_message.model_dump(exclude_none=True) if event.error_message else run.error_message
    if error is not None and "message_origin" not in error:
        error["message_origin"] = "runtime"
    warning = (
        event.warning_message.model_dump(exclude_none=True) if event.warning_message else run.warning_message
    )
    if warning is not None and "message_origin" not in warning:
        warning["message_origin"] = "runtime"
    if terminal and event.warning_message is None and (warning or {}).get("message_code") in NOTICE_CODES:
        warning = None  # where it waited in a queue is no longer news once it finished
    if status == "failed" and error is None:
        error = Message(
            "The benchmark failed without an error message", "benchmark_failed", "runtime"
        ).as_dict()
    result = run.result
    if terminal:
        result = _result_of(event)
    new = replace(
        run,
        status=status,
        phase=event.phase or run.phase,
        progress=progress,
        current_step=event.current_step or run.current_step,
        total_steps=event.total_steps if event.total_steps is not None else run.total_steps,
        completed_steps=event.completed_steps if event.completed_steps is not None else run.completed_steps,
        error_message=error,
        warning_message=warning,
        started_at=started_at,
        completed_at=completed_at,
        result=result,
    )
    return Transition(new, changed=new != run, finished=terminal)


def _result_of(event: BenchmarkStatusEvent) -> dict[str, Any]:
    schema = {entry.name: entry.type for entry in event.metrics_schema}
    for name, value in event.metrics.items():
        if name not in schema:
            schema[name] = "numeric" if _is_number(value) else "categorical"
    result: dict[str, Any] = {
        "metrics": event.metrics,
        "metrics_schema": [{"name": n, "type": t} for n, t in schema.items()],
        "additional_info": event.additional_info,
        "artifacts": event.artifacts,
        "usage": event.usage,
    }
    for key in ("mlflow_run_id", "logs_path", "overall_score"):
        value = getattr(event, key)
        if value is not None:
            result[key] = value
    if event.job_meta:
        result["job_meta"] = event.job_meta
    return {k: v for k, v in result.items() if v not in ({}, [])}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fail_run(
    run: BenchmarkRun, message: str, code: str, now: datetime, origin: str = "runtime"
) -> Transition:
    """The run failed by the server's or runtime's own judgement (exit code, timeout, lost process)."""
    if run.terminal:
        return Transition(run, changed=False, finished=False)
    warning = run.warning_message
    new = replace(
        run,
        status="failed",
        error_message=Message(message, code, origin).as_dict(),
        warning_message=None if (warning or {}).get("message_code") in NOTICE_CODES else warning,
        started_at=run.started_at,
        completed_at=now,
        result={},
    )
    return Transition(new, changed=True, finished=True)


def cancel_run(run: BenchmarkRun, message: Message, now: datetime) -> Transition:
    if run.terminal:
        return Transition(run, changed=False, finished=False)
    new = replace(run, status="cancelled", error_message=message.as_dict(), completed_at=now)
    return Transition(new, changed=True, finished=True)


def reset_for_retry(run: BenchmarkRun) -> BenchmarkRun:
    """A failed or cancelled run, back to pending as its next attempt; completed runs stay as they are."""
    if run.status not in ("failed", "cancelled"):
        return run
    return BenchmarkRun(
        index=run.index, provider_id=run.provider_id, benchmark_id=run.benchmark_id, attempt=run.attempt + 1
    )


def derive_state(runs: list[BenchmarkRun], *, cancelled: bool = False) -> tuple[JobState, Message]:
    """The job's state from its runs. A user's cancel is final and wins over everything else."""
    if cancelled:
        return "cancelled", Message("Evaluation job cancelled", STATE_CODES["cancelled"])
    total = len(runs)
    counts = {
        s: sum(1 for r in runs if r.status == s)
        for s in ("pending", "running", "completed", "failed", "cancelled")
    }
    failures = "".join(
        f"\nBenchmark {r.benchmark_id} (index {r.index}) failed: {(r.error_message or {}).get('message', 'no message')}"
        for r in runs
        if r.status == "failed"
    )
    state: JobState
    if total == 0 or counts["pending"] == total:
        state, text = "pending", "Evaluation job is pending"
    elif counts["completed"] == total:
        state, text = "completed", "Evaluation job is completed"
    elif counts["cancelled"] == total:
        state, text = "cancelled", "Evaluation job is cancelled"
    elif counts["completed"] + counts["failed"] + counts["cancelled"] == total:
        if counts["completed"] == 0:
            state, text = "failed", "Evaluation job is failed." + failures
        else:
            state, text = "partially_failed", "Some of the benchmarks failed." + failures
    else:
        state = "running"
        done = counts["completed"] + counts["failed"] + counts["cancelled"]
        text = f"Evaluation job is running ({done} of {total} benchmarks finished)"
    return state, Message(text, STATE_CODES[state])


def job_progress(runs: list[BenchmarkRun]) -> float:
    """Mean progress over the runs, a finished run counting as 1."""
    if not runs:
        return 0.0
    return sum(1.0 if r.terminal else (r.progress or 0.0) for r in runs) / len(runs)


__all__ = [
    "NOTICE_CODES",
    "STATE_CODES",
    "TERMINAL_BENCHMARK",
    "TERMINAL_JOB",
    "BenchmarkRun",
    "Message",
    "Transition",
    "apply_event",
    "cancel_run",
    "derive_state",
    "fail_run",
    "job_progress",
    "reset_for_retry",
]
