"""The benchmark-run state machine and the job state derived from it (property-based).

Events are delivered at least once and in any order, so the rules under test are the ones a user
sees: a finished benchmark stays finished, a replayed event changes nothing, progress never goes
backwards, the server stamps the timestamps, and the job state agrees with eval-hub-sdk 1.0.6.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from evalhub.models.api import EvaluationJob, JobStatus
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.api.jobs import BenchmarkStatusEvent, JobState, MessageInfo, MessageOrigin, Phase
from assay.core.states import (
    STATE_CODES,
    TERMINAL_BENCHMARK,
    TERMINAL_JOB,
    BenchmarkRun,
    Message,
    apply_event,
    cancel_run,
    derive_state,
    fail_run,
    job_progress,
    reset_for_retry,
)

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
NON_TERMINAL = ("pending", "running")
ORIGINS = set(get_args(MessageOrigin))
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# Cheap strategies keep each property test well under a second.
aware_datetimes = st.builds(lambda s: T0 + timedelta(seconds=s), st.integers(-(10**7), 10**7))
message_infos = st.builds(
    MessageInfo,
    message=st.sampled_from(["CUDA out of memory", "dataset not found", "slow endpoint"]),
    message_code=st.sampled_from(["adapter_error", "oom", "low_disk"]),
    message_origin=st.none() | st.sampled_from(sorted(ORIGINS)),
)
metric_values = st.one_of(st.floats(-10, 10), st.integers(-5, 5), st.sampled_from(["good", "bad"]))
maybe_phase = st.none() | st.sampled_from(get_args(Phase))
maybe_progress = st.none() | st.floats(0, 1)
maybe_step = st.none() | st.sampled_from(["load", "eval", "save"])
maybe_total = st.none() | st.integers(0, 40)
maybe_done = st.none() | st.integers(0, 50)
some_metrics = st.dictionaries(st.sampled_from(["acc", "f1", "label"]), metric_values, max_size=3)
maybe_message = st.none() | message_infos
maybe_time = st.none() | aware_datetimes


any_event = st.builds(
    BenchmarkStatusEvent,
    provider_id=st.just("lm_eval"),
    id=st.just("arc_easy"),
    status=st.sampled_from(STATUSES),
    phase=maybe_phase,
    progress=maybe_progress,
    current_step=maybe_step,
    total_steps=maybe_total,
    completed_steps=maybe_done,
    metrics=some_metrics,
    error_message=maybe_message,
    warning_message=maybe_message,
    started_at=maybe_time,
    completed_at=maybe_time,
)
gaps = st.integers(0, 3600)


@st.composite
def histories(draw: st.DrawFn, min_size: int = 1) -> list[tuple[BenchmarkStatusEvent, datetime]]:
    """Events with the server's clock at each arrival (non-decreasing)."""
    steps = draw(st.lists(st.tuples(any_event, gaps), min_size=min_size, max_size=6))
    history, now = [], T0
    for ev, gap in steps:
        now += timedelta(seconds=gap)
        history.append((ev, now))
    return history


def fresh_run(attempt: int = 1) -> BenchmarkRun:
    return BenchmarkRun(index=0, provider_id="lm_eval", benchmark_id="arc_easy", attempt=attempt)


def replay(history: list[tuple[BenchmarkStatusEvent, datetime]], run: BenchmarkRun | None = None) -> list:
    """Every run along ``history``, starting with the initial one."""
    runs = [run or fresh_run()]
    for event, now in history:
        runs.append(apply_event(runs[-1], event, now).run)
    return runs


def event(status: str, **fields: Any) -> BenchmarkStatusEvent:
    return BenchmarkStatusEvent(provider_id="lm_eval", id="arc_easy", status=status, **fields)


def run_in(status: str, index: int = 0, **fields: Any) -> BenchmarkRun:
    return BenchmarkRun(index=index, provider_id="lm_eval", benchmark_id=f"b{index}", status=status, **fields)


# --- single benchmark runs --------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(histories(), any_event, aware_datetimes)
def test_a_finished_run_never_changes_whatever_arrives_later(history, late, late_now) -> None:
    runs = replay([*history, (late, late_now)])
    first_terminal = next((i for i, r in enumerate(runs) if r.terminal), None)
    if first_terminal is None:
        return
    final = runs[first_terminal]
    assert all(r == final for r in runs[first_terminal:])
    for transition in (
        apply_event(final, late, late_now),
        fail_run(final, "lost", "runtime_lost", late_now),
        cancel_run(final, Message("stop", "evaluation_job_cancelled"), late_now),
    ):
        assert transition.run == final
        assert not transition.changed and not transition.finished


