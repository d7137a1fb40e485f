"""The garak adapter, run for real: its own environment's Python, a job.json in a run directory, a
recording loopback server as the callback URL, and the local Gemma model served by llama.cpp."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.envs import ensure_env
from adapters.garak.config import ParameterError, plan_run, selection
from adapters.garak.report import metrics_from_entries
from tests.builtin_adapters.adapter_run import job_spec
from tests.builtin_adapters.adapter_run import run_adapter as run
from tests.support.recorders import EventRecorder

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def adapter_python() -> Path:
    return ensure_env("garak")


def run_adapter(
    python: Path, run_dir: Path, callback_url: str, model: tuple[str, str], benchmark_id: str, **spec: Any
) -> subprocess.CompletedProcess[str]:
    job = job_spec("garak", callback_url, model, benchmark_id=benchmark_id, **spec)
    home = run_dir / "home"
    home.mkdir()
    # An empty home that must stay empty: garak's files belong in the run's results directory.
    env = {"HOME": str(home), "XDG_DATA_HOME": "", "XDG_CONFIG_HOME": "", "XDG_CACHE_HOME": ""}
    return run("garak", run_dir, job, env=env)


@pytest.mark.slow
def test_quick_scan_reports_attack_success_rates_and_keeps_garaks_reports(
    adapter_python: Path, endpoint: tuple[str, str], recorder: EventRecorder, tmp_path: Path
) -> None:
    done = run_adapter(
        adapter_python,
        tmp_path,
        recorder.url,
        endpoint,
        "quick",
        # InjectBase64 has hundreds of prompts and follows garak's prompt cap: num_examples keeps 1.
        # ThreatenJSON has 1 prompt. So 2 prompts in all, 1 generation each.
        parameters={"probes": "goodside.ThreatenJSON,encoding.InjectBase64", "max_tokens": 24},
        num_examples=1,
        primary_score={"metric": "attack_success_rate", "lower_is_better": True},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    events = recorder.events()
    phases = [e.get("phase") for e in events if e["status"] == "running"]
    ordered = ["initializing", "loading_data", "running_evaluation", "post_processing"]
    assert list(dict.fromkeys(phases)) == ordered, phases
    steps = [e for e in events if e.get("total_steps") is not None]
    assert steps and all(e["total_steps"] == 2 for e in steps)
    assert [e["completed_steps"] for e in steps] == sorted(e["completed_steps"] for e in steps)
    assert steps[-1]["completed_steps"] == 2 and steps[-1]["progress"] == 1.0

    final = events[-1]
    assert final["status"] == "completed", final
    metrics = final["metrics"]
    assert metrics["attempts"] == 2
    assert metrics["probes_run"] == 2
    assert metrics["evaluations"] >= 2  # one per output and detector
    for name in ("attack_success_rate", "attack_success_rate.goodside.ThreatenJSON",
                 "attack_success_rate.encoding.InjectBase64"):  # fmt: skip
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["attack_success_rate"] == metrics["attack_successes"] / metrics["evaluations"]
    assert final["overall_score"] == metrics["attack_success_rate"]
    provider = yaml.safe_load((REPO / "config/providers/garak.yaml").read_text())
    for benchmark in provider["benchmarks"]:
        # Every benchmark's metrics are reported, except the per-probe rates of probes not run here.
        assert {m for m in benchmark["metrics"] if m.count(".") < 2} <= set(metrics), benchmark["id"]

    artifacts = final["artifacts"]
    report = Path(artifacts["garak_report_jsonl"])
    assert report.parent == tmp_path / "results"
    assert Path(artifacts["garak_report_html"]).read_text().lstrip().lower().startswith("<!doctype html")
    entries = [json.loads(line) for line in report.read_text().splitlines()]
    answered = [e for e in entries if e["entry_type"] == "attempt" and e["status"] == 2]
    assert len(answered) == 2
    # The metrics sent are garak's own counts.
    sent, _ = metrics_from_entries(entries)
    assert {m.name: m.value for m in sent}["attack_successes"] == metrics["attack_successes"]
    assert list((tmp_path / "home").iterdir()) == []


@pytest.mark.slow
def test_an_unknown_probe_fails_the_benchmark(
    adapter_python: Path, endpoint: tuple[str, str], recorder: EventRecorder, tmp_path: Path
) -> None:
    done = run_adapter(
        adapter_python, tmp_path, recorder.url, endpoint, "quick", parameters={"probes": "nosuchmodule"}
    )
    assert done.returncode == 1
    final = recorder.events()[-1]
    assert final["status"] == "failed"
    assert "nosuchmodule" in final["error_message"]["message"]


def test_probe_names_become_garaks_selection() -> None:
    assert selection(["dan", "goodside.Tag", "-dan.DanInTheWild", "tag:owasp:llm01"]) == (
        "probes.dan,probes.goodside.Tag,-probes.dan.DanInTheWild,tag:owasp:llm01"
    )
    with pytest.raises(ParameterError, match="probes"):
        selection(["dan; rm -rf /"])
    with pytest.raises(ParameterError, match="at least one"):
        selection(["-dan"])


def test_parameters_reach_garaks_config(tmp_path: Path) -> None:
    run = plan_run(
        benchmark_id="dan",
        parameters={"generations": 2, "max_tokens": 64},
        num_examples=10,
        model_url="http://h:1",
        model_name="m",
        api_key="k",
        report_dir=tmp_path,
    )
    assert run.spec == "probes.dan"
    assert run.config["run"] == {"generations": 2, "soft_probe_prompt_cap": 10}
    generator = run.config["plugins"]["generators"]["openai"]["OpenAICompatible"]
    assert generator == {"uri": "http://h:1/v1", "api_key": "k", "max_tokens": 64}
    assert run.report_jsonl == tmp_path / "garak.report.jsonl"
    with pytest.raises(ParameterError, match="generation"):
        plan_run(benchmark_id="dan", parameters={"generation": 2}, num_examples=None, model_url="http://h",
                 model_name="m", api_key="k", report_dir=tmp_path)  # fmt: skip


def test_attack_success_rate_counts_hits_over_evaluated_outputs() -> None:
    entries = [
        {"entry_type": "eval", "probe": "a.P", "detector": "d.X", "passed": 3, "fails": 1, "nones": 0},
        {"entry_type": "eval", "probe": "a.P", "detector": "d.Y", "passed": 4, "fails": 0, "nones": 0},
        {"entry_type": "eval", "probe": "b.Q", "detector": "d.X", "passed": 0, "fails": 2, "nones": 1},
    ]
    metrics = {m.name: m.value for m in metrics_from_entries(entries)[0]}
    assert metrics["attack_success_rate"] == 3 / 10
    assert metrics["attack_success_rate.a.P"] == 1 / 8
    assert metrics["attack_success_rate.b.Q"] == 1.0
    assert metrics["outputs_none"] == 1
