"""Where the job spec is read from, what is ignored, and how a bad one is reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.sdk import (
    AdapterSettings,
    FrameworkAdapter,
    JobCallbacks,
    JobResults,
    JobSpec,
    JobSpecError,
)

SPEC: dict[str, Any] = {
    "id": "job-1",
    "provider_id": "p",
    "benchmark_id": "b0",
    "benchmark_index": 0,
    "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
    "parameters": {"k": 1},
    "callback_url": "http://127.0.0.1:9",
}


class NoopAdapter(FrameworkAdapter):
    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> JobResults:
        raise NotImplementedError


def write_spec(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("EVALHUB_JOB_SPEC_PATH", "EVALHUB_MODE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_spec_from_evalhub_job_spec_path(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = write_spec(tmp_path / "job-1" / "0" / "p" / "b0" / "meta" / "job.json", SPEC)
    clean_env.setenv("EVALHUB_JOB_SPEC_PATH", str(path))
    adapter = NoopAdapter()
    assert adapter.job_spec.benchmark_id == "b0"
    assert adapter.job_spec.parameters == {"k": 1}
    assert adapter.local_jobs_base_path == tmp_path / "job-1" / "0" / "p" / "b0"


def test_spec_from_relative_meta_job_json(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    write_spec(tmp_path / "meta" / "job.json", SPEC)
    clean_env.chdir(tmp_path)
    adapter = NoopAdapter()
    assert adapter.job_spec.id == "job-1"
    assert adapter.local_jobs_base_path == tmp_path.resolve()


def test_explicit_path_wins_over_the_environment(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EVALHUB_JOB_SPEC_PATH", str(tmp_path / "nowhere.json"))
    path = write_spec(tmp_path / "spec.json", {**SPEC, "benchmark_id": "explicit"})
    adapter = NoopAdapter(job_spec_path=path)
    assert adapter.job_spec.benchmark_id == "explicit"
    assert adapter.local_jobs_base_path is None  # not a meta/job.json layout


def test_k8s_mode_reads_meta_job_json_at_the_root(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EVALHUB_MODE", "K8S")
    assert AdapterSettings.from_env().resolved_job_spec_path == Path("/meta/job.json")
    with pytest.raises(FileNotFoundError, match=r"/meta/job\.json \(from the k8s-mode default"):
        NoopAdapter()


def test_unknown_keys_are_ignored_and_assay_keys_read(tmp_path: Path) -> None:
    data = {
        **SPEC,
        "future_field": {"x": 1},
        "model": {**SPEC["model"], "parameters": {"t": 0}, "card_url": "x"},
        "test_data_ref": {"type": "pre_recorded_data"},
        "num_examples": 5,
        "tags": [{"key": "team", "value": "a"}],
        "primary_score": {"metric": "acc", "lower_is_better": False},
        "exports": {"oci": {"coordinates": {"oci_host": "r.io", "oci_repository": "o/r", "annotations": {}}}},
    }
    spec = JobSpec.from_file(write_spec(tmp_path / "job.json", data))
    assert not hasattr(spec, "future_field")
    assert spec.num_examples == 5
    assert spec.test_data_ref == {"type": "pre_recorded_data"}
    assert spec.exports is not None and spec.exports.oci is not None
    assert spec.exports.oci.coordinates.oci_repository == "o/r"


def test_a_missing_file_names_the_path_and_how_it_was_chosen(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "meta" / "job.json"
    clean_env.setenv("EVALHUB_JOB_SPEC_PATH", str(missing))
    with pytest.raises(FileNotFoundError) as caught:
        NoopAdapter()
    assert str(missing) in str(caught.value)
    assert "EVALHUB_JOB_SPEC_PATH" in str(caught.value)


def test_an_invalid_spec_names_the_file_and_every_bad_field(tmp_path: Path) -> None:
    data = {**SPEC, "benchmark_index": "first", "model": {"url": "u", "name": "  "}}
    del data["callback_url"]
    path = write_spec(tmp_path / "job.json", data)
    with pytest.raises(JobSpecError) as caught:
        NoopAdapter(job_spec_path=path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid job spec")
    for field in ("benchmark_index", "model.name", "callback_url"):
        assert field in message
    assert isinstance(caught.value, ValueError)  # what eval-hub-sdk raises, for adapters that catch it


def test_invalid_json_names_the_file_and_position(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "job.json", '{"id": "x",\n "provider_id": }')
    with pytest.raises(JobSpecError, match=rf"{path}: not valid JSON \(line 2, column"):
        JobSpec.from_file(path)
    with pytest.raises(JobSpecError, match="must be a JSON object, got list"):
        JobSpec.from_file(write_spec(tmp_path / "list.json", "[]"))


def test_members_of_a_group(tmp_path: Path) -> None:
    data = {
        **SPEC,
        "num_examples": 3,
        "primary_score": {"metric": "acc"},
        "group": [
            {
                "benchmark_id": "b1",
                "benchmark_index": 1,
                "parameters": {"k": 2},
                "primary_score": {"metric": "f1"},
            },
            {"benchmark_id": "b2", "benchmark_index": 4},
        ],
    }
    spec = JobSpec.model_validate(data)
    lead, first, second = spec.members()
    assert (lead.benchmark_id, lead.benchmark_index, lead.num_examples, lead.group) == ("b0", 0, 3, None)
    assert (first.benchmark_id, first.benchmark_index, first.parameters) == ("b1", 1, {"k": 2})
    assert first.primary_score is not None and first.primary_score.metric == "f1"
    assert first.num_examples is None
    assert (second.benchmark_id, second.benchmark_index, second.parameters, second.primary_score) == (
        "b2",
        4,
        {},
        None,
    )
    assert {m.id for m in spec.members()} == {"job-1"}
    assert {m.model.name for m in spec.members()} == {"m"}
    assert JobSpec.model_validate(SPEC).members() == [JobSpec.model_validate(SPEC)]


def test_a_bad_environment_value_names_the_variable() -> None:
    from adapters.sdk import AdapterSDKError

    with pytest.raises(AdapterSDKError, match="EVALHUB_MODE='cloud'"):
        AdapterSettings.from_env({"EVALHUB_MODE": "cloud"})
    with pytest.raises(AdapterSDKError, match="ASSAY_CALLBACK_RETRY_SECONDS='soon'"):
        AdapterSettings.from_env({"ASSAY_CALLBACK_RETRY_SECONDS": "soon"})