@settings(max_examples=80, deadline=None)
@given(histories(min_size=0), any_event, st.integers(0, 10**6))
def test_replaying_an_event_is_a_no_op(history, ev, later_seconds) -> None:
    run = replay(history)[-1]
    now = T0 + timedelta(days=1)
    once = apply_event(run, ev, now)
    twice = apply_event(once.run, ev, now + timedelta(seconds=later_seconds))
    assert twice.run == once.run
    assert not twice.changed
    assert not twice.finished


@settings(max_examples=80, deadline=None)
@given(histories())
def test_progress_never_goes_backwards_and_is_one_when_completed(history) -> None:
    runs = replay(history)
    progress = [r.progress or 0.0 for r in runs]
    assert all(0.0 <= p <= 1.0 for p in progress)
    assert progress == sorted(progress)
    for r in runs:
        if r.status == "completed":
            assert r.progress == 1.0


@settings(max_examples=80, deadline=None)
@given(histories())
def test_started_at_is_stamped_on_the_first_non_pending_event_and_then_kept(history) -> None:
    runs = replay(history)
    first = next((i for i, (ev, _) in enumerate(history) if ev.status != "pending"), None)
    if first is None:
        assert all(r.started_at is None and r.status == "pending" for r in runs)
        return
    assert all(r.started_at is None for r in runs[: first + 1])
    ev, now = history[first]
    stamped = ev.started_at or now
    assert all(r.started_at == stamped for r in runs[first + 1 :])
    assert runs[first + 1].started_at.tzinfo is not None


@settings(max_examples=80, deadline=None)
@given(histories())
def test_completed_at_is_set_exactly_when_the_run_is_finished(history) -> None:
    runs = replay(history)
    for before, (ev, now), after in zip(runs[:-1], history, runs[1:], strict=True):
        assert (after.completed_at is not None) == after.terminal
        if after.terminal and not before.terminal:
            assert after.completed_at == (ev.completed_at or now)


@settings(max_examples=80, deadline=None)
@given(histories())
def test_finished_is_reported_once_on_the_event_that_ends_the_run(history) -> None:
    run = fresh_run()
    finished = []
    for ev, now in history:
        transition = apply_event(run, ev, now)
        finished.append(transition.finished)
        assert transition.finished == (not run.terminal and transition.run.terminal)
        run = transition.run
    assert sum(finished) == (1 if run.terminal else 0)


@settings(max_examples=80, deadline=None)
@given(histories())
def test_a_failed_run_always_carries_an_error_message_with_its_origin(history) -> None:
    for r in replay(history):
        if r.status == "failed":
            assert r.error_message is not None
            assert r.error_message["message"] and r.error_message["message_code"]
            assert r.error_message["message_origin"] in ORIGINS


def test_a_failed_event_without_an_error_gets_one_from_the_runtime() -> None:
    run = apply_event(fresh_run(), event("failed"), T0).run
    assert run.error_message == {
        "message": "The benchmark failed without an error message",
        "message_code": "benchmark_failed",
        "message_origin": "runtime",
    }


def test_the_adapters_own_message_origin_is_kept() -> None:
    error = MessageInfo(message="CUDA OOM", message_code="oom", message_origin="adapter")
    run = apply_event(fresh_run(), event("failed", error_message=error), T0).run
    assert run.error_message == {"message": "CUDA OOM", "message_code": "oom", "message_origin": "adapter"}


@settings(max_examples=60, deadline=None)
@given(histories(), st.sampled_from(sorted(ORIGINS)), aware_datetimes)
def test_fail_run_finishes_any_unfinished_run_with_a_message(history, origin, now) -> None:
    run = replay(history)[-1]
    transition = fail_run(run, "exited with code 3", "adapter_exit_nonzero", now, origin)
    if run.terminal:
        assert transition.run == run and not transition.changed
        return
    failed = transition.run
    assert transition.finished and transition.changed
    assert failed.status == "failed" and failed.completed_at == now
    assert failed.started_at == run.started_at
    assert failed.error_message == {
        "message": "exited with code 3",
        "message_code": "adapter_exit_nonzero",
        "message_origin": origin,
    }


