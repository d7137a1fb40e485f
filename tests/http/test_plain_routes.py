"""The requests every evaluation makes are served ahead of FastAPI's routing (assay.http.plain): a submit
(``POST /jobs`` and ``POST /api/v1/evaluations``) and an adapter's status event (``POST /jobs/{id}/events``). A JSON
body that is a valid request is taken there; every other body is answered by FastAPI's route, exactly as a hub
without the plain routes answers it. (The poll, ``GET /jobs/{id}``: tests/http/test_polled_route.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from assay.http.plain import PlainRoute, ValidatedBody
from tests.conftest import launch_headers
from tests.http.test_job_list_paging import A, J, submit
from tests.http.test_jobs_api import job
from tests.support.waiting import wait_for

_EVENTS = f"{J}/{{job_id}}/events"
_SUBMITS = ("/api/v1/evaluations", J)


def _plain_routes(client: TestClient) -> dict[str, PlainRoute]:
    routes = client.app.router.routes  # type: ignore[attr-defined]
    return {r.path: r for r in routes if isinstance(r, PlainRoute) and isinstance(r.endpoint, ValidatedBody)}


def _without_plain_routes(client: TestClient) -> TestClient:
    for route in _plain_routes(client).values():
        client.app.router.routes.remove(route)  # type: ignore[attr-defined]
    return client


def _count_fallbacks(route: PlainRoute) -> list[str]:
    """The paths the route handed to FastAPI's route (a counting wrapper around the real ``handle``)."""
    handed: list[str] = []
    fallback = route.endpoint._fallback  # type: ignore[attr-defined]
    real_handle = fallback.handle

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        handed.append(scope["path"])
        await real_handle(scope, receive, send)

    fallback.handle = counted
    return handed


def _answer(response: Any) -> tuple[int, Any, str | None]:
    body = response.json() if response.content else None
    if isinstance(body, dict):
        body.pop("trace", None)  # the request id
        if isinstance(body.get("resource"), dict):  # a job: its id and times are its own
            body = {"name": body.get("name"), "state": body.get("status", {}).get("state")}
    return response.status_code, body, response.headers.get("content-type")


def test_the_plain_routes_are_first_and_only_for_their_method(client: TestClient) -> None:
    plain = _plain_routes(client)
    assert set(plain) == {_EVENTS, *_SUBMITS}
    assert all(route.methods == {"POST"} for route in plain.values())
    assert client.get(J, headers=A).status_code == 200  # the list is FastAPI's
    assert client.put(J, headers=A).status_code == 405
    documented = client.get("/openapi.json").json()["paths"]  # what FastAPI's routes describe
    assert all("post" in documented[path] for path in (_EVENTS, *_SUBMITS))


def test_a_valid_submit_and_valid_events_are_taken_by_the_plain_routes(client: TestClient) -> None:
    plain = _plain_routes(client)
    submits, events = _count_fallbacks(plain[J]), _count_fallbacks(plain[_EVENTS])
    created = client.post(J, json=job(name="plain-submit"), headers={**A, "Idempotency-Key": "k-1"})
    assert created.status_code == 202, created.text
    assert created.headers["location"] == f"{J}/{created.json()['resource']['id']}"
    again = client.post(J, json=job(name="plain-submit"), headers={**A, "Idempotency-Key": "k-1"})
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["resource"]["id"] == created.json()["resource"]["id"]
    job_id = created.json()["resource"]["id"]
    benchmark = client.get(f"{J}/{job_id}", headers=A).json()["benchmarks"][0]
    running = {
        "benchmark_status_event": {
            "provider_id": benchmark["provider_id"],
            "id": benchmark["id"],
            "status": "running",
        }
    }
    headers = launch_headers(client, job_id, tenant="team-a")

    def running_now() -> bool:
        # Until dispatch records the launch its events are fenced as stale (204, nothing applied).
        answer = client.post(f"{J}/{job_id}/events", json=running, headers=headers)
        assert answer.status_code == 204, answer.text
        return bool(client.get(f"{J}/{job_id}", headers=A).json()["status"]["state"] == "running")

    wait_for(running_now, "the event to be applied")
    assert submits == [] and events == []  # every one of them taken by the plain routes
    # Not a job request, not an event: FastAPI's routes answer them.
    assert client.post(J, json={"name": "x"}, headers=A).status_code == 400
    assert client.post(f"{J}/{job_id}/events", json={"x": 1}, headers=headers).status_code == 400
    assert submits == [J] and events == [f"{J}/{job_id}/events"]
    metrics = client.get("/metrics").text
    for route, status in ((J, 202), (J, 400), (_EVENTS, 204), (_EVENTS, 400)):
        assert f'method="POST",route="{route}",status="{status}"' in metrics


