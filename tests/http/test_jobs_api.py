"""The jobs API refuses what cannot run, up front and naming each field, and freezes what it accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from assay.http import create_app
from assay.settings import Settings
from tests.conftest import ADMIN, launch_headers
from tests.support.net import free_port
from tests.support.waiting import wait_for

MODEL = {"url": "http://127.0.0.1:9/v1", "name": "m"}


def job(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "j",
        "model": MODEL,
        "benchmarks": [{"id": "bench_a", "provider_id": "demo"}],
    }
    body.update(overrides)
    return body


def refused(client: TestClient, body: Any, status: int = 400) -> dict[str, Any]:
    response = client.post("/api/v1/evaluations/jobs", json=body)
    assert response.status_code == status, response.text
    return dict(response.json())


def paths(error: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["path"], e["code"]) for e in error["errors"]]


def test_malformed_jobs_name_every_problem(client: TestClient) -> None:
    error = refused(client, job(pass_critera={"threshold": 0.5}, model={"name": "m", "url": "not a url"}))
    assert ("pass_critera", "unknown_field") in paths(error)
    assert ("model.url", "invalid") in paths(error)
    assert "benchmarks or a collection" in refused(client, {"name": "j", "model": MODEL})["message"]
    both = job(collection={"id": "demo-suite"})
    assert "not both" in refused(client, both)["message"]
    assert "at least one" in refused(client, job(benchmarks=[]))["message"]
    negative = refused(client, job(benchmarks=[{"id": "bench_a", "provider_id": "demo", "weight": -1}]))
    assert ("benchmarks[0].weight", "min") in paths(negative)
    oci = {
        "oci": {"coordinates": {"oci_host": "r.example", "oci_repository": "Team/Evals", "oci_tag": "v1/x"}}
    }
    bad_oci = paths(refused(client, job(exports=oci)))
    assert ("exports.oci.coordinates.oci_repository", "pattern") in bad_oci, bad_oci
    assert ("exports.oci.coordinates.oci_tag", "pattern") in bad_oci, bad_oci
    # A raw score where the composite's [0, 1] belongs:
    composite = refused(client, job(pass_criteria={"threshold": 40}))
    assert "normalised composite scale" in composite["message"]


def test_references_are_checked_before_anything_is_stored(client: TestClient) -> None:
    missing_provider = refused(client, job(benchmarks=[{"id": "x", "provider_id": "nope"}]), 404)
    assert missing_provider["message_code"] == "resource_not_found"
    missing_benchmark = refused(client, job(benchmarks=[{"id": "nope", "provider_id": "demo"}]))
    assert missing_benchmark["message_code"] == "resource_does_not_exist"
    assert paths(missing_benchmark) == [("benchmarks[0].id", "resource_does_not_exist")]
    assert (
        refused(client, job(collection={"id": "nope"}, benchmarks=None), 404)["message_code"]
        == "resource_not_found"
    )
    stray = job(
        benchmarks=None,
        collection={"id": "demo-suite", "benchmarks": [{"id": "latency", "provider_id": "demo"}]},
    )
    assert paths(refused(client, stray)) == [("collection.benchmarks[0]", "resource_does_not_exist")]
    no_url = refused(client, job(model={"name": "m"}))
    assert no_url["message_code"] == "model_url_required"
    experiment = refused(client, job(experiment={"name": "e"}))
    assert experiment["message_code"] == "mlflow_required_for_experiment"
    assert client.get("/api/v1/evaluations/jobs").json()["total_count"] == 0


def test_a_provider_that_cannot_run_locally_is_accepted_and_failed_at_once(client: TestClient) -> None:
    """As EvalHub: 202, then the job fails with local_runtime_not_enabled (eval-hub-sdk's own end-to-end
    tests submit such a job and expect it accepted)."""
    provider = {
        "id": "k8s-only",
        "name": "Cluster only",
        "runtime": {"k8s": {"image": "quay.io/x/y:1"}},
        "benchmarks": [{"id": "b", "name": "B", "category": "c"}],
    }
    assert client.post("/api/v1/evaluations/providers", json=provider).status_code == 201
    accepted = client.post(
        "/api/v1/evaluations/jobs", json=job(benchmarks=[{"id": "b", "provider_id": "k8s-only"}])
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["resource"]["id"]

    def failed() -> dict[str, Any] | None:
        body = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()
        return body if body["status"]["state"] == "failed" else None

    body = wait_for(failed, timeout=30)
    error = body["status"]["benchmarks"][0]["error_message"]
    assert error["message_code"] == "local_runtime_not_enabled"
    assert error["message_origin"] == "server"
    assert "Local runtime is not enabled for provider 'k8s-only'" in error["message"]
    assert body["results"]["test"]["pass"] is False


def test_a_collection_job_is_frozen_at_submission(client: TestClient) -> None:
    collection = {
        "id": "mine",
        "name": "Mine",
        "category": "general",
        "pass_criteria": {"threshold": 0.7},
        "benchmarks": [
            {"id": "bench_a", "provider_id": "demo", "weight": 2, "parameters": {"shots": 1}},
            {"id": "bench_b", "provider_id": "demo"},
        ],
    }
    assert client.post("/api/v1/evaluations/collections", json=collection).status_code == 201
    body = job(
        benchmarks=None,
        collection={
            "id": "mine",
            "benchmarks": [
                {
                    "id": "bench_b",
                    "provider_id": "demo",
                    "parameters": {"num_examples": 5, "x": 1},
                    "weight": 0,
                }
            ],
        },
    )
    accepted = client.post("/api/v1/evaluations/jobs", json=body)
    assert accepted.status_code == 202, accepted.text
    created = accepted.json()
    plan = created["plan"]
    # The override reached only the benchmark it names, and its weight was honoured.
    assert plan["benchmarks"][0]["parameters"] == {"shots": 1}
    assert plan["benchmarks"][1]["parameters"] == {"x": 1} and plan["benchmarks"][1]["num_examples"] == 5
    assert [b["weight"] for b in plan["benchmarks"]] == [2, 0]
    assert plan["pass_criteria"] == {"threshold": 0.7, "source": "collection"}
    assert created["collection"]["collection_updated_at"]

    client.patch("/api/v1/evaluations/collections/mine", json={"pass_criteria": {"threshold": 0.9}})
    assert client.delete("/api/v1/evaluations/collections/mine").status_code == 204
    again = client.get(f"/api/v1/evaluations/jobs/{created['resource']['id']}").json()
    assert again["plan"] == plan  # editing or deleting the collection changes nothing for this job
    listed = client.get("/api/v1/evaluations/jobs", params={"collection_id": "mine"}).json()
    assert listed["total_count"] == 1


def test_an_adapter_command_that_does_not_exist_fails_the_benchmark_with_its_exit_code(
    client: TestClient,
) -> None:
    created = client.post("/api/v1/evaluations/jobs", json=job()).json()  # demo runs `python -m demo_adapter`

    def failed() -> dict[str, Any] | None:
        body = client.get(f"/api/v1/evaluations/jobs/{created['resource']['id']}").json()
        return body if body["status"]["state"] == "failed" else None

    body = wait_for(failed, timeout=30)
    error = body["status"]["benchmarks"][0]["error_message"]
    assert error["message_code"] == "adapter_exit_nonzero"
    assert error["message_origin"] == "runtime"
    assert "/benchmarks/0/logs" in error["message"]
    logs = client.get(f"/api/v1/evaluations/jobs/{created['resource']['id']}/benchmarks/0/logs").text
    assert "demo_adapter" in logs  # Python's "No module named demo_adapter"
    # Not an index: 404, whatever Unicode calls a digit ("³" is one to str.isdigit, not to int: it was a 500).
    for odd in ("%C2%B3", "%D9%A3", "-1", "x", "9" * 5000):  # int() refuses over 4300 digits: a 500 too
        answer = client.get(f"/api/v1/evaluations/jobs/{created['resource']['id']}/benchmarks/{odd}/logs")
        assert answer.status_code == 404, (odd, answer.status_code, answer.text)


def test_query_parameters_of_jobs_are_checked(client: TestClient) -> None:
    assert client.get("/api/v1/evaluations/jobs", params={"limit": "0"}).status_code == 400
    assert (
        client.get("/api/v1/evaluations/jobs", params={"bogus": "1"}).json()["message_code"]
        == "query_bad_parameter"
    )
    created = client.post("/api/v1/evaluations/jobs", json=job()).json()
    bad = client.delete(
        f"/api/v1/evaluations/jobs/{created['resource']['id']}", params={"hard_delete": "maybe"}
    )
    assert bad.status_code == 400
    assert client.delete("/api/v1/evaluations/jobs/nope").status_code == 404
    assert client.post("/api/v1/evaluations/jobs/nope/retry").status_code == 404


def test_a_committed_job_is_202_even_when_the_broker_is_down(
    settings_for: Callable[..., Settings], database_url: str
) -> None:
    settings = settings_for(mode="cluster", k_sink=f"http://127.0.0.1:{free_port()}/")
    with TestClient(create_app(settings, "submit", lifecycle="function"), headers=ADMIN) as submit:
        accepted = submit.post("/api/v1/evaluations/jobs", json=job(), headers={"X-Tenant": "team-a"})
        assert accepted.status_code == 202, accepted.text
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT type, published_at, attempts, last_error FROM outbox").fetchone()
    assert row is not None
    kind, published, attempts, error = row
    assert kind == "dev.assay.evaluation.accepted.v1"
    assert published is None and attempts == 1 and "ConnectError" in error  # the sweep will republish it


def test_concurrent_submissions_with_one_idempotency_key_make_one_job(live_hub: Any) -> None:
    import concurrent.futures

    import httpx

    def post() -> tuple[int, str]:
        answer = httpx.post(
            f"{live_hub.url}/api/v1/evaluations/jobs",
            json=job(),
            headers={"Idempotency-Key": "race", **live_hub.headers},
            timeout=30,
        )
        return answer.status_code, answer.json()["resource"]["id"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(), range(8)))
    assert {status for status, _ in answers} == {202}
    assert len({job_id for _, job_id in answers}) == 1
    assert (
        httpx.get(f"{live_hub.url}/api/v1/evaluations/jobs", headers=live_hub.headers, timeout=30).json()[
            "total_count"
        ]
        == 1
    )


def test_a_polled_job_is_never_served_stale(client: TestClient, database_url: str) -> None:
    quiet = {  # an adapter that only waits: every change below comes from this test
        "id": "quiet",
        "name": "Quiet",
        "runtime": {"local": {"command": "sleep 30"}},
        "benchmarks": [{"id": "latency", "name": "L", "category": "c", "metrics": ["ms"]}],
    }
    assert client.post("/api/v1/evaluations/providers", json=quiet).status_code == 201
    created = client.post(
        "/api/v1/evaluations/jobs", json=job(benchmarks=[{"id": "latency", "provider_id": "quiet"}])
    ).json()
    url = f"/api/v1/evaluations/jobs/{created['resource']['id']}"

    def spawned() -> bool:  # dispatch and the runtime change the job once, in the background
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT runtime_ref FROM benchmark_runs").fetchone()
        return row is not None and row[0] is not None

    wait_for(spawned, timeout=30)
    first = client.get(url).json()
    assert client.get(url).json() == first  # the rendered copy is reused while nothing changed
    event = {
        "benchmark_status_event": {
            "provider_id": "quiet",
            "id": "latency",
            "status": "running",
            "phase": "loading_data",
            "progress": 0.25,
        }
    }
    signed = launch_headers(client, created["resource"]["id"])
    assert client.post(f"{url}/events", json=event, headers=signed).status_code == 204
    after = client.get(url).json()
    assert after["status"]["benchmarks"][0]["phase"] == "loading_data"
    assert after["status"]["benchmarks"][0]["progress"] == 0.25
    assert client.get(url, headers={"X-Tenant": "team-b"}).status_code == 404  # cached copies are per tenant
    client.delete(url, params={"hard_delete": "true"})
    assert client.get(url).status_code == 404