@settings(max_examples=60, deadline=None)
@given(histories(), aware_datetimes)
def test_cancel_run_finishes_any_unfinished_run(history, now) -> None:
    run = replay(history)[-1]
    message = Message("Evaluation job cancelled by the user", "evaluation_job_cancelled")
    transition = cancel_run(run, message, now)
    if run.terminal:
        assert transition.run == run and not transition.changed
        return
    assert transition.finished
    assert transition.run.status == "cancelled"
    assert transition.run.completed_at == now
    assert transition.run.error_message == message.as_dict()


@pytest.mark.parametrize("before", NON_TERMINAL)
def test_cancelled_from_an_adapter_is_accepted_as_final(before: str) -> None:
    """EvalHub 1.0.2 answered 400 to a cancelled event (docs/compatibility.md)."""
    run = fresh_run() if before == "pending" else apply_event(fresh_run(), event("running"), T0).run
    transition = apply_event(run, event("cancelled"), T0 + timedelta(minutes=1))
    assert transition.finished
    assert transition.run.status == "cancelled"
    assert transition.run.completed_at == T0 + timedelta(minutes=1)
    assert apply_event(transition.run, event("running"), T0 + timedelta(minutes=2)).run == transition.run
    assert derive_state([transition.run])[0] == "cancelled"


def test_a_started_run_cannot_be_moved_back_to_pending() -> None:
    running = apply_event(fresh_run(), event("running", progress=0.4), T0).run
    after = apply_event(running, event("pending"), T0 + timedelta(seconds=5)).run
    assert after.status == "running"
    assert after.progress == 0.4
    assert after.started_at == T0


def test_progress_is_derived_from_step_counts() -> None:
    run = apply_event(fresh_run(), event("running", total_steps=8, completed_steps=2), T0).run
    assert run.progress == 0.25
    assert (run.total_steps, run.completed_steps) == (8, 2)
    run = apply_event(run, event("running", progress=0.1), T0).run
    assert run.progress == 0.25


def test_a_completed_event_carries_its_metrics_into_the_result() -> None:
    done = apply_event(
        fresh_run(),
        event("completed", metrics={"acc": 0.8, "label": "good"}, overall_score=0.8, mlflow_run_id="r1"),
        T0,
    ).run
    assert done.result["metrics"] == {"acc": 0.8, "label": "good"}
    assert done.result["metrics_schema"] == [
        {"name": "acc", "type": "numeric"},
        {"name": "label", "type": "categorical"},
    ]
    assert done.result["overall_score"] == 0.8
    assert done.result["mlflow_run_id"] == "r1"


# --- retries ----------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(histories(), st.integers(1, 5))
def test_reset_for_retry_starts_a_clean_next_attempt_only_for_failed_or_cancelled(history, attempt) -> None:
    run = replay(history, fresh_run(attempt))[-1]
    again = reset_for_retry(run)
    if run.status in ("failed", "cancelled"):
        assert again == fresh_run(attempt + 1)
        assert again.status == "pending"
        assert again.progress is None and again.error_message is None and again.result == {}
        assert again.started_at is None and again.completed_at is None
    else:
        assert again is run


# --- job state --------------------------------------------------------------------------------------


def expected_job_state(statuses: Sequence[str]) -> str:
    """The rule, spelled out independently of the code under test."""
    present = set(statuses)
    if present <= {"pending"}:
        return "pending"
    if not present <= TERMINAL_BENCHMARK:
        return "running"
    if present == {"completed"}:
        return "completed"
    if present == {"failed"}:
        return "failed"
    if present == {"cancelled"}:
        return "cancelled"
    return "partially_failed" if "completed" in present else "failed"


@pytest.mark.parametrize(
    ("statuses", "state"),
    [
        (["completed", "completed"], "completed"),
        (["failed", "failed"], "failed"),
        (["cancelled", "cancelled"], "cancelled"),
        (["completed", "failed"], "partially_failed"),
        (["completed", "cancelled"], "partially_failed"),
        (["completed", "failed", "cancelled"], "partially_failed"),
        (["failed", "cancelled"], "failed"),
        (["pending", "completed"], "running"),
        (["running", "pending"], "running"),
        (["pending", "failed"], "running"),
        (["pending", "pending"], "pending"),
        ([], "pending"),
    ],
)
def test_job_state_examples(statuses: list[str], state: str) -> None:
    derived, message = derive_state([run_in(s, i) for i, s in enumerate(statuses)])
    assert derived == state
    assert message.message_code == STATE_CODES[state]


