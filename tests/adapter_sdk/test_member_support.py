"""What every adapter needs around its framework: each group member's callbacks, the run's results folder,
and the model's API key where EvalHub puts it (docs/compatibility.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pydantic
import pytest

from adapters.sdk import (
    AdapterSettings,
    DefaultCallbacks,
    EvalHubMode,
    FrameworkAdapter,
    JobCallbacks,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
    OCIArtifactResult,
    OCIArtifactSpec,
    callbacks_for_member,
    model_api_key,
    package_version,
)
from tests.support.recorders import EventRecorder

GROUP = [{"benchmark_id": "b1", "benchmark_index": 1, "parameters": {}}]


def spec_data(callback_url: str = "http://127.0.0.1:9", **extra: Any) -> dict[str, Any]:
    return {
        "id": "job-7",
        "provider_id": "prov",
        "benchmark_id": "b0",
        "benchmark_index": 0,
        "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
        "parameters": {},
        "callback_url": callback_url,
        **extra,
    }


class NoopAdapter(FrameworkAdapter):
    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> JobResults:
        raise NotImplementedError


def adapter_at(path: Path, data: dict[str, Any]) -> NoopAdapter:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return NoopAdapter(job_spec_path=path, settings=AdapterSettings())


class Unroutable(JobCallbacks):
    """Callbacks of one benchmark only (eval-hub-sdk's kind): no ``for_benchmark``."""

    def report_status(self, update: JobStatusUpdate) -> None:
        return None

    def report_results(self, results: JobResults) -> None:
        return None

    def create_oci_artifact(self, spec: OCIArtifactSpec) -> OCIArtifactResult:
        raise NotImplementedError


def test_group_members_report_under_their_own_index(recorder: EventRecorder) -> None:
    spec = JobSpec.model_validate(spec_data(recorder.url, group=GROUP))
    lead, member = spec.members()
    callbacks = DefaultCallbacks(spec, settings=AdapterSettings(callback_retry_seconds=5))
    try:
        assert callbacks_for_member(callbacks, lead, spec) is callbacks
        for each in (lead, member):
            callbacks_for_member(callbacks, each, spec).report_status(
                JobStatusUpdate(status=JobStatus.RUNNING)
            )
    finally:
        callbacks.close()
    assert [(e["benchmark_index"], e["id"]) for e in recorder.events()] == [(0, "b0"), (1, "b1")]

    single = Unroutable()
    assert callbacks_for_member(single, lead, spec) is single
    with pytest.raises(TypeError, match="for_benchmark"):
        callbacks_for_member(single, member, spec)


def test_results_go_under_the_run_dir_one_folder_per_group_member(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    alone = adapter_at(run_dir / "meta" / "job.json", spec_data())
    assert alone.results_dir() == alone.results_dir(alone.job_spec) == run_dir / "results"
    assert (run_dir / "results").is_dir()

    grouped = adapter_at(tmp_path / "group" / "meta" / "job.json", spec_data(group=GROUP))
    lead, member = grouped.job_spec.members()
    assert grouped.results_dir() == tmp_path / "group" / "results"
    assert grouped.results_dir(member) == tmp_path / "group" / "results" / "1-b1"
    assert grouped.results_dir(lead).is_dir() and grouped.results_dir(lead).name == "0-b0"


def test_without_a_run_dir_results_go_to_one_temporary_folder(tmp_path: Path) -> None:
    adapter = adapter_at(tmp_path / "elsewhere.json", spec_data(group=GROUP))
    assert adapter.local_jobs_base_path is None
    root = adapter.results_dir()
    try:
        assert root.is_dir() and not root.is_relative_to(tmp_path)
        assert adapter.results_dir(adapter.job_spec.members()[1]) == root / "1-b1"
    finally:
        shutil.rmtree(root)


def test_the_api_key_comes_from_the_secret_ref_locally_and_the_mount_in_k8s(tmp_path: Path) -> None:
    secret, mount = tmp_path / "secret", tmp_path / "mount"
    secret.mkdir()
    mount.mkdir()
    (secret / "api-key").write_text("sk-local\n")
    (mount / "api-key").write_text("api-key:ref\n")
    with_ref = JobSpec.model_validate(
        spec_data(model={"url": "http://h/v1", "name": "m", "auth": {"secret_ref": f"file://{secret}"}})
    )
    without = JobSpec.model_validate(spec_data())
    assert model_api_key(with_ref, EvalHubMode.LOCAL) == "sk-local"
    assert model_api_key(without, EvalHubMode.LOCAL) is None
    assert model_api_key(with_ref, EvalHubMode.K8S, secrets_dir=mount) == "api-key:ref"
    assert model_api_key(without, EvalHubMode.K8S, secrets_dir=mount) == "api-key:ref"
    (secret / "api-key").unlink()
    assert model_api_key(with_ref, EvalHubMode.LOCAL) is None
    assert model_api_key(without, EvalHubMode.K8S, secrets_dir=tmp_path / "absent") is None


def test_a_framework_version_is_read_from_its_installed_distribution() -> None:
    assert package_version("pydantic") == pydantic.VERSION
    assert package_version("no-such-distribution-anywhere") == "unknown"
