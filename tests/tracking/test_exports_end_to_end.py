"""Exports end to end through the public API of a local hub: a real eval-hub-sdk adapter (the exact-match
fixture) runs two benchmarks, the job finishes, and the exporter logs it to a real MLflow server and pushes
the evaluation card and each benchmark's results to a real registry. Everything is read back from the
servers themselves: experiment, parent and child runs, metrics, the card artifact (MLflow client), and the
artifacts (oras), whose digests must be the ones in the job results. A redelivered ``evaluation.finished``
changes nothing; a registry that is down fails the export, not the job, and the sweep pushes it later."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cloudevents.http import CloudEvent
from evalhub.models.api import EvaluationOCIResults
from mlflow.tracking import MlflowClient

from assay.artifacts import OciRegistry
from assay.core.events import EVALUATION_FINISHED
from assay.exports import CARD_MEDIA_TYPE, build_exporter, card_bytes
from assay.lifecycle import handlers, start_function
from assay.settings import Settings
from assay.store import Database
from tests.conftest import FIXTURES, LiveServer
from tests.lifecycle.test_group_launch import grouped_provider
from tests.lifecycle.test_local_lifecycle import exact_match_provider, finished, job_body, submit
from tests.registry import DockerRegistry
from tests.support.waiting import wait_for
from tests.tracking.conftest import MlflowServer

REPOSITORY = "assay/evaluations"
TITLE = "org.opencontainers.image.title"


def _hub(
    start_hub: Callable[..., LiveServer], registry: DockerRegistry, tmp_path: Path, **overrides: Any
) -> LiveServer:
    return start_hub(
        exporter=build_exporter,
        oci_auth_config_path=registry.docker_config(tmp_path / "docker-config.json"),
        oci_insecure_registries=(registry.host,),
        **overrides,
    )


def _client(server: LiveServer) -> httpx.Client:
    client = server.client(timeout=30)
    assert client.post("/api/v1/evaluations/providers", json=exact_match_provider()).status_code == 201
    return client


def _exported(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """The job once every export it planned is done (fails the test on an abandoned one)."""

    def done() -> dict[str, Any] | None:
        job = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()
        exports = job["results"].get("exports") or {}
        assert all(e["status"] != "abandoned" for e in exports.values()), exports
        return job if exports and all(e["status"] == "done" for e in exports.values()) else None

    return dict(wait_for(done, timeout=timeout))


def _body(
    registry: DockerRegistry, experiment: str | None, num_examples: int | None = None
) -> dict[str, Any]:
    parameters = {"num_examples": num_examples} if num_examples else {}
    body = job_body(
        {"id": "qa", "provider_id": "exact", "parameters": parameters},
        {"id": "qa_f1", "provider_id": "exact", "parameters": parameters},
        exports={
            "oci": {
                "coordinates": {
                    "oci_host": registry.host,
                    "oci_repository": REPOSITORY,
                    "annotations": {"org.example.pipeline": "nightly"},
                }
            }
        },
    )
    if experiment is not None:
        body["experiment"] = {"name": experiment, "tags": [{"key": "team", "value": "qa"}]}
    return body


def test_an_experiment_needs_mlflow(start_hub: Callable[..., LiveServer]) -> None:
    client = _client(start_hub(exporter=build_exporter))
    body = job_body(experiment={"name": "nightly"})
    answer = client.post("/api/v1/evaluations/jobs", json=body)
    assert answer.status_code == 400
    assert answer.json()["message_code"] == "mlflow_required_for_experiment"
    assert answer.json()["errors"][0]["path"] == "experiment"


def test_a_finished_evaluation_lands_in_mlflow_and_the_registry(
    start_hub: Callable[..., LiveServer],
    mlflow_server: MlflowServer,
    registry: DockerRegistry,
    tmp_path: Path,
) -> None:
    server = _hub(start_hub, registry, tmp_path, mlflow_tracking_uri=mlflow_server.url)
    client = _client(server)
    job_id = submit(client, _body(registry, "nightly"))["resource"]["id"]
    assert finished(client, job_id)["status"]["state"] == "completed"
    job = _exported(client, job_id)
    results = job["results"]
    assert set(results["exports"]) == {"mlflow", "oci_card", "oci_benchmark_0", "oci_benchmark_1"}
    assert all(e["attempts"] == 1 for e in results["exports"].values())

    # -- MLflow, read back with its own client -------------------------------------------------------
    mlflow = MlflowClient(mlflow_server.url)
    experiment = mlflow.get_experiment_by_name("default/nightly")  # scoped per tenant
    assert experiment is not None
    assert experiment.tags["team"] == "qa"
    assert results["mlflow_experiment_id"] == experiment.experiment_id
    assert job["resource"]["mlflow_experiment_id"] == experiment.experiment_id  # where §5.1 puts it
    # A page a person opens (the UI), not the REST API EvalHub 1.0.2 returned.
    assert results["mlflow_experiment_url"] == f"{mlflow_server.url}/#/experiments/{experiment.experiment_id}"
    assert httpx.get(results["mlflow_experiment_url"].split("#")[0]).status_code == 200
    runs = mlflow.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`assay.evaluation_id` = '{job_id}'"
    )
    parents = [r for r in runs if r.data.tags["assay.role"] == "evaluation"]
    children = {
        int(r.data.tags["assay.benchmark_index"]): r for r in runs if r.data.tags["assay.role"] == "benchmark"
    }
    assert len(parents) == 1 and sorted(children) == [0, 1]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["composite_score"] == results["test"]["score"]
    assert parent.data.metrics["composite_pass"] == float(results["test"]["pass"])
    assert parent.data.metrics["composite_coverage"] == 1.0
    assert parent.data.tags["model.name"] == "recorded-model"
    assert parent.data.tags["evaluation_job_id"] == job_id
    for entry in results["benchmarks"]:
        child = children[entry["benchmark_index"]]
        assert entry["mlflow_run_id"] == child.info.run_id
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.params["benchmark"] == entry["id"]
        assert child.data.params["provider"] == "exact"
        assert child.data.params["fingerprint"] == entry["fingerprint"]
        for name in ("exact_match", "f1", "exact_match_stderr", "f1_stderr"):
            assert child.data.metrics[name] == entry["metrics"][name]
        assert child.data.metrics["test.primary_score"] == entry["test"]["primary_score"]
        assert parent.data.metrics[f"score/exact/{entry['id']}"] == entry["test"]["normalised_score"]
    card_path = mlflow.download_artifacts(parent.info.run_id, "evaluation-card.json", str(tmp_path))
    card = json.loads(Path(card_path).read_text())
    assert card["metadata"]["evaluation_job_id"] == job_id
    assert card["results"]["collection"]["test"] == results["test"]
    assert [b["metrics"] for b in card["results"]["benchmarks"]] == [
        b["metrics"] for b in results["benchmarks"]
    ]
    assert [b["fingerprint"] for b in card["context"]["benchmarks"]] == [
        b["fingerprint"] for b in results["benchmarks"]
    ]

    # -- OCI, pulled back with oras and verified against the digests in the job ----------------------
    oci = EvaluationOCIResults.model_validate(results["oci"])  # the shape eval-hub-sdk 1.0.6 reads
    assert oci.status is not None and oci.status.state == "done"
    assert oci.evaluation_card is not None
    reader = OciRegistry(auth_config_path=tmp_path / "docker-config.json", insecure_hosts=[registry.host])
    pulled = reader.pull(f"{registry.host}/{REPOSITORY}:{results['exports']['oci_card']['tag']}")
    assert pulled.digest == oci.evaluation_card.oci_digest
    assert (
        oci.evaluation_card.oci_reference
        == f"{registry.host}/{REPOSITORY}:{results['exports']['oci_card']['tag']}@{pulled.digest}"
    )
    assert pulled.manifest["artifactType"] == CARD_MEDIA_TYPE
    assert pulled.manifest["layers"][0]["mediaType"] == CARD_MEDIA_TYPE
    annotations = pulled.manifest["annotations"]
    assert annotations["io.github.eval-hub.job_id"] == job_id
    assert annotations["org.example.pipeline"] == "nightly"
    assert float(annotations["dev.assay.score"]) == results["test"]["score"]
    assert pulled.files["evaluation-card.json"] == card_bytes(card)  # the same card in both places
    for entry in results["benchmarks"]:
        artifact = reader.pull(entry["artifacts"]["oci_reference"])
        assert artifact.digest == entry["artifacts"]["oci_digest"]
        assert artifact.manifest["annotations"]["io.github.eval-hub.benchmark_id"] == entry["id"]
        assert json.loads(artifact.files["results.json"])["result"]["metrics"] == entry["metrics"]

    # -- a redelivered evaluation.finished, to another aggregate replica: nothing new anywhere ---------
    _redeliver_finished(server.settings, job_id)  # type: ignore[attr-defined]
    again = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()["results"]
    assert {k: (e["status"], e["attempts"]) for k, e in again["exports"].items()} == dict.fromkeys(
        results["exports"], ("done", 1)
    )
    assert again["oci"] == results["oci"]
    after = mlflow.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`assay.evaluation_id` = '{job_id}'"
    )
    assert len(after) == 3

    # -- a second evaluation of the same benchmarks: compared by the API and side by side in MLflow ----
    second = submit(client, _body(registry, "nightly", num_examples=2))["resource"]["id"]
    _exported(client, second)
    comparison = client.get(f"/api/v1/evaluations/jobs/{second}/compare", params={"baseline": job_id}).json()
    assert comparison["composite"]["baseline"] == results["test"]["score"]
    evaluations = mlflow.search_runs(
        [experiment.experiment_id], filter_string="tags.`assay.role` = 'evaluation'"
    )
    assert len(evaluations) == 2
    for name in ("composite_score", "score/exact/qa", "score/exact/qa_f1"):
        assert all(name in run.data.metrics for run in evaluations)


def _redeliver_finished(settings: Settings, job_id: str) -> None:
    async def deliver() -> None:
        assert settings.database_url
        database = await Database.open(settings.database_url)
        hub = start_function(settings, database, with_runtime=False, exporter=build_exporter(settings))
        try:
            event = CloudEvent(
                {"type": EVALUATION_FINISHED, "source": "/assay/default/aggregate", "id": "redelivered"},
                {"evaluation_id": job_id, "tenant": "default"},
            )
            await handlers.aggregate(hub.lifecycle, event)
        finally:
            await hub.close()
            await database.close()

    asyncio.run(deliver())


def test_a_registry_that_is_down_fails_the_export_not_the_job(
    start_hub: Callable[..., LiveServer], registry: DockerRegistry, tmp_path: Path
) -> None:
    server = _hub(
        start_hub,
        registry,
        tmp_path,
        sweep_interval_seconds=0.5,
        export_backoff_seconds=0.5,
        export_backoff_max_seconds=1.0,
        export_max_attempts=1000,
    )
    client = _client(server)
    registry.stop()
    job_id = submit(client, _body(registry, None))["resource"]["id"]
    job = finished(client, job_id)
    assert job["status"]["state"] == "completed"  # the export never holds the job back
    metrics = [b["metrics"] for b in job["results"]["benchmarks"]]

    def failed() -> dict[str, Any] | None:
        results = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()["results"]
        card = (results.get("exports") or {}).get("oci_card", {})
        return results if card.get("status") == "failed" and card.get("error") else None

    results = wait_for(failed, timeout=60)
    # What failed, not how the connection did: no port-scan oracle through the tenant's registry host.
    assert results["exports"]["oci_card"]["error"].startswith("The registry could not be reached")
    assert "Errno" not in results["exports"]["oci_card"]["error"]
    assert results["oci"]["status"]["state"] == "failed"
    assert results["oci"]["status"]["message"]["message_code"] == "oci_export_failed"
    assert "evaluation_card" not in results["oci"]
    assert [b["metrics"] for b in results["benchmarks"]] == metrics  # nothing lost
    assert results["test"] == job["results"]["test"]

    registry.start()  # the sweep (every 0.5 s here) pushes what failed
    done = _exported(client, job_id, timeout=60)["results"]
    assert done["exports"]["oci_card"]["attempts"] >= 2
    assert "error" not in done["exports"]["oci_card"]
    reader = OciRegistry(auth_config_path=tmp_path / "docker-config.json", insecure_hosts=[registry.host])
    card = done["oci"]["evaluation_card"]
    assert reader.pull(card["oci_reference"]).digest == card["oci_digest"]
    assert done["test"] == job["results"]["test"]


def test_a_retried_evaluation_is_exported_again_over_the_same_runs(
    start_hub: Callable[..., LiveServer],
    mlflow_server: MlflowServer,
    registry: DockerRegistry,
    tmp_path: Path,
) -> None:
    """A job finished, exported, then retried to a new result: the exports start over with the new card,
    the MLflow runs are updated in place (no duplicates), and the retried benchmark's artifact is pushed."""
    client = _client(_hub(start_hub, registry, tmp_path, mlflow_tracking_uri=mlflow_server.url))
    dataset = tmp_path / "late.jsonl"
    body = _body(registry, "retries")
    body["benchmarks"][1]["parameters"] = {"dataset": str(dataset)}  # missing: qa_f1 fails
    job_id = submit(client, body)["resource"]["id"]
    assert finished(client, job_id)["status"]["state"] == "partially_failed"
    first = _exported(client, job_id)["results"]
    assert set(first["exports"]) == {"mlflow", "oci_card", "oci_benchmark_0"}  # nothing to push for qa_f1
    assert first["test"]["coverage"] == 0.5
    mlflow = MlflowClient(mlflow_server.url)
    experiment = mlflow.get_experiment_by_name("default/retries")
    assert experiment is not None

    def runs_by_role() -> tuple[list[Any], dict[int, Any]]:
        runs = mlflow.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`assay.evaluation_id` = '{job_id}'"
        )
        parents = [r for r in runs if r.data.tags["assay.role"] == "evaluation"]
        children = {
            int(r.data.tags["assay.benchmark_index"]): r
            for r in runs
            if r.data.tags["assay.role"] == "benchmark"
        }
        return parents, children

    first_parents, first_children = runs_by_role()
    assert len(first_parents) == 1 and sorted(first_children) == [0, 1]  # the failure has its run too
    assert "f1" not in first_children[1].data.metrics
    assert first_parents[0].data.metrics["composite_coverage"] == 0.5

    dataset.write_text((FIXTURES / "adapters" / "exact_match" / "dataset.jsonl").read_text())
    assert client.post(f"/api/v1/evaluations/jobs/{job_id}/retry").status_code == 202

    def re_exported() -> dict[str, Any] | None:
        job = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()
        exports = job["results"].get("exports") or {}
        card = (job["results"].get("oci") or {}).get("evaluation_card") or {}
        fresh = card.get("oci_digest") not in (None, first["oci"]["evaluation_card"]["oci_digest"])
        settled = exports and all(e["status"] == "done" for e in exports.values())
        return job if job["status"]["state"] == "completed" and fresh and settled else None

    results = wait_for(re_exported, timeout=120)["results"]
    assert set(results["exports"]) == {"mlflow", "oci_card", "oci_benchmark_0", "oci_benchmark_1"}
    assert results["test"]["coverage"] == 1.0

    parents, children = runs_by_role()
    assert len(parents) == 1 and sorted(children) == [0, 1]
    # The same parent and benchmark runs, updated: not a second set beside the first.
    assert parents[0].info.run_id == first_parents[0].info.run_id
    assert {i: r.info.run_id for i, r in children.items()} == {
        i: r.info.run_id for i, r in first_children.items()
    }
    assert parents[0].data.metrics["composite_coverage"] == 1.0
    assert parents[0].data.metrics["composite_score"] == results["test"]["score"]
    retried = results["benchmarks"][1]
    assert retried["mlflow_run_id"] == children[1].info.run_id
    assert children[1].data.metrics["f1"] == retried["metrics"]["f1"]

    reader = OciRegistry(auth_config_path=tmp_path / "docker-config.json", insecure_hosts=[registry.host])
    card = results["oci"]["evaluation_card"]
    pulled = reader.pull(card["oci_reference"])
    assert pulled.digest == card["oci_digest"]
    assert (
        json.loads(pulled.files["evaluation-card.json"])["results"]["collection"]["test"] == results["test"]
    )
    artifact = reader.pull(retried["artifacts"]["oci_reference"])
    assert artifact.digest == retried["artifacts"]["oci_digest"]


