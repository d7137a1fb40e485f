"""``GET /jobs/{job_id}``, what every client polls, is served ahead of FastAPI's routing (assay.http.jobs
.polled_routes) and answers exactly as the documented route: same document, same refusals, same labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from assay.store.evaluations import EvaluationRepository
from tests.conftest import launch_headers
from tests.http.test_bad_input import P, idle_provider, job_body
from tests.http.test_job_list_paging import A, B, J, submit
from tests.support.waiting import wait_for


def test_the_polled_route_answers_as_the_documented_one(client: TestClient) -> None:
    first = client.app.router.routes[0]  # type: ignore[attr-defined]
    assert first.path == f"{J}/{{job_id}}" and first.methods == {"GET"}
    job_id = submit(client, A, "polled")

    got = client.get(f"{J}/{job_id}", headers=A)
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    listed = client.get(J, headers=A).json()["items"]
    assert got.json()["resource"]["id"] == job_id and job_id in {item["resource"]["id"] for item in listed}
    # Another tenant's job, a missing one, no credential, another method: refused as before.
    assert client.get(f"{J}/{job_id}", headers=B).status_code == 404
    assert client.get(f"{J}/nope", headers=A).json()["message_code"] == "resource_not_found"
    assert client.get(f"{J}/{job_id}", headers={**A, "Authorization": ""}).status_code == 401
    assert client.head(f"{J}/{job_id}", headers=A).status_code == 405
    # The access log and the metrics name the route's template, not the job.
    metrics = client.get("/metrics").text
    assert f'method="GET",route="{J}/{{job_id}}",status="200"' in metrics
    # What /openapi.json documents is the same function.
    assert "get" in client.get("/openapi.json").json()["paths"][f"{J}/{{job_id}}"]


def test_a_poll_answers_from_its_last_rendering_only_while_the_job_is_unchanged(client: TestClient) -> None:
    job_id = submit(client, A, "polled-again")
    url = f"{J}/{job_id}"
    # Its dispatch changes it (a claim): wait until two polls in a row agree, then it stays as it is.
    wait_for(lambda: client.get(url, headers=A).content == client.get(url, headers=A).content, "dispatch")
    first = client.get(url, headers=A)  # rendered and kept
    assert client.get(url, headers=A).content == first.content  # unchanged: the same bytes
    assert client.delete(url, headers=A).status_code == 204  # cancelled: the job's counter moves
    cancelled = client.get(url, headers=A).json()
    assert cancelled["status"]["state"] == "cancelled" and first.json()["status"]["state"] != "cancelled"
    assert client.get(url, headers=B).status_code == 404  # another tenant still sees nothing
    assert client.delete(url, headers=A, params={"hard_delete": "true"}).status_code == 204
    gone = client.get(url, headers=A)  # its rendering is still kept: the read says it is gone
    assert gone.status_code == 404 and gone.json()["message_code"] == "resource_not_found"


def test_a_first_poll_from_memory_is_what_a_fresh_read_renders(
    make_client: Callable[..., TestClient], database_url: str
) -> None:
    """A job this process created and changed is shown from its memory when one statement says the job's counter
    has not moved; otherwise, and for anyone else, as read."""
    client, other = make_client(), make_client()  # two hubs on one database: the other remembers nothing
    job_id = submit(client, A, "remembered")
    url = f"{J}/{job_id}"
    wait_for(
        lambda: client.get(f"{J}/{job_id}", headers=A).json()["status"]["state"] != "pending", "dispatch"
    )
    again = submit(client, A, "remembered-too")  # its first poll below is from memory
    assert (
        client.get(f"{J}/{again}", headers=B).status_code == 404
    )  # another tenant: memory is not its answer
    shown = client.get(f"{J}/{again}", headers=A)
    assert shown.status_code == 200 and shown.json() == other.get(f"{J}/{again}", headers=A).json()
    assert client.get(url, headers=A).json() == other.get(url, headers=A).json()
    third = submit(client, A, "changed-elsewhere")
    with psycopg.connect(database_url, autocommit=True) as conn:  # another process's change moves the counter
        conn.execute(
            "UPDATE evaluations SET message = %s, version = version + 1 WHERE id = %s",
            [Jsonb({"message": "changed elsewhere", "message_code": "elsewhere"}), third],
        )
    shown = client.get(f"{J}/{third}", headers=A).json()
    assert shown["status"]["message"]["message_code"] == "elsewhere", shown["status"]
    assert shown == other.get(f"{J}/{third}", headers=A).json()


def test_a_poll_after_this_process_changed_the_job_is_answered_from_memory(
    make_client: Callable[..., TestClient], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poll after a change this process made (an adapter's status event here; in the wire bench also the
    aggregate) asks the database only whether the job is still at the version memory holds: no row comes back,
    and what is shown is what a fresh read renders. A change made elsewhere after it comes back from the same
    statement."""
    client, other = make_client(), make_client()  # two hubs on one database: the other remembers nothing
    provider = client.post(P, json=idle_provider(), headers=A)  # its process sleeps: no event but ours
    assert provider.status_code == 201, provider.text
    pid, benchmark = provider.json()["resource"]["id"], provider.json()["benchmarks"][0]["id"]
    created = client.post(J, json=job_body(benchmarks=[{"id": benchmark, "provider_id": pid}]), headers=A)
    assert created.status_code == 202, created.text
    job_id = created.json()["resource"]["id"]
    url = f"{J}/{job_id}"
    assert client.get(url, headers=A).status_code == 200  # rendered at a first version
    running = {"benchmark_status_event": {"provider_id": pid, "id": benchmark, "status": "running"}}

    def taken() -> bool:
        # Until dispatch has recorded the launch its events are fenced as stale (204, nothing applied). The state
        # is read by the other hub, so that this one's rendering stays the first.
        client.post(f"{url}/events", json=running, headers=launch_headers(client, job_id, tenant="team-a"))
        return bool(other.get(url, headers=A).json()["status"]["state"] == "running")

    wait_for(taken, "the event to be applied")
    answers: list[bool] = []  # per statement: did a whole job come back?
    real = EvaluationRepository.changed_since

    async def counted(self: EvaluationRepository, evaluation_id: str, version: int) -> Any:
        changed = await real(self, evaluation_id, version)
        answers.append(changed is not None)
        return changed

    monkeypatch.setattr(EvaluationRepository, "changed_since", counted)
    shown = client.get(url, headers=A).json()
    assert shown["status"]["state"] == "running" and shown == other.get(url, headers=A).json()
    assert answers[0] is False  # this hub: the counter only, the job from memory
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE evaluations SET message = %s, version = version + 1 WHERE id = %s",
            [Jsonb({"message": "changed elsewhere", "message_code": "elsewhere"}), job_id],
        )
    shown = client.get(url, headers=A).json()
    assert shown["status"]["message"]["message_code"] == "elsewhere" and answers[-1] is True
    assert shown == other.get(url, headers=A).json()
    assert client.get(url, headers=B).status_code == 404  # another tenant: neither memory nor rendering
