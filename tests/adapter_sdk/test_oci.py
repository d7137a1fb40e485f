"""OCI artifacts are pushed as eval-hub-sdk pushes them: through the sidecar when there is one, straight to
a plain-HTTP registry with OCI_INSECURE, always naming the real registry in the reference."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from adapters.sdk import (
    AdapterSettings,
    DefaultCallbacks,
    EvaluationResult,
    JobResults,
    JobSpec,
    OCIArtifactSpec,
    OCICoordinates,
    OCIPushError,
)
from tests.adapter_sdk.oci_registry import running_registry
from tests.support.recorders import EventRecorder

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def spec_for(callback_url: str) -> JobSpec:
    return JobSpec.model_validate(
        {
            "id": "job-oci",
            "provider_id": "prov",
            "benchmark_id": "bench",
            "benchmark_index": 3,
            "model": {"name": "m"},
            "parameters": {},
            "callback_url": callback_url,
        }
    )


def results_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "results.json").write_text('{"accuracy": 0.5}')
    (folder / "samples.jsonl").write_text('{"i": 0}\n')
    return folder


def test_push_through_the_sidecar_names_the_real_registry(recorder: EventRecorder, tmp_path: Path) -> None:
    with running_registry() as sidecar:
        settings = AdapterSettings.from_env({"EVALHUB_SIDECAR_URL": sidecar.url})
        callbacks = DefaultCallbacks(spec_for(recorder.url), settings=settings)
        coordinates = OCICoordinates(
            oci_host="registry.example.invalid",
            oci_repository="org/evals",
            annotations={"io.github.eval-hub.benchmark_id": "renamed", "team": "a"},
        )
        pushed = callbacks.create_oci_artifact(
            OCIArtifactSpec(files_path=results_dir(tmp_path), coordinates=coordinates)
        )

        tag = "evalhub-" + hashlib.sha256(b"job-oci:prov:bench:3").hexdigest()
        assert pushed.reference == f"registry.example.invalid/org/evals:{tag}@{pushed.digest}"
        assert set(sidecar.hosts) == {sidecar.url.removeprefix("http://")}  # nothing went elsewhere
        manifest_bytes = sidecar.manifests[("org/evals", tag)]
        assert pushed.digest == "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
        manifest = json.loads(manifest_bytes)
        assert manifest["artifactType"] == "application/vnd.eval-hub.github.io"
        assert manifest["annotations"]["io.github.eval-hub.job_id"] == "job-oci"
        assert manifest["annotations"]["io.github.eval-hub.provider_id"] == "prov"
        assert manifest["annotations"]["io.github.eval-hub.benchmark_id"] == "renamed"  # the user's wins
        assert manifest["annotations"]["team"] == "a"
        assert len(manifest["layers"]) == 2
        assert all(layer["digest"] in sidecar.blobs for layer in manifest["layers"])

        callbacks.report_results(
            JobResults(
                id="job-oci",
                benchmark_id="bench",
                benchmark_index=3,
                model_name="m",
                results=[EvaluationResult(metric_name="accuracy", metric_value=0.5)],
                oci_artifact=pushed,
            )
        )
    artifacts = recorder.events()[-1]["artifacts"]
    assert (artifacts["oci_reference"], artifacts["oci_digest"]) == (pushed.reference, pushed.digest)


def test_push_straight_to_a_plain_http_registry_with_oci_insecure(
    recorder: EventRecorder, tmp_path: Path
) -> None:
    with running_registry() as registry:
        host = registry.url.removeprefix("http://")
        settings = AdapterSettings.from_env({"OCI_INSECURE": "true"})
        callbacks = DefaultCallbacks(spec_for(recorder.url), settings=settings)
        coordinates = OCICoordinates(oci_host=host, oci_repository="org/evals", oci_tag="run-1")
        pushed = callbacks.create_oci_artifact(
            OCIArtifactSpec(files_path=results_dir(tmp_path), coordinates=coordinates)
        )
        assert pushed.reference == f"{host}/org/evals:run-1@{pushed.digest}"
        assert ("org/evals", "run-1") in registry.manifests


def test_a_failed_push_names_the_reference(recorder: EventRecorder, tmp_path: Path) -> None:
    # The events recorder is no registry: it answers the upload POST without a Location.
    host = recorder.url.removeprefix("http://")
    callbacks = DefaultCallbacks(
        spec_for(recorder.url), settings=AdapterSettings.from_env({"OCI_INSECURE": "1"})
    )
    coordinates = OCICoordinates(oci_host=host, oci_repository="org/evals", oci_tag="t")
    with pytest.raises(OCIPushError, match=rf"pushing {host}/org/evals:t via {host}/org/evals:t failed"):
        callbacks.create_oci_artifact(
            OCIArtifactSpec(files_path=results_dir(tmp_path), coordinates=coordinates)
        )
    with pytest.raises(OCIPushError, match="is not a directory"):
        callbacks.create_oci_artifact(
            OCIArtifactSpec(files_path=tmp_path / "absent", coordinates=coordinates)
        )
