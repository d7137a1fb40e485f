"""The GuideLLM adapter, run for real: its own environment's Python, a job.json in a run directory, a
recording loopback server as the callback URL, and the local Gemma model served by llama.cpp."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.envs import ensure_env
from adapters.guidellm.config import ParameterError, normalise_target, plan_run
from adapters.guidellm.report import LATENCY_METRICS, metrics_from_report
from tests.builtin_adapters.adapter_run import job_spec
from tests.builtin_adapters.adapter_run import run_adapter as run
from tests.support.recorders import EventRecorder

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def adapter_python() -> Path:
    return ensure_env("guidellm")


def run_adapter(
    python: Path, run_dir: Path, callback_url: str, model: tuple[str, str], benchmark_id: str, **spec: Any
) -> subprocess.CompletedProcess[str]:
    job = job_spec("guidellm", callback_url, model, benchmark_id=benchmark_id, **spec)
    return run("guidellm", run_dir, job)


@pytest.mark.slow
def test_smoke_profile_reports_real_latency_and_throughput(
    adapter_python: Path, endpoint: tuple[str, str], recorder: EventRecorder, tmp_path: Path
) -> None:
    started = time.monotonic()
    done = run_adapter(
        adapter_python,
        tmp_path,
        recorder.url,
        endpoint,
        "smoke",
        parameters={"output_tokens": 8},
        num_examples=3,
        primary_score={"metric": "time_to_first_token_ms_p50", "lower_is_better": True},
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    events = recorder.events()
    phases = [e.get("phase") for e in events if e["status"] == "running"]
    ordered = ["initializing", "loading_data", "running_evaluation", "post_processing"]
    assert list(dict.fromkeys(phases)) == ordered, phases

    progress = [e for e in events if e.get("progress") is not None]
    values = [e["progress"] for e in progress]
    assert values == sorted(values) and values[-1] == 1.0, values
    assert any(0.0 < v < 1.0 for v in values), "no intermediate progress was reported"
    assert progress[-1]["completed_steps"] == progress[-1]["total_steps"] == 1

    final = events[-1]
    assert final["status"] == "completed", final
    metrics = final["metrics"]
    assert metrics["requests_successful"] == 3 and metrics["requests_errored"] == 0
    assert metrics["error_rate"] == 0.0
    assert metrics["requests_per_second"] > 0 and metrics["output_tokens_per_second"] > 0
    for name in LATENCY_METRICS:
        assert metrics[name] > 0, name
    for prefix in ("time_to_first_token_ms", "request_latency_ms"):
        assert metrics[f"{prefix}_p50"] <= metrics[f"{prefix}_p95"] <= metrics[f"{prefix}_p99"]
    # Request latency is end to end: it includes the first token, and is reported in ms, not seconds.
    assert metrics["request_latency_ms_mean"] > metrics["time_to_first_token_ms_mean"]
    assert metrics["request_latency_ms_mean"] < elapsed * 1000
    assert metrics["time_to_first_token_ms_mean_stderr"] >= 0
    assert final["overall_score"] == metrics["time_to_first_token_ms_p50"]
    provider = yaml.safe_load((REPO / "config/providers/guidellm.yaml").read_text())
    for benchmark in provider["benchmarks"]:
        assert set(benchmark["metrics"]) <= set(metrics), benchmark["id"]

    artifacts = final["artifacts"]
    for name in ("guidellm_report_json", "guidellm_report_csv", "guidellm_report_html"):
        assert Path(artifacts[name]).is_file(), name
        assert Path(artifacts[name]).parent == tmp_path / "results"
    report = json.loads(Path(artifacts["guidellm_report_json"]).read_text())
    assert report["benchmarks"][0]["scheduler_state"]["successful_requests"] == 3
    # The numbers sent are the report's own.
    sent, _ = metrics_from_report(report)
    # Counted from the scheduler, not GuideLLM's measurement window: a request at the window's edge on a
    # loaded machine is still a request that was sent and answered.
    windowed = json.loads(json.dumps(report))
    windowed["benchmarks"][0]["metrics"]["request_totals"] = {"successful": 2, "errored": 0, "incomplete": 0}
    recounted, _ = metrics_from_report(windowed)
    assert {m.name: m.value for m in recounted}["requests_successful"] == 3
    assert {m.name: m.value for m in sent}["requests_per_second"] == pytest.approx(
        metrics["requests_per_second"]
    )


@pytest.mark.slow
def test_a_bad_parameter_fails_the_benchmark_naming_it(
    adapter_python: Path, recorder: EventRecorder, tmp_path: Path
) -> None:
    done = run_adapter(
        adapter_python,
        tmp_path,
        recorder.url,
        ("http://127.0.0.1:9/v1", "m"),
        "synchronous",
        parameters={"rate": 4},
    )
    assert done.returncode == 1
    final = recorder.events()[-1]
    assert final["status"] == "failed"
    assert final["error_message"]["message_code"] == "adapter_error"
    assert "rate" in final["error_message"]["message"]


def test_model_url_is_normalised_for_guidellm() -> None:
    assert normalise_target("http://h:1/v1/") == "http://h:1"
    assert normalise_target("http://h:1/model/job-1/v1") == "http://h:1/model/job-1"
    assert normalise_target("http://h:1") == "http://h:1"


def test_profiles_map_rates_to_guidellm_and_count_runs(tmp_path: Path) -> None:
    def plan(benchmark: str, **parameters: Any) -> Any:
        return plan_run(
            benchmark_id=benchmark,
            parameters=parameters,
            num_examples=None,
            model_url="http://h/v1",
            model_name="m",
            output_dir=tmp_path,
        )

    concurrent = plan("concurrent", rate=[1, 2, 4], max_requests=10)
    assert concurrent.spec["profile"] == {"kind": "concurrent", "streams": [1, 2, 4]}
    assert concurrent.expected_runs == 3
    assert concurrent.spec["constraints"] == [{"kind": "max_requests", "count": 10}]
    assert plan("poisson", rate=2.5).spec["profile"] == {"kind": "poisson", "rate": [2.5]}
    assert plan("sweep", rate=4).expected_runs == 4
    unbounded = plan("throughput")
    assert {c["kind"] for c in unbounded.spec["constraints"]} == {"max_requests", "max_duration"}
    synthetic = plan("synchronous", data="prompt_tokens=64,output_tokens=8")
    assert synthetic.spec["data"] == [{"kind": "synthetic_text", "prompt_tokens": 64, "output_tokens": 8}]
    odd = plan("synchronous", data="prompt_tokens=\u00b3")  # a digit to str.isdigit, not to int: kept as text
    assert odd.spec["data"][0]["prompt_tokens"] == "\u00b3"
    with pytest.raises(ParameterError, match="rate"):
        plan("concurrent", rate=1.5)
    with pytest.raises(ParameterError, match="not a GuideLLM profile"):
        plan("nonsense")
    with pytest.raises(ParameterError, match="profil"):
        plan("synchronous", profil="sweep")
