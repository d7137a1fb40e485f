"""`assay demo`, the README's first command: the hub, the local model and a real evaluation of the bundled
collection, with live progress and a results table, in one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assay.cli.demo import format_results
from tests.support.net import free_port

# Real frameworks on 2 shared cores: minutes, not seconds, when the machine is busy.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_demo_evaluates_the_local_model_and_prints_the_composite(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("ASSAY_")}
    env["ASSAY_ADAPTER_ENVS"] = os.environ.get(
        "ASSAY_ADAPTER_ENVS", str(Path.home() / ".cache/assay/adapter-envs")
    )
    command = [str(Path(sys.executable).with_name("assay")), "demo", "--exit-when-done"]
    command += ["--port", str(free_port()), "--data-dir", str(tmp_path / "demo")]
    demo = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = demo.stdout
    assert demo.returncode == 0, out + demo.stderr[-3000:]
    # Live progress: each benchmark went from pending through running to completed, with step counts.
    for benchmark in ("lm_evaluation_harness/assay_capitals", "lm_evaluation_harness/assay_arithmetic"):
        lines = [line for line in out.splitlines() if benchmark in line]
        assert ": pending" in lines[0] and ": completed" in lines[-1], lines
        assert any("/20)" in line for line in lines), lines
    assert "guidellm/smoke: completed" in out
    table = out[out.index("benchmark ") :]
    assert "assay_capitals" in table and "exact_match" in table and "time_to_first_token_ms_p50" in table
    assert "coverage 100%" in table and ("PASS" in table or "FAIL" in table)


def test_the_results_table_names_each_verdict() -> None:
    document = {
        "results": {
            "benchmarks": [
                {
                    "id": "a",
                    "provider_id": "p",
                    "test": {
                        "primary_score_metric": "acc",
                        "primary_score": 0.75,
                        "stderr": 0.05,
                        "threshold": 0.5,
                        "pass": True,
                    },
                },
                {
                    "id": "b",
                    "provider_id": "p",
                    "test": {"evaluated": False, "reason": "metric_missing", "pass": False},
                },
            ],
            "test": {"score": 0.375, "threshold": 0.5, "coverage": 1.0, "pass": False},
        }
    }
    lines = format_results(document)
    assert lines[0].split() == ["benchmark", "provider", "metric", "score", "threshold", "result"]
    assert lines[2].split() == ["a", "p", "acc", "0.750", "±", "0.050", "0.5", "pass"]
    assert lines[3].split() == ["b", "p", "-", "-", "-", "metric_missing"]
    assert lines[-1] == "composite 0.375 (threshold 0.5, coverage 100%): FAIL"


def test_without_the_demo_extra_the_demo_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a ModuleNotFoundError from deep inside: one line naming the extra, before anything starts."""
    from assay.cli.demo import run_demo
    from assay.settings import Settings

    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # as if the demo extra were not installed
    assert run_demo(Settings(data_dir=tmp_path / "data")) == 1
    assert "pip install 'assay[demo]'" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # no PostgreSQL was started
