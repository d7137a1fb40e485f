"""run_adapter reports phases and results, fails on an exception, cancels on SIGTERM, and runs groups."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from adapters.sdk import (
    EXIT_CANCELLED,
    AdapterSettings,
    DefaultCallbacks,
    EvaluationResult,
    FrameworkAdapter,
    JobCallbacks,
    JobPhase,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
    run_adapter,
)
from tests.support.recorders import EventRecorder

REPO = Path(__file__).resolve().parents[2]


def write_job(tmp_path: Path, callback_url: str, **extra: Any) -> Path:
    spec = {
        "id": "job-5",
        "provider_id": "prov",
        "benchmark_id": "qa",
        "benchmark_index": 0,
        "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
        "parameters": {"score": 0.8},
        "callback_url": callback_url,
        "primary_score": {"metric": "accuracy"},
        **extra,
    }
    path = tmp_path / "job-5" / "0" / "prov" / "qa" / "meta" / "job.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(spec))
    return path


def build(adapter_class: type[FrameworkAdapter], path: Path) -> FrameworkAdapter:
    return adapter_class(
        job_spec_path=path, settings=AdapterSettings.from_env({"ASSAY_CALLBACK_RETRY_SECONDS": "5"})
    )


def results_for(spec: JobSpec) -> JobResults:
    return JobResults(
        id=spec.id,
        benchmark_id=spec.benchmark_id,
        benchmark_index=spec.benchmark_index,
        model_name=spec.model.name,
        results=[
            EvaluationResult(metric_name="accuracy", metric_value=spec.parameters["score"], stderr=0.02)
        ],
        num_examples_evaluated=10,
    )


class PhasedAdapter(FrameworkAdapter):
    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> JobResults:
        for phase, progress in ((JobPhase.LOADING_DATA, 0.1), (JobPhase.RUNNING_EVALUATION, 0.5)):
            callbacks.report_status(JobStatusUpdate(status=JobStatus.RUNNING, phase=phase, progress=progress))
        if config.parameters.get("fail"):
            raise ValueError(f"dataset for {config.benchmark_id} has no rows")
        callbacks.report_status(JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.POST_PROCESSING))
        return results_for(config)


def statuses(recorder: EventRecorder) -> list[tuple[int, str, str | None]]:
    return [(e["benchmark_index"], e["status"], e.get("phase")) for e in recorder.events()]


def test_success_reports_phases_then_results_and_exits_0(recorder: EventRecorder, tmp_path: Path) -> None:
    assert run_adapter(build(PhasedAdapter, write_job(tmp_path, recorder.url))) == 0
    assert statuses(recorder) == [
        (0, "running", "initializing"),
        (0, "running", "loading_data"),
        (0, "running", "running_evaluation"),
        (0, "running", "post_processing"),
        (0, "completed", None),
    ]
    final = recorder.events()[-1]
    assert final["metrics"] == {"accuracy": 0.8, "accuracy_stderr": 0.02}
    assert final["overall_score"] == 0.8  # from primary_score.metric
    assert recorder.events()[2]["progress"] == 0.5


def test_an_exception_reports_failed_with_adapter_error_and_exits_1(
    recorder: EventRecorder, tmp_path: Path
) -> None:
    path = write_job(tmp_path, recorder.url, parameters={"fail": True})
    assert run_adapter(build(PhasedAdapter, path)) == 1
    assert statuses(recorder)[-1] == (0, "failed", None)
    assert recorder.events()[-1]["error_message"] == {
        "message": "dataset for qa has no rows",
        "message_code": "adapter_error",
        "message_origin": "adapter",
    }
    assert [e["status"] for e in recorder.events()].count("failed") == 1


def test_results_already_reported_by_the_adapter_are_not_sent_twice(
    recorder: EventRecorder, tmp_path: Path
) -> None:
    class ReportsItself(FrameworkAdapter):
        def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> JobResults:
            results = results_for(config)
            callbacks.report_results(results)  # the eval-hub-sdk habit
            return results

    assert run_adapter(build(ReportsItself, write_job(tmp_path, recorder.url))) == 0
    assert [e["status"] for e in recorder.events()] == ["running", "completed"]


def test_returning_without_results_fails_the_benchmark(recorder: EventRecorder, tmp_path: Path) -> None:
    class Forgetful(FrameworkAdapter):
        def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> list[JobResults]:
            return []

    assert run_adapter(build(Forgetful, write_job(tmp_path, recorder.url))) == 1
    assert recorder.events()[-1]["status"] == "failed"
    assert recorder.events()[-1]["error_message"]["message_code"] == "results_missing"


def test_undeliverable_results_exit_1_instead_of_0(recorder: EventRecorder, tmp_path: Path) -> None:
    # Four status events accepted, then the results and the failure report refused.
    recorder.plan(200, 200, 200, 200, 400, 400)
    assert run_adapter(build(PhasedAdapter, write_job(tmp_path, recorder.url))) == 1
    assert [r.answer for r in recorder.requests] == [200, 200, 200, 200, 400, 400]
    assert recorder.requests[-2].body["benchmark_status_event"]["status"] == "completed"
    assert (
        recorder.requests[-1].body["benchmark_status_event"]["error_message"]["message_code"]
        == "adapter_error"
    )


GROUP = [
    {
        "benchmark_id": "qa2",
        "benchmark_index": 1,
        "parameters": {"score": 0.3},
        "primary_score": {"metric": "accuracy"},
    },
    {"benchmark_id": "qa3", "benchmark_index": 2, "parameters": {"score": 0.6}, "num_examples": 2},
]


class GroupAdapter(FrameworkAdapter):
    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> list[JobResults]:
        assert isinstance(callbacks, DefaultCallbacks)
        returned = []
        for done, member in enumerate(config.members()):
            if member.parameters.get("fail"):
                raise RuntimeError(f"{member.benchmark_id} broke")
            callbacks.for_benchmark(member).report_status(
                JobStatusUpdate(
                    status=JobStatus.RUNNING,
                    phase=JobPhase.RUNNING_EVALUATION,
                    completed_steps=done,
                    total_steps=len(config.members()),
                )
            )
            if member.parameters.get("report_early"):
                callbacks.for_benchmark(member).report_results(results_for(member))
            else:
                returned.append(results_for(member))
        return returned


def test_a_group_reports_each_member_with_its_own_index(recorder: EventRecorder, tmp_path: Path) -> None:
    assert run_adapter(build(GroupAdapter, write_job(tmp_path, recorder.url, group=GROUP))) == 0
    completed = {e["benchmark_index"]: e for e in recorder.events() if e["status"] == "completed"}
    assert {i: (e["id"], e["metrics"]["accuracy"]) for i, e in completed.items()} == {
        0: ("qa", 0.8),
        1: ("qa2", 0.3),
        2: ("qa3", 0.6),
    }
    # Each member's own primary_score: qa3 has none, so no overall_score.
    assert [completed[i].get("overall_score") for i in range(3)] == [0.8, 0.3, None]
    starts = [(e["benchmark_index"], e["id"]) for e in recorder.events() if e.get("phase") == "initializing"]
    assert starts == [(0, "qa"), (1, "qa2"), (2, "qa3")]
    steps = [
        (e["benchmark_index"], e["completed_steps"], e["total_steps"])
        for e in recorder.events()
        if "total_steps" in e
    ]
    assert steps == [(0, 0, 3), (1, 1, 3), (2, 2, 3)]


def test_a_failing_member_fails_itself_and_the_rest_but_keeps_earlier_results(
    recorder: EventRecorder, tmp_path: Path
) -> None:
    group = [{**GROUP[0], "parameters": {"fail": True}}, GROUP[1]]
    path = write_job(tmp_path, recorder.url, parameters={"score": 0.8, "report_early": True}, group=group)
    assert run_adapter(build(GroupAdapter, path)) == 1
    terminal = {e["benchmark_index"]: e for e in recorder.events() if e["status"] in ("completed", "failed")}
    assert {i: e["status"] for i, e in terminal.items()} == {0: "completed", 1: "failed", 2: "failed"}
    assert terminal[1]["error_message"]["message"] == "qa2 broke"
    assert terminal[1]["id"] == "qa2" and terminal[2]["id"] == "qa3"


SLOW_ADAPTER = textwrap.dedent(
    """
    import threading
    from adapters.sdk import FrameworkAdapter, JobPhase, JobStatus, JobStatusUpdate, run_adapter

    class Slow(FrameworkAdapter):
        def run_benchmark_job(self, config, callbacks):
            callbacks.report_status(JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.RUNNING_EVALUATION))
            try:
                threading.Event().wait()  # until a signal arrives
            except Exception:
                pass  # an adapter's broad except must not swallow the stop
            raise AssertionError("unreachable")

    raise SystemExit(run_adapter(Slow()))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_reports_cancelled_and_exits_143(
    recorder: EventRecorder, tmp_path: Path, signum: int
) -> None:
    script = tmp_path / "slow_adapter.py"
    script.write_text(SLOW_ADAPTER)
    path = write_job(tmp_path, recorder.url, group=GROUP[:1])
    env = {**os.environ, "EVALHUB_JOB_SPEC_PATH": str(path), "PYTHONPATH": str(REPO), "EVALHUB_MODE": "local"}
    process = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        recorder.wait_for(lambda events: any(e.get("phase") == "running_evaluation" for e in events))
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_CANCELLED, stderr
    cancelled = [e for e in recorder.events() if e["status"] == "cancelled"]
    assert [(e["benchmark_index"], e["id"]) for e in cancelled] == [(0, "qa"), (1, "qa2")]
    assert cancelled[0]["error_message"]["message_code"] == "adapter_cancelled"
    assert signal.Signals(signum).name in cancelled[0]["error_message"]["message"]
