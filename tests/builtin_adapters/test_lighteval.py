"""The LightEval adapter, run for real: its own environment's Python, a job.json in a run directory, a recording
loopback server as the callback URL, and the local Gemma model served by llama.cpp through LightEval's litellm
backend. The pure parts (task specs, result mapping) are checked in the hub's environment."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.envs import ensure_env
from adapters.lighteval.adapter import _Progress, metrics_for_tasks, task_specs
from tests.builtin_adapters.adapter_run import job_spec
from tests.builtin_adapters.adapter_run import run_adapter as run
from tests.support.net import free_port
from tests.support.recorders import EventRecorder

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 400.0
PHASES = ["initializing", "loading_data", "running_evaluation", "post_processing"]
DUMP_DETAILS = """
import json, sys
import pandas
rows = pandas.read_parquet(sys.argv[1]).to_dict("records")
print(json.dumps([{"query": r["doc"]["query"], "answers": list(r["model_response"]["text"]),
                   "metric": {k: float(v) for k, v in r["metric"].items()}} for r in rows]))
"""


@pytest.fixture(scope="module")
def adapter_python() -> Path:
    return ensure_env("lighteval")


def run_adapter(python: Path, run_dir: Path, job: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return run("lighteval", run_dir, job)


def _job(callback_url: str, model: tuple[str, str], **fields: Any) -> dict[str, Any]:
    return job_spec("lighteval", callback_url, model, **fields)


@pytest.mark.slow
def test_a_group_of_bundled_tasks_runs_in_one_lighteval_pipeline(
    adapter_python: Path, endpoint: tuple[str, str], recorder: EventRecorder, tmp_path: Path
) -> None:
    started = time.monotonic()
    done = run_adapter(
        adapter_python,
        tmp_path,
        _job(
            recorder.url,
            # Without /v1: the adapter normalises it.
            (endpoint[0].removesuffix("/v1"), endpoint[1]),
            benchmark_id="assay_capitals",
            parameters={"num_fewshot": 1},
            num_examples=3,
            primary_score={"metric": "em"},
            group=[
                {
                    "benchmark_id": "assay_arithmetic",
                    "benchmark_index": 1,
                    "parameters": {"num_fewshot": 3},
                    "num_examples": 3,
                    "primary_score": {"metric": "em"},
                }
            ],
        ),
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"lighteval group of 2 tasks x 3 examples: {elapsed:.1f}s")

    provider = yaml.safe_load((REPO / "config/providers/lighteval.yaml").read_text())
    declared = {b["id"]: b["metrics"] for b in provider["benchmarks"]}
    for index, benchmark in ((0, "assay_capitals"), (1, "assay_arithmetic")):
        events = recorder.events(index)
        assert {e["id"] for e in events} == {benchmark}
        phases = [e.get("phase") for e in events if e["status"] == "running"]
        assert list(dict.fromkeys(phases)) == PHASES, phases

        progress = [e for e in events if e.get("progress") is not None]
        values = [e["progress"] for e in progress]
        assert values == sorted(values) and values[0] == 0.0 and values[-1] == 1.0, values
        assert any(0.0 < v < 1.0 for v in values), "no intermediate progress was reported"
        # One request per example of both tasks: the pipeline is shared, so is its progress.
        assert progress[-1]["completed_steps"] == progress[-1]["total_steps"] == 6

        final = events[-1]
        assert final["status"] == "completed", final
        metrics = final["metrics"]
        for name in declared[benchmark]:
            assert 0.0 <= metrics[name] <= 1.0, (name, metrics)
            assert metrics[f"{name}_stderr"] >= 0.0, name
        assert final["overall_score"] == metrics["em"]

        artifacts = {k: Path(v) for k, v in final["artifacts"].items() if isinstance(v, str) and "/" in v}
        results_files = [p for name, p in artifacts.items() if name.startswith("results/")]
        details = [p for name, p in artifacts.items() if name.startswith("details/") and benchmark in name]
        assert len(results_files) == 1 and results_files[0].is_file()
        assert all(p.is_relative_to(tmp_path / "results" / "lighteval") for p in artifacts.values())
        assert len(details) == 1 and details[0].stat().st_size > 0
        saved = json.loads(results_files[0].read_text())["results"]
        fewshot = 1 if index == 0 else 3
        assert saved[f"{benchmark}|{fewshot}"]["em"] == pytest.approx(metrics["em"])

    # The per-sample details hold the model's real answers to our questions (read with the adapter's pandas).
    details = next(
        Path(v)
        for k, v in recorder.events(0)[-1]["artifacts"].items()
        if k.startswith("details/") and "capitals" in k
    )
    rows = json.loads(
        subprocess.run(
            [str(adapter_python), "-c", DUMP_DETAILS, str(details)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert len(rows) == 3
    for row in rows:
        assert row["query"].startswith("Question: What is the capital of "), row
        assert row["answers"] and all(isinstance(a, str) for a in row["answers"]), row
        assert row["metric"]["em"] in (0, 1)


@pytest.mark.slow
def test_an_unreachable_endpoint_fails_the_benchmark_instead_of_scoring_zero(
    adapter_python: Path, recorder: EventRecorder, tmp_path: Path
) -> None:
    port = free_port()  # a port nothing listens on
    done = run_adapter(
        adapter_python,
        tmp_path,
        _job(
            recorder.url,
            (f"http://127.0.0.1:{port}/v1", "m"),
            benchmark_id="assay_capitals",
            parameters={"api_max_retry": 1, "timeout": 5},
            num_examples=2,
        ),
    )
    assert done.returncode == 1, done.stderr[-3000:]
    final = recorder.events(0)[-1]
    assert final["status"] == "failed"
    assert final["error_message"]["message_code"] == "adapter_error"
    assert f"127.0.0.1:{port}" in final["error_message"]["message"]


def test_task_specs_carry_the_few_shot_count() -> None:
    assert task_specs("assay_capitals", 2) == ("assay_capitals|2",)
    assert task_specs(["a|1", "lighteval|b|0", "c"], 5) == ("a|1", "b|0", "c|5")
    assert task_specs("a, b", 0) == ("a|0", "b|0")
    with pytest.raises(ValueError, match="tasks"):
        task_specs("a||", 0)
    with pytest.raises(ValueError, match="tasks"):
        task_specs(3, 0)
    with pytest.raises(ValueError, match="num_fewshot"):  # "³" is a digit to str.isdigit, not a count
        task_specs("a|\u00b3", 0)


def test_a_superset_is_reported_as_the_mean_of_its_subtasks() -> None:
    results = {
        "mmlu:anatomy|0": {"em": 0.5, "em_stderr": 0.3},
        "mmlu:astronomy|0": {"em": 0.25, "em_stderr": 0.4},
        "gsm8k|0": {"em": 1.0, "em_stderr": 0.0},
    }
    (em,) = metrics_for_tasks(["mmlu|0"], results, {"mmlu:anatomy|0": 4, "mmlu:astronomy|0": 4})
    assert em.metric_name == "em" and em.metric_value == pytest.approx(0.375)
    assert em.stderr == pytest.approx(0.25)  # sqrt(0.3^2 + 0.4^2) / 2
    assert em.num_samples == 8
    with pytest.raises(ValueError, match="arc:easy"):
        metrics_for_tasks(["arc:easy|0"], results, {})


class _Statuses:
    """A reporter that keeps the progress of each status update it is sent."""

    def __init__(self) -> None:
        self.progress: list[float | None] = []

    def report_status(self, update: Any) -> None:
        self.progress.append(update.progress)


def test_a_run_whose_requests_all_finish_within_one_interval_still_reports_its_first() -> None:
    reporter = _Statuses()
    progress = _Progress([reporter])  # type: ignore[list-item]
    progress.send(0, 6, force=True)  # loaded
    for done in range(1, 7):  # all six well within one throttling interval
        progress.send(done, 6)
    assert reporter.progress == [0.0, pytest.approx(1 / 6), 1.0]
    progress.send(7, 8)  # later requests wait for the interval again
    assert reporter.progress[-1] == 1.0
