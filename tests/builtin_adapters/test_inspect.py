"""The Inspect AI adapter.

Through the hub, against the real local model (Gemma 3 270M on llama.cpp) behind the sidecar: each shipped task
completes with metrics and stderr, progress and its ``.eval`` log reachable from the job; an identical re-run is
answered from the sidecar's cache; a cancel mid-run stops Inspect cleanly (its log says ``cancelled``).

Run for real outside the hub (its own environment, a recording callback server) on task files that need no model:
a scorer failure tolerated by ``fail_on_error`` is counted and warned about, a solver failure fails the benchmark
with the sample's error, an unknown task fails naming it.

The pure parts (parameters, task lookup, metric naming, progress, the tiktoken cache) are checked without Inspect.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.envs import ensure_env
from adapters.inspect.config import TASKS_DIR, ParameterError, plan_inspect, resolve_task
from adapters.inspect.progress import ProgressReporter, SampleCounter
from adapters.inspect.results import metric_results
from adapters.inspect.runner import ENCODING_FILES, ensure_tiktoken_cache
from adapters.sdk import (
    JobCallbacks,
    JobResults,
    JobSpec,
    JobStatusUpdate,
    OCIArtifactResult,
    OCIArtifactSpec,
)
from tests.builtin_adapters.adapter_run import job_spec
from tests.builtin_adapters.adapter_run import run_adapter as run
from tests.conftest import REPO, LiveServer
from tests.lifecycle.test_local_lifecycle import finished, submit
from tests.support.recorders import EventRecorder
from tests.support.waiting import wait_for

PROVIDER = "inspect_ai"
# Inspect's start-up alone is tens of seconds on 2 busy cores; the model answers a few tokens a second there.
RUN_TIMEOUT = 600.0
NO_MODEL = ("http://127.0.0.1:9/v1", "no-model")


def header(log_file: Path) -> dict[str, Any]:
    """The header of an Inspect ``.eval`` log (status, eval spec, results), read by Inspect itself in the adapter's
    environment (the archive's members are zstd-compressed, which this Python's zipfile cannot read)."""
    script = (
        "import sys; from inspect_ai.log import read_eval_log; "
        "print(read_eval_log(sys.argv[1], header_only=True).model_dump_json(exclude={'samples'}))"
    )
    done = subprocess.run(
        [str(ensure_env("inspect")), "-c", script, str(log_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------------------- through the hub, real model


@pytest.fixture()
def hub(start_hub: Callable[..., LiveServer]) -> Iterator[tuple[httpx.Client, LiveServer]]:
    """A hub with the shipped catalogue; a stopped adapter gets a minute to wind down (Inspect writes its
    cancelled log first), since the shared test machine can be slow."""
    server = start_hub(config_dir=REPO / "config", stop_grace_seconds=60.0)
    with server.client(timeout=30) as client:
        yield client, server


def _body(model_server: Any, *benchmarks: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "inspect",
        "model": {"url": model_server.base_url, "name": model_server.model_name},
        "benchmarks": list(benchmarks),
    }


def _results(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["id"]: b for b in job["results"]["benchmarks"]}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_each_shipped_task_runs_through_the_hub_with_metrics_stderr_progress_and_its_log(
    hub: tuple[httpx.Client, LiveServer], model_server: Any
) -> None:
    client, server = hub
    examples = {"assay_qa": 2, "assay_graded": 1, "assay_tools": 1}
    body = _body(
        model_server,
        *(
            {"id": task, "provider_id": PROVIDER, "parameters": {"num_examples": n}}
            for task, n in examples.items()
        ),
    )
    job = finished(client, submit(client, body)["resource"]["id"], timeout=1500)
    states = {b["id"]: (b["status"], b.get("error_message")) for b in job["status"]["benchmarks"]}
    assert job["status"]["state"] == "completed", states
    jobs_dir = server.settings.local_jobs_dir.resolve()  # type: ignore[attr-defined]
    progress = {b["id"]: b for b in job["status"]["benchmarks"]}
    for task, result in _results(job).items():
        metrics = result["metrics"]
        assert 0.0 <= metrics["accuracy"] <= 1.0, (task, metrics)
        assert metrics["accuracy_stderr"] >= 0.0, (task, metrics)
        assert metrics["samples_errored"] == 0, (task, metrics)
        assert result["test"]["evaluated"] and result["test"]["primary_score"] == metrics["accuracy"]
        # Every model call went through the sidecar, which counted it (the graded task's grader too).
        assert result["usage"]["requests"] >= examples[task], (task, result["usage"])
        # Progress was reported in samples: all of them done, out of the samples asked for.
        entry = progress[task]
        assert entry["completed_steps"] == entry["total_steps"] == examples[task], entry
        # The .eval log is an adapter result file in the job's own run directory (so exports carry it) and a
        # finished Inspect log of the samples asked for.
        log_file = Path(result["artifacts"]["inspect_log"])
        assert log_file.suffix == ".eval" and log_file.resolve().is_relative_to(jobs_dir), log_file
        logged = header(log_file)
        assert logged["status"] == "success"
        assert logged["results"]["total_samples"] == examples[task]
        assert logged["eval"]["model"] == f"openai-api/assay/{model_server.model_name}"
    graded = _results(job)["assay_graded"]
    assert graded["usage"]["requests"] >= 2  # the answer, then the same model grading it


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_an_identical_rerun_is_answered_from_the_sidecar_cache(
    hub: tuple[httpx.Client, LiveServer], model_server: Any
) -> None:
    client, _ = hub
    body = _body(model_server, {"id": "assay_qa", "provider_id": PROVIDER, "parameters": {"num_examples": 1}})
    first = finished(client, submit(client, body)["resource"]["id"], timeout=600)
    second = finished(client, submit(client, body)["resource"]["id"], timeout=600)
    assert first["status"]["state"] == second["status"]["state"] == "completed"
    one, two = _results(first)["assay_qa"], _results(second)["assay_qa"]
    assert one["usage"]["requests"] == two["usage"]["requests"] > 0
    assert one["usage"]["cache_hits"] == 0
    assert two["usage"]["cache_hits"] == two["usage"]["requests"]  # the model was not asked again
    assert one["metrics"] == two["metrics"]
    assert one["artifacts"]["inspect_log"] != two["artifacts"]["inspect_log"]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_cancel_mid_run_stops_inspect_cleanly(
    hub: tuple[httpx.Client, LiveServer], model_server: Any
) -> None:
    client, server = hub
    body = _body(
        model_server,
        {"id": "assay_graded", "provider_id": PROVIDER, "parameters": {"num_examples": 12, "epochs": 2}},
    )
    job_id = submit(client, body)["resource"]["id"]

    def evaluating() -> bool:
        entry = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()["status"]["benchmarks"][0]
        assert entry["status"] in ("pending", "running"), entry
        return bool(entry.get("total_steps"))  # Inspect has started the task and planned its samples

    wait_for(evaluating, timeout=600, interval=0.5)
    assert client.post(f"/api/v1/evaluations/jobs/{job_id}/cancel").status_code == 204
    job = finished(client, job_id, timeout=120)
    assert job["status"]["state"] == "cancelled"
    assert job["status"]["benchmarks"][0]["status"] == "cancelled"

    # The adapter cancelled Inspect on SIGTERM, then the SDK reported the benchmark: Inspect had returned by then.
    seen = [""]

    def wound_down() -> bool:
        seen[0] = client.get(f"/api/v1/evaluations/jobs/{job_id}/benchmarks/0/logs").text
        return "reporting the unfinished benchmarks as cancelled" in seen[0]

    try:
        wait_for(wound_down, timeout=120, interval=0.5)
    except AssertionError:
        processes = subprocess.run(["ps", "-eo", "pid,pgid,stat,args"], capture_output=True, text=True).stdout
        alive = "\n".join(line for line in processes.splitlines() if "adapters.inspect" in line)
        raise AssertionError(
            f"the adapter did not wind down; its processes:\n{alive}\nits log ends:\n{seen[0][-6000:]}"
        ) from None
    text = seen[0]
    assert "SIGTERM: cancelling the Inspect run" in text
    # Inspect stopped its samples and wrote its log as cancelled: the run was stopped, not killed.
    jobs_dir = server.settings.local_jobs_dir  # type: ignore[attr-defined]
    (log_file,) = (jobs_dir / job_id).glob("**/inspect-logs/*.eval")
    logged = header(log_file)
    assert logged["status"] == "cancelled"
    assert logged["results"] is None or logged["results"]["completed_samples"] < 24


# ---------------------------------------------------------------------------- the adapter alone, no model


FAILING_TASKS = """
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput
from inspect_ai.scorer import CORRECT, Score, Target, accuracy, scorer, stderr
from inspect_ai.solver import Generate, TaskState, solver


