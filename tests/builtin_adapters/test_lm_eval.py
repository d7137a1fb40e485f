"""The lm-evaluation-harness adapter, run for real: its own environment's Python, a group job.json in a run
directory, a recording loopback server as the callback URL, and the local Gemma model served by llama.cpp.

The pure parts (endpoint URL, parameter checks, metric-key stripping) are checked without lm-eval."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.envs import ensure_env
from adapters.lm_eval.config import MemberPlan, ParameterError, endpoint_url, plan_harness
from adapters.lm_eval.results import member_metrics
from adapters.sdk import JobSpec
from tests.builtin_adapters.adapter_run import job_spec
from tests.builtin_adapters.adapter_run import run_adapter as run
from tests.support.recorders import EventRecorder

RUN_TIMEOUT = 400.0
JOB_ID = "job-lm-eval"


@pytest.fixture(scope="module")
def adapter_python() -> Path:
    return ensure_env("lm_eval")


def _spec(model: tuple[str, str], callback_url: str, **fields: Any) -> dict[str, Any]:
    return job_spec("lm_evaluation_harness", callback_url, model, id=JOB_ID, **fields)


def run_adapter(python: Path, run_dir: Path, job: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    # What the provider's runtime.local.env sets: nothing may come from the Hugging Face Hub.
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return run("lm_eval", run_dir, job, env=offline, timeout=RUN_TIMEOUT)


@pytest.mark.slow
def test_a_two_task_group_runs_in_one_harness_call_and_reports_each_benchmark(
    adapter_python: Path, model_server: Any, recorder: EventRecorder, tmp_path: Path
) -> None:
    # The model URL without /v1 and with a trailing slash: the adapter normalises it.
    model_url = model_server.base_url.removesuffix("/v1") + "/"
    job = _spec(
        (model_url, model_server.model_name),
        recorder.url,
        benchmark_id="assay_capitals",
        num_examples=4,
        parameters={"num_fewshot": 2},
        primary_score={"metric": "exact_match"},
        group=[
            {
                "benchmark_id": "assay_arithmetic",
                "benchmark_index": 3,
                "num_examples": 3,
                "parameters": {},
                "primary_score": {"metric": "exact_match"},
            }
        ],
    )
    started = time.monotonic()
    done = run_adapter(adapter_python, tmp_path, job)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"lm-eval group run: {elapsed:.1f}s")

    assert {r.path for r in recorder.requests} == {f"/api/v1/evaluations/jobs/{JOB_ID}/events"}
    capitals, arithmetic = of(recorder, "assay_capitals"), of(recorder, "assay_arithmetic")
    assert {e["benchmark_index"] for e in capitals} == {0}
    assert {e["benchmark_index"] for e in arithmetic} == {3}
    assert all(e["provider_id"] == "lm_evaluation_harness" for e in recorder.events())

    for events, examples in ((capitals, 4), (arithmetic, 3)):
        phases = [e.get("phase") for e in events if e["status"] == "running"]
        ordered = [p for i, p in enumerate(phases) if p is not None and p not in phases[:i]]
        assert ordered == ["initializing", "loading_data", "running_evaluation", "post_processing"]
        # Real progress: answered requests counted up to every request of the task.
        progress = [e for e in events if e.get("total_steps")]
        assert progress, events
        assert progress[-1]["completed_steps"] == progress[-1]["total_steps"] == examples
        assert progress[-1]["progress"] == 1.0
        steps = [e["completed_steps"] for e in progress]
        assert steps == sorted(steps)

        final = events[-1]
        assert final["status"] == "completed"
        assert [e["status"] for e in events].count("completed") == 1
        metrics = final["metrics"]
        assert 0.0 <= metrics["exact_match"] <= 1.0
        assert "exact_match_stderr" in metrics, final
        assert metrics["exact_match_stderr"] >= 0.0
        assert final["overall_score"] == metrics["exact_match"]
        # Assay keeps lm-eval's raw results and the per-sample log of each task as artifacts.
        artifacts = final["artifacts"]
        results_file = Path(artifacts["lm_eval_results"])
        assert results_file.parent == tmp_path / "results"
        assert json.loads(results_file.read_text())["n-samples"][final["id"]]["effective"] == examples
        samples = Path(artifacts[f"samples_{final['id']}"]).read_text().splitlines()
        assert len(samples) == examples
        logged = json.loads(samples[0])
        assert logged["resps"][0][0] and "exact_match" in logged

    # The capitals task ran 2-shot as asked (its YAML says 3): the logged prompt holds two worked examples.
    first = json.loads(Path(capitals[-1]["artifacts"]["samples_assay_capitals"]).read_text().splitlines()[0])
    assert first["arguments"]["gen_args_0"]["arg_0"].count("Answer:") == 3


@pytest.mark.slow
def test_an_unknown_task_fails_its_benchmark_naming_the_task(
    adapter_python: Path, recorder: EventRecorder, tmp_path: Path
) -> None:
    # No model request is made before the task lookup fails, so no model server is needed.
    job = _spec(("http://127.0.0.1:9/v1", "m"), recorder.url, benchmark_id="no_such_lm_eval_task")
    started = time.monotonic()
    done = run_adapter(adapter_python, tmp_path, job)
    print(f"lm-eval unknown-task run: {time.monotonic() - started:.1f}s")
    assert done.returncode != 0
    final = recorder.events()[-1]
    assert final["status"] == "failed"
    assert final["error_message"]["message_code"] == "unknown_task"
    assert "no_such_lm_eval_task" in final["error_message"]["message"]
    assert [e["status"] for e in recorder.events()].count("failed") == 1


# ------------------------------------------------------------------------------- pure parts, no lm-eval


@pytest.mark.parametrize(
    ("given", "chat", "expected"),
    [
        ("http://h:8/v1", False, "http://h:8/v1/completions"),
        ("http://h:8/v1/", True, "http://h:8/v1/chat/completions"),
        ("http://h:8", False, "http://h:8/v1/completions"),
        ("http://h:8/model/j1/v1/completions", True, "http://h:8/model/j1/v1/chat/completions"),
    ],
)
def test_the_endpoint_url_is_normalised(given: str, chat: bool, expected: str) -> None:
    assert endpoint_url(given, chat=chat) == expected


def test_parameters_are_checked_and_named() -> None:
    base = _spec(("http://h/v1", "m"), "http://cb", benchmark_id="a")
    with pytest.raises(ParameterError, match=r"benchmark 'a': parameters\.num_fewshots"):
        plan_harness(JobSpec.model_validate({**base, "parameters": {"num_fewshots": 2}}))
    mixed = {
        **base,
        "group": [{"benchmark_id": "b", "benchmark_index": 1, "parameters": {"model_type": "chat"}}],
    }
    with pytest.raises(ParameterError, match=r"benchmark 'b': parameters\.model_type='chat' differs"):
        plan_harness(JobSpec.model_validate(mixed))
    plan = plan_harness(
        JobSpec.model_validate(
            {
                **base,
                "num_examples": 5,
                "parameters": {"task": "gsm8k", "num_fewshot": 0, "model_type": "chat"},
            }
        )
    )
    assert plan.chat and plan.endpoint == "http://h/v1/chat/completions"
    assert plan.members[0].model_dump() == {
        "benchmark_id": "a",
        "benchmark_index": 0,
        "task": "gsm8k",
        "num_fewshot": 0,
        "limit": 5,
        "filter": None,
    }


def test_metric_keys_lose_their_filter_and_keep_their_stderr() -> None:
    raw = {
        "results": {
            "gsm8k": {
                "alias": "gsm8k",
                "exact_match,strict-match": 0.25,
                "exact_match_stderr,strict-match": 0.1,
                "exact_match,flexible-extract": 0.5,
                "exact_match_stderr,flexible-extract": "N/A",
            }
        },
        "n-samples": {"gsm8k": {"original": 1319, "effective": 8}},
    }
    member = MemberPlan(
        benchmark_id="gsm8k", benchmark_index=0, task="gsm8k", num_fewshot=None, limit=8, filter=None
    )
    metrics, chosen = member_metrics(raw, member)
    assert chosen == "strict-match"
    assert [(m.metric_name, m.metric_value, m.stderr, m.num_samples) for m in metrics] == [
        ("exact_match", 0.25, 0.1, 8)
    ]
    flexible, _ = member_metrics(raw, member.model_copy(update={"filter": "flexible-extract"}))
    assert [(m.metric_value, m.stderr) for m in flexible] == [(0.5, None)]
    with pytest.raises(
        ParameterError, match=r"parameters\.filter 'loose' is not a filter of lm-eval task 'gsm8k'"
    ):
        member_metrics(raw, member.model_copy(update={"filter": "loose"}))


def of(recorder: EventRecorder, benchmark_id: str) -> list[dict[str, Any]]:
    return [e for e in recorder.events() if e["id"] == benchmark_id]
