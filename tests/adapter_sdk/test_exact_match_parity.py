"""A third-party eval-hub-sdk adapter, and the same file with its import lines switched to adapters.sdk,
send the same events: same statuses, phases, metrics and results body, apart from Assay's additions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.recorders import EventRecorder

REPO = Path(__file__).resolve().parents[2]
THIRD_PARTY = REPO / "tests" / "fixtures" / "adapters" / "exact_match"
IMPORT_SWITCH = {
    "from evalhub.adapter import (": "from adapters.sdk import (",
    "from evalhub.models import MetricSchema, ResultType": "from adapters.sdk import MetricSchema, ResultType",
}
PROGRESS_FIELDS = ("progress", "current_step", "total_steps", "completed_steps")


def switched_adapter(tmp_path: Path) -> Path:
    source = (THIRD_PARTY / "adapter.py").read_text()
    for old, new in IMPORT_SWITCH.items():
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    assert "evalhub" not in source.replace("EVALHUB_", "").replace("eval-hub", "")
    target = tmp_path / "assay_exact_match" / "adapter.py"
    target.parent.mkdir()
    target.write_text(source)
    return target


def run(
    script: Path, recorder: EventRecorder, tmp_path: Path, parameters: dict[str, Any]
) -> tuple[int, list[Any]]:
    before = len(recorder.events())
    spec = {
        "id": "job-em",
        "provider_id": "exact_match",
        "benchmark_id": "squad_mini",
        "benchmark_index": 1,
        "model": {"url": "", "name": "recorded"},
        "parameters": {"dataset": str(THIRD_PARTY / "dataset.jsonl"), **parameters},
        "callback_url": recorder.url,
        "num_examples": 6,
        "primary_score": {"metric": "f1"},
        "tags": [],
    }
    path = tmp_path / script.parent.name / "meta" / "job.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=2))
    env = {**os.environ, "EVALHUB_JOB_SPEC_PATH": str(path), "EVALHUB_MODE": "local", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, recorder.events()[before:]


def without_additions(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in PROGRESS_FIELDS}


@pytest.mark.slow
def test_same_events_from_both_sdks(recorder: EventRecorder, tmp_path: Path) -> None:
    theirs_code, theirs = run(THIRD_PARTY / "adapter.py", recorder, tmp_path, {})
    ours_code, ours = run(switched_adapter(tmp_path), recorder, tmp_path, {})
    assert (theirs_code, ours_code) == (0, 0)
    assert [e["status"] for e in theirs] == ["running"] * 4 + ["completed"]
    assert len(ours) == len(theirs)
    for mine, reference in zip(ours[:-1], theirs[:-1], strict=True):
        assert without_additions(mine) == reference
    # What Assay adds on the wire: the adapter's progress and current step.
    assert [(e["progress"], e["current_step"]) for e in ours[:2]] == [
        (0.0, "reading parameters"),
        (0.1, "loading dataset.jsonl"),
    ]
    result, reference = dict(ours[-1]), dict(theirs[-1])
    assert result.pop("completed_at") and reference.pop("completed_at")  # the moment differs
    assert result == reference
    assert set(result["metrics"]) == {"exact_match", "f1", "exact_match_stderr", "f1_stderr"}
    assert result["overall_score"] == result["metrics"]["f1"]
    assert result["additional_info"] == {"dataset": "dataset.jsonl"}


@pytest.mark.slow
def test_same_failure_from_both_sdks(recorder: EventRecorder, tmp_path: Path) -> None:
    theirs_code, theirs = run(THIRD_PARTY / "adapter.py", recorder, tmp_path, {"fail": "exception"})
    ours_code, ours = run(switched_adapter(tmp_path), recorder, tmp_path, {"fail": "exception"})
    assert (theirs_code, ours_code) == (1, 1)
    assert [without_additions(e) for e in ours] == theirs
    assert theirs[-1]["error_message"]["message_code"] == "evaluation_error"
