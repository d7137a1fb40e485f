"""The MLflow tracker and the OCI registry client against the real servers: experiments got or created under
concurrency and after a delete, runs found again by their tags, artifacts pushed with credentials from a
docker config and pulled back digest-verified, and failures that are quick and say what went wrong."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from assay.artifacts import ArtifactFile, OciRegistry, PushFailed
from assay.tracking import MlflowTracker, metric_name
from tests.registry import DockerRegistry
from tests.tracking.conftest import MlflowServer


def test_concurrent_exporters_get_one_experiment(mlflow_server: MlflowServer) -> None:
    name = f"race-{time.monotonic_ns()}"

    def get_or_create(_: int) -> str:
        # One tracker (one client) per worker, as separate exporter processes would have.
        return MlflowTracker(mlflow_server.url).experiment(name, {"team": "qa"})

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(get_or_create, range(6)))
    assert len(ids) == 1
    experiment = MlflowClient(mlflow_server.url).get_experiment(ids.pop())
    assert experiment.name == name
    assert experiment.tags["team"] == "qa"


def test_a_deleted_experiment_is_restored_not_a_failure(mlflow_server: MlflowServer) -> None:
    tracker = MlflowTracker(mlflow_server.url)
    name = f"deleted-{time.monotonic_ns()}"
    first = tracker.experiment(name, {})
    MlflowClient(mlflow_server.url).delete_experiment(first)
    again = tracker.experiment(name, {"assay.tenant": "default"})
    experiment = MlflowClient(mlflow_server.url).get_experiment(again)
    assert again == first
    assert experiment.lifecycle_stage == "active"
    assert experiment.tags["assay.tenant"] == "default"


def test_runs_are_found_again_by_their_tags(mlflow_server: MlflowServer) -> None:
    tracker = MlflowTracker(mlflow_server.url, ui_url="https://mlflow.example")
    experiment = tracker.experiment(f"runs-{time.monotonic_ns()}", {})
    tags = {"assay.evaluation_id": "job-1", "assay.role": "evaluation"}
    parent = tracker.run(experiment, None, name="job", tags=tags)
    # A lost run id (the exporter crashed before recording it): the tags find the same run.
    assert tracker.run(experiment, None, name="job", tags=tags) == parent
    assert tracker.run(experiment, parent, name="job", tags=tags) == parent
    child = tracker.run(
        experiment, None, name="b", tags={**tags, "assay.role": "benchmark"}, parent_run_id=parent
    )
    tracker.log(child, params={"p": "x" * 7000}, metrics={"acc@1 (%)": 0.5}, tags={}, timestamp_ms=0)
    run = MlflowClient(mlflow_server.url).get_run(child)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.metrics == {metric_name("acc@1 (%)"): 0.5}
    assert len(run.data.params["p"]) == 6000  # clipped to MLflow's limit instead of failing the export
    assert tracker.experiment_url(experiment) == f"https://mlflow.example/#/experiments/{experiment}"


def test_push_and_pull_with_docker_config_credentials(registry: DockerRegistry, tmp_path: Path) -> None:
    client = OciRegistry(
        auth_config_path=registry.docker_config(tmp_path / "config.json"), insecure_hosts=[registry.host]
    )
    card = json.dumps({"hello": "card"}).encode()
    pushed = client.push(
        registry.host,
        "assay/cards",
        "v1",
        [ArtifactFile("evaluation-card.json", card, "application/vnd.eval-hub.evaluation-card.v1+json")],
        artifact_type="application/vnd.eval-hub.evaluation-card.v1+json",
        annotations={"io.github.eval-hub.job_id": "job-1"},
    )
    assert pushed.reference == f"{registry.host}/assay/cards:v1@{pushed.digest}"
    again = client.push(
        registry.host,
        "assay/cards",
        "v1",
        [ArtifactFile("evaluation-card.json", card, "application/vnd.eval-hub.evaluation-card.v1+json")],
        artifact_type="application/vnd.eval-hub.evaluation-card.v1+json",
        annotations={"io.github.eval-hub.job_id": "job-1"},
    )
    assert again.digest == pushed.digest  # same content, same artifact
    pulled = client.pull(pushed.reference)
    assert pulled.digest == pushed.digest
    assert pulled.files == {"evaluation-card.json": card}
    assert pulled.manifest["artifactType"] == "application/vnd.eval-hub.evaluation-card.v1+json"
    assert pulled.manifest["annotations"] == {"io.github.eval-hub.job_id": "job-1"}


def test_push_failures_are_quick_and_name_the_cause(registry: DockerRegistry) -> None:
    anonymous = OciRegistry(insecure_hosts=[registry.host], timeout=5)
    files = [ArtifactFile("a.json", b"{}")]
    with pytest.raises(PushFailed, match="HTTP 401"):
        anonymous.push(registry.host, "assay/x", "t", files, artifact_type="application/json", annotations={})
    registry.stop()
    started = time.monotonic()
    with pytest.raises(PushFailed, match="unreachable"):
        anonymous.push(registry.host, "assay/x", "t", files, artifact_type="application/json", annotations={})
    # oras alone would retry for minutes; the sweep retries instead.
    assert time.monotonic() - started < 10


def test_links_in_job_results_never_carry_credentials_of_the_tracking_uri() -> None:
    tracker = MlflowTracker("https://robot:s3cret@mlflow.example:5000/")
    assert tracker.tracking_uri == "https://robot:s3cret@mlflow.example:5000"  # the client still uses them
    for url in (tracker.experiment_url("3"), tracker.run_url("3", "abc"), tracker.public_tracking_uri):
        assert "s3cret" not in url and "robot" not in url and url.startswith("https://mlflow.example:5000")
    assert MlflowTracker("http://[::1]:5000", "http://u:p@[::1]:8080").ui_url == "http://[::1]:8080"