def test_the_adapters_own_result_files_reach_mlflow_and_the_registry_and_nothing_else(
    start_hub: Callable[..., LiveServer],
    mlflow_server: MlflowServer,
    registry: DockerRegistry,
    tmp_path: Path,
) -> None:
    client = _client(_hub(start_hub, registry, tmp_path, mlflow_tracking_uri=mlflow_server.url))
    assert client.post("/api/v1/evaluations/providers", json=grouped_provider()).status_code == 201
    secret = tmp_path / "not-a-result.txt"
    secret.write_text("the hub must not upload this")
    body = _body(registry, "files")
    body["benchmarks"] = [
        {"id": "g0", "provider_id": "grouped", "parameters": {"score": 0.9, "also_report": str(secret)}},
        {"id": "g1", "provider_id": "grouped", "parameters": {"score": 0.4}},
    ]
    job_id = submit(client, body)["resource"]["id"]
    results = _exported(client, job_id)["results"]
    assert results["benchmarks"][0]["artifacts"]["elsewhere"] == str(secret)  # reported, and left alone

    mlflow = MlflowClient(mlflow_server.url)
    reader = OciRegistry(auth_config_path=tmp_path / "docker-config.json", insecure_hosts=[registry.host])
    for entry, score in zip(results["benchmarks"], (0.9, 0.4), strict=True):
        expected = {"benchmark": entry["id"], "score": score}
        listed = [a.path for a in mlflow.list_artifacts(entry["mlflow_run_id"], "adapter")]
        assert listed == ["adapter/samples.jsonl"]
        local = mlflow.download_artifacts(entry["mlflow_run_id"], "adapter/samples.jsonl", str(tmp_path))
        assert json.loads(Path(local).read_text()) == expected
        pulled = reader.pull(entry["artifacts"]["oci_reference"])
        assert pulled.digest == entry["artifacts"]["oci_digest"]
        assert sorted(pulled.files) == ["results.json", "samples.jsonl"]
        assert json.loads(pulled.files["samples.jsonl"]) == expected
        layer = next(x for x in pulled.manifest["layers"] if x["annotations"][TITLE] == "samples.jsonl")
        assert layer["mediaType"] == "application/x-ndjson"