def _same_answers(
    client: TestClient, plain: TestClient, url: str, cases: list[tuple[bytes, dict[str, str]]]
) -> None:
    for content, headers in cases:
        sent = {"Content-Type": "application/json", **headers}
        if not sent["Content-Type"]:
            del sent["Content-Type"]
        fast = client.post(url, content=content, headers=sent)
        slow = plain.post(url, content=content, headers=sent)
        assert _answer(fast) == _answer(slow), (url, content, headers)
        assert fast.status_code < 500


def _state(client: TestClient, job_id: str) -> str:
    return str(client.get(f"{J}/{job_id}", headers=A).json()["status"]["state"])


def test_every_other_event_is_answered_as_without_the_plain_route(
    make_client: Callable[..., TestClient],
) -> None:
    client, plain = make_client(), _without_plain_routes(make_client())
    job_id = submit(client, A, "event-refusals")
    launch = launch_headers(client, job_id, tenant="team-a")
    # Its run fails soon (the demo adapter is not installed here). Compared only once it is over: an event of a
    # well-formed body is 422 (no such benchmark) while the job runs and 204 (late) after, and the two routes
    # must not be asked either side of that moment.
    wait_for(lambda: _state(client, job_id) in ("completed", "failed", "cancelled"), "the job to end")
    event = b'{"benchmark_status_event": {"provider_id": "p", "id": "b", "status": "running"}}'
    bodies = [
        b'{"benchmark_status_event": {"provider_id": "p", "id": "b", "status": "bogus"}}',
        b'{"benchmark_status_event": {"provider_id": "p", "status": "running"}}',
        b'{"benchmark_status_event": {"id": "b", "status": "running", "benchmark_index": -1}}',
        b'{"benchmark_status_event": {"provider_id": "p", "id": "b", "status": "running", "progress": 2}}',
        b'{"benchmark_status_event": "running"}',
        b"[]",
        b"{",
        b"",
        b'{"benchmark_status_event": {"provider_id": "p", "id": "b", "status": "running",}}',
        event.decode().encode("utf-16"),
    ]
    content_types = ["text/plain", "", "application/problem+json", "application/json; charset=utf-8"]
    _same_answers(
        client,
        plain,
        f"{J}/{job_id}/events",
        [(body, launch) for body in bodies]
        + [(event, {**launch, "Content-Type": kind}) for kind in content_types],
    )
    # A launch's credential for another job, or none: refused before either route.
    other = launch_headers(client, "another-job", tenant="team-a")
    _same_answers(client, plain, f"{J}/{job_id}/events", [(event, other), (event, {})])


def test_every_other_submit_is_answered_as_without_the_plain_routes(
    make_client: Callable[..., TestClient], issue_token: Callable[..., dict[str, str]]
) -> None:
    client, plain = make_client(), _without_plain_routes(make_client())
    editor = {**A, **issue_token("ed", {"team-a": "editor"})}
    typo = job(benchmarks=[{"id": "no_such_benchmark", "provider_id": "demo", "wieght": 2}], tagz=["x"])
    bodies = [
        job(name=""),
        job(benchmarks=[]),
        job(benchmarks=[{"id": "no_such_benchmark", "provider_id": "demo"}]),  # valid, refused by the submit
        typo,  # an unknown field and an unknown reference named in one answer (the route's reference check)
        {"model": {"url": "http://127.0.0.1:9/v1", "name": "m"}},
        [],
    ]
    for url in _SUBMITS:
        _same_answers(client, plain, url, [(json.dumps(body).encode(), A) for body in bodies])
        _same_answers(
            client,
            plain,
            url,
            [(b"{", A), (b"", A), (json.dumps(job()).encode(), {**A, "Content-Type": "text/plain"})],
        )
        # Checked by the submit itself, the same function either way.
        trigger = json.dumps(job(custom={"trigger": "ci"})).encode()
        _same_answers(
            client,
            plain,
            url,
            [(trigger, editor), (json.dumps(job()).encode(), {**A, "Idempotency-Key": " "})],
        )
        _same_answers(client, plain, url, [(json.dumps(job()).encode(), {**A, "Authorization": ""})])
    # A valid submit: accepted alike (a job each).
    _same_answers(client, plain, J, [(json.dumps(job(name="alike")).encode(), A)])