@solver
def answer_without_a_model(fail: str = ""):
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if state.sample_id == fail:
            raise ValueError(f"solver failed on purpose for {state.sample_id}")
        state.output = ModelOutput.from_content("none", "42")
        return state
    return solve


@scorer(metrics=[accuracy(), stderr()])
def picky(fail: str = "bad"):
    async def score(state: TaskState, target: Target) -> Score:
        if state.sample_id == fail:
            raise RuntimeError("scorer failed on purpose")
        return Score(value=CORRECT, answer=state.output.completion)
    return score


def _samples():
    return [Sample(id=i, input="What is 6 times 7?", target="42") for i in ("good", "bad", "fine")]


@task
def scorer_trouble():
    return Task(dataset=_samples(), solver=answer_without_a_model(), scorer=picky())


@task
def solver_trouble():
    return Task(dataset=_samples(), solver=answer_without_a_model(fail="fine"), scorer=picky(fail=""))
"""


def _run_alone(
    tmp_path: Path, recorder: EventRecorder, **parameters: Any
) -> subprocess.CompletedProcess[str]:
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir(exist_ok=True)
    (tasks_dir / "trouble.py").write_text(FAILING_TASKS)
    job = job_spec(
        PROVIDER,
        recorder.url,
        NO_MODEL,
        benchmark_id="trouble",
        primary_score={"metric": "accuracy"},
        parameters={"tasks_dir": str(tasks_dir), **parameters},
    )
    run_dir = tmp_path / "run"
    return run("inspect", run_dir, job, env={"HF_HUB_OFFLINE": "1"}, timeout=RUN_TIMEOUT)


@pytest.mark.slow
def test_a_tolerated_scorer_failure_is_counted_and_warned_about(
    tmp_path: Path, recorder: EventRecorder
) -> None:
    done = _run_alone(tmp_path, recorder, task="trouble.py@scorer_trouble", fail_on_error=False)
    assert done.returncode == 0, done.stderr[-4000:]
    events = recorder.events()
    warnings = [e["warning_message"] for e in events if "warning_message" in e]
    assert [w["message_code"] for w in warnings] == ["sample_errors"], events
    assert "1 of 3 samples" in warnings[0]["message"] and "scorer failed on purpose" in warnings[0]["message"]
    final = events[-1]
    assert final["status"] == "completed"
    assert final["metrics"]["samples_errored"] == 1
    assert final["metrics"]["accuracy"] == 1.0 and final["metrics"]["accuracy_stderr"] == 0.0
    steps = [e for e in events if e.get("total_steps")]
    assert steps[-1]["completed_steps"] == steps[-1]["total_steps"] == 3
    log_file = Path(final["artifacts"]["inspect_log"])
    assert log_file.parent == tmp_path / "run" / "results" / "inspect-logs"
    assert header(log_file)["status"] == "success"


@pytest.mark.slow
def test_a_failing_sample_fails_the_benchmark_with_its_error(tmp_path: Path, recorder: EventRecorder) -> None:
    done = _run_alone(tmp_path, recorder, task="trouble.py@solver_trouble")
    assert done.returncode != 0
    final = recorder.events()[-1]
    assert final["status"] == "failed"
    assert final["error_message"]["message_code"] == "sample_error", final
    assert "solver failed on purpose for fine" in final["error_message"]["message"]
    assert [e["status"] for e in recorder.events()].count("failed") == 1


@pytest.mark.slow
def test_an_unknown_task_fails_naming_it(tmp_path: Path, recorder: EventRecorder) -> None:
    done = _run_alone(tmp_path, recorder, task="no_such_inspect_task")
    assert done.returncode != 0
    final = recorder.events()[-1]
    assert final["status"] == "failed"
    assert final["error_message"]["message_code"] == "task_load_failed", final
    assert "no_such_inspect_task" in final["error_message"]["message"]


# ---------------------------------------------------------------------------- pure parts, no Inspect


def _spec(model: tuple[str, str] = ("http://h:8/v1", "m"), **fields: Any) -> JobSpec:
    return JobSpec.model_validate(job_spec(PROVIDER, "http://cb", model, **fields))


def test_parameters_map_to_one_inspect_run() -> None:
    plan = plan_inspect(
        _spec(
            benchmark_id="assay_qa",
            num_examples=5,
            primary_score={"metric": "accuracy"},
            parameters={"epochs": 3, "epochs_reducer": "max", "task_args": {"k": 1}, "max_tokens": 16},
        )
    )
    assert plan.task == f"{TASKS_DIR / 'assay_qa.py'}@assay_qa"
    assert (plan.limit, plan.epochs, plan.epochs_reducer, plan.max_tokens) == (5, 3, ["max"], 16)
    assert plan.task_args == {"k": 1} and plan.primary_metric == "accuracy"
    assert plan.model == "openai-api/assay/m" and plan.base_url == "http://h:8/v1"
    # Inspect's retries are off unless asked for: the sidecar retries, and the two must not multiply.
    assert plan.max_retries == 0 and not plan.emulate_tools
    assert plan_inspect(_spec(benchmark_id="assay_tools")).emulate_tools is True
    assert (
        plan_inspect(_spec(benchmark_id="assay_tools", parameters={"emulate_tools": False})).emulate_tools
        is False
    )
    assert plan_inspect(_spec(benchmark_id="gsm8k")).task == "inspect_evals/gsm8k"


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ParameterError, match=r"benchmark 'assay_qa': parameters\.epoch"):
        plan_inspect(_spec(benchmark_id="assay_qa", parameters={"epoch": 2}))
    with pytest.raises(ParameterError, match=r"parameters\.epochs"):
        plan_inspect(_spec(benchmark_id="assay_qa", parameters={"epochs": 0}))
    with pytest.raises(ParameterError, match="relative task file"):
        plan_inspect(_spec(benchmark_id="x", parameters={"task": "mine.py@t"}))
    with pytest.raises(ParameterError, match="is not a directory"):
        plan_inspect(_spec(benchmark_id="x", parameters={"tasks_dir": "/no/such/dir"}))
    with pytest.raises(ParameterError, match="not an http"):
        plan_inspect(_spec(benchmark_id="assay_qa", model=("ftp://h", "m")))


def test_tasks_are_found_as_shipped_files_registry_names_or_files(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("")
    assert resolve_task("mine.py@t", str(tmp_path)) == (f"{(tmp_path / 'mine.py').resolve()}@t", None)
    assert resolve_task(str(tmp_path / "mine.py"), None)[0] == str((tmp_path / "mine.py").resolve())
    assert resolve_task("inspect_evals/mmlu_5_shot", None) == ("inspect_evals/mmlu_5_shot", None)
    with pytest.raises(ParameterError, match="does not exist"):
        resolve_task("other.py", str(tmp_path))
    for shipped in ("assay_qa", "assay_graded", "assay_tools"):
        assert (TASKS_DIR / f"{shipped}.py").is_file()


def test_every_scorer_metric_is_reported_with_stderr() -> None:
    results = {
        "scores": [
            {
                "name": "includes",
                "scorer": "includes",
                "scored_samples": 8,
                "metrics": {"accuracy": {"value": 0.25}, "stderr": {"value": 0.15}},
            },
            {
                "name": "model_graded_qa",
                "scorer": "model_graded_qa",
                "scored_samples": 8,
                "metrics": {
                    "mean": {"value": 0.5},
                    "stderr": {"value": 0.2},
                    "std": {"value": 0.4},
                    "by_topic": {"value": {"math": 1.0, "art": 0.0}},
                },
            },
            {
                "name": "lonely",
                "scorer": "lonely",
                "metrics": {"stderr": {"value": 0.1}, "odd": {"value": None}},
            },
        ]
    }
    reported = {r.metric_name: (r.metric_value, r.stderr) for r in metric_results(results, samples_errored=2)}
    assert reported == {
        "accuracy": (0.25, 0.15),
        "model_graded_qa/mean": (0.5, 0.2),
        "model_graded_qa/std": (0.4, None),
        "model_graded_qa/by_topic/math": (1.0, None),
        "model_graded_qa/by_topic/art": (0.0, None),
        "lonely/stderr": (0.1, None),
        "samples_errored": (2, None),
    }
    reducers = {
        "scores": [
            {"name": "match", "reducer": "mean", "metrics": {"accuracy": {"value": 0.5}}},
            {"name": "match", "reducer": "max", "metrics": {"accuracy": {"value": 1.0}}},
        ]
    }
    assert [r.metric_name for r in metric_results(reducers)] == [
        "accuracy",
        "match:max/accuracy",
        "samples_errored",
    ]


class _Recording(JobCallbacks):
    def __init__(self) -> None:
        self.updates: list[JobStatusUpdate] = []

    def report_status(self, update: JobStatusUpdate) -> None:
        self.updates.append(update)

    def report_results(self, results: JobResults) -> None:
        raise AssertionError("not expected")

    def create_oci_artifact(self, spec: OCIArtifactSpec) -> OCIArtifactResult:
        raise AssertionError("not expected")


def test_progress_is_sent_in_samples_when_it_changes() -> None:
    counter, callbacks = SampleCounter(), _Recording()
    reporter = ProgressReporter(counter, callbacks, interval=3600)
    reporter.flush()
    assert callbacks.updates == []  # nothing planned yet
    counter.plan(4)
    counter.finished(errored=False)
    reporter.flush()
    reporter.flush()  # unchanged: not sent again
    counter.finished(errored=True)
    reporter.start().stop()
    assert [(u.completed_steps, u.total_steps, u.progress) for u in callbacks.updates] == [
        (1, 4, 0.25),
        (2, 4, 0.5),
    ]
    assert callbacks.updates[-1].current_step == "2/4 samples done (1 with errors)"


def test_the_tiktoken_cache_is_seeded_from_the_shipped_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "litellm-tokenizers"
    source.mkdir()
    for name in ENCODING_FILES:
        (source / name).write_bytes(b"encoding " + name.encode())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    folder = ensure_tiktoken_cache(source)
    assert folder == tmp_path / "cache" and os.environ["TIKTOKEN_CACHE_DIR"] == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(ENCODING_FILES)
    assert (folder / ENCODING_FILES[0]).read_bytes() == b"encoding " + ENCODING_FILES[0].encode()
