"""``GET /jobs/{job_id}``, what every client polls, is served ahead of FastAPI's routing (assay.http.jobs
.polled_routes) and answers exactly as the documented route: same document, same refusals, same labels."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

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
