"""The shared helpers themselves: the recorder answers as planned and as the hub does, a threaded server
serves and stops, and a wait names what it waited for (and what a server that died said)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support.net import free_port
from tests.support.recorders import DROP, recording
from tests.support.servers import ThreadedServer
from tests.support.waiting import wait_for, wait_for_server

EVENT = {"benchmark_status_event": {"benchmark_index": 0, "status": "running"}}


def test_the_recorder_answers_as_planned_then_as_the_hub_does() -> None:
    with recording() as recorder, httpx.Client(base_url=recorder.url, timeout=10) as http:
        recorder.plan((503, {"Retry-After": "2"}), DROP)
        recorder.missing_jobs.add("ghost")
        refused = http.post("/api/v1/evaluations/jobs/j1/events", json=EVENT)
        with pytest.raises(httpx.TransportError):
            http.post("/api/v1/evaluations/jobs/j1/events", json=EVENT)
        missing = http.post("/api/v1/evaluations/jobs/ghost/events", json=EVENT)
        accepted = http.post("/api/v1/evaluations/jobs/j1/events", json=EVENT)
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "2")
    assert refused.json()["message_code"] == "test_refusal"
    assert (missing.status_code, missing.json()["message"]) == (404, "job ghost not found")
    assert (accepted.status_code, accepted.content) == (204, b"")
    assert [r.answer for r in recorder.requests] == [503, None, 404, 204]
    assert [r.job_id for r in recorder.accepted] == ["j1"]
    assert recorder.events() == [EVENT["benchmark_status_event"]]
    assert recorder.events(1) == []


def test_the_recorder_can_be_waited_on_and_started_on_a_chosen_port() -> None:
    port = free_port()
    with recording(port) as recorder:
        assert recorder.url == f"http://127.0.0.1:{port}"
        httpx.post(f"{recorder.url}/api/v1/evaluations/jobs/j1/events", json=EVENT, timeout=10)
        assert recorder.wait_for(lambda events: len(events) == 1, timeout=10) == [
            EVENT["benchmark_status_event"]
        ]
        with pytest.raises(AssertionError, match="condition not met"):
            recorder.wait_for(lambda events: len(events) == 2, timeout=0.1)


def test_a_threaded_server_serves_until_stopped() -> None:
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("up"))])
    with ThreadedServer(app) as server:
        assert httpx.get(server.url, timeout=10).text == "up"
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url, timeout=10)


def test_a_wait_returns_the_value_or_names_what_it_waited_for() -> None:
    values = iter([0, None, "ready"])
    assert wait_for(lambda: next(values), interval=0) == "ready"
    with pytest.raises(AssertionError, match=r"waiting for the answer \(last value False\)"):
        wait_for(lambda: False, "the answer", timeout=0.05, interval=0.01)


def test_a_server_that_exits_before_answering_fails_its_wait_with_what_it_said() -> None:
    said = "import sys; sys.exit('no port for me')"
    process = subprocess.Popen([sys.executable, "-c", said], stderr=subprocess.PIPE)
    with pytest.raises(
        AssertionError, match="the server exited with status 1 before it answered: no port for me"
    ):
        wait_for_server(process, lambda: False, "the server", timeout=30)