@settings(max_examples=120, deadline=None)
@given(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=8))
def test_job_state_follows_the_rule_for_any_mix(statuses: list[str]) -> None:
    runs = [run_in(s, i) for i, s in enumerate(statuses)]
    state, message = derive_state(runs)
    assert state == expected_job_state(statuses)
    assert message.message_code == STATE_CODES[state]
    assert message.message_origin == "server"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(STATUSES), min_size=0, max_size=6))
def test_a_users_cancel_wins_over_every_benchmark_state(statuses: list[str]) -> None:
    state, message = derive_state([run_in(s, i) for i, s in enumerate(statuses)], cancelled=True)
    assert state == "cancelled"
    assert message.message_code == "evaluation_job_cancelled"


def test_a_failed_job_message_names_each_failed_benchmark_and_its_error() -> None:
    runs = [
        run_in("completed", 0),
        run_in("failed", 1, error_message={"message": "CUDA OOM", "message_code": "oom"}),
        run_in("failed", 2, error_message={"message": "exit 3", "message_code": "adapter_exit_nonzero"}),
    ]
    state, message = derive_state(runs)
    assert state == "partially_failed"
    assert "Benchmark b1 (index 1) failed: CUDA OOM" in message.message
    assert "Benchmark b2 (index 2) failed: exit 3" in message.message


def test_every_job_state_has_its_own_message_code() -> None:
    """EvalHub 1.0.2 used evaluation_job_updated for every state (docs/compatibility.md)."""
    assert set(STATE_CODES) == set(get_args(JobState))
    assert len(set(STATE_CODES.values())) == len(STATE_CODES)
    assert "evaluation_job_updated" not in STATE_CODES.values()
    assert {s for s in STATE_CODES if s in TERMINAL_JOB} == {
        "completed",
        "failed",
        "cancelled",
        "partially_failed",
    }


def sdk_effective_state(top: str, statuses: Sequence[str]) -> str:
    job = EvaluationJob.model_validate(
        {
            "resource": {"id": "j1", "created_at": T0.isoformat()},
            "name": "job",
            "model": {"url": "http://model", "name": "m"},
            "status": {
                "state": top,
                "benchmarks": [
                    {"id": f"b{i}", "provider_id": "lm_eval", "benchmark_index": i, "status": s}
                    for i, s in enumerate(statuses)
                ],
            },
        }
    )
    state = job.effective_state
    return state.value if isinstance(state, JobStatus) else str(state)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(sorted(TERMINAL_BENCHMARK)), min_size=1, max_size=8))
def test_job_state_agrees_with_the_sdks_own_inference_once_every_run_is_finished(statuses) -> None:
    """eval-hub-sdk 1.0.6 infers a state from the benchmark entries while the job's state is not terminal;
    Assay's derivation gives the same answer for every terminal mix (failed + cancelled -> failed in both)."""
    assay_state, _ = derive_state([run_in(s, i) for i, s in enumerate(statuses)])
    assert sdk_effective_state("running", statuses) == assay_state
    assert sdk_effective_state("pending", statuses) == assay_state


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=8), st.booleans())
def test_the_sdk_reads_assays_job_state_unchanged(statuses, cancelled) -> None:
    """Assay lists every benchmark (pending ones too), so ``evalhub eval run --wait`` never sees a job as
    finished early (docs/compatibility.md). Intentional difference: a user's cancel makes the job ``cancelled`` even
    when some benchmarks completed, where the SDK's own inference would have said ``partially_failed``;
    the SDK honours the terminal top-level state, so it reports ``cancelled`` too."""
    assay_state, _ = derive_state([run_in(s, i) for i, s in enumerate(statuses)], cancelled=cancelled)
    assert sdk_effective_state(assay_state, statuses) == assay_state


# --- job progress -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(histories(), min_size=1, max_size=4))
def test_job_progress_is_the_mean_with_finished_runs_counting_as_one(all_histories) -> None:
    runs = [replay(h)[-1] for h in all_histories]
    progress = job_progress(runs)
    assert 0.0 <= progress <= 1.0
    expected = sum(1.0 if r.terminal else (r.progress or 0.0) for r in runs) / len(runs)
    assert progress == pytest.approx(expected, rel=1e-12)
    if all(r.terminal for r in runs):
        assert progress == 1.0


def test_job_progress_of_no_runs_is_zero() -> None:
    assert job_progress([]) == 0.0


def test_job_progress_counts_a_failed_run_as_done() -> None:
    half = apply_event(fresh_run(), event("running", progress=0.5), T0).run
    failed = fail_run(fresh_run(), "lost", "runtime_lost", T0).run
    assert job_progress([half, failed]) == 0.75
