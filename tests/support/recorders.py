"""The hub's events endpoint as a test stand-in: a real loopback HTTP server that records every status-event
POST (``/api/v1/evaluations/jobs/{id}/events``) in order and answers 204 as the hub does, unless told to
refuse (a planned status, with headers such as Retry-After), to drop the connection without an answer, or to
say that a job does not exist (404). Used by the adapter SDK's, the built-in adapters' and the sidecar's tests
through the ``recorder`` fixture (tests/conftest.py)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.support.servers import QuietHandler, serving_http

# What the recorder does with one request: answer with a status (and headers), or DROP the connection.
DROP = "drop"
Action = int | tuple[int, dict[str, str]] | str
ACCEPTED = 204  # what the hub answers an event it takes


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the JSON body, or the text when it was not JSON
    arrived: float  # time.monotonic() on arrival
    answer: int | None  # None: the connection was dropped without an answer

    @property
    def job_id(self) -> str:
        """The job of an events path: ``/api/v1/evaluations/jobs/{job_id}/events``."""
        return _job_of(self.path)

    @property
    def event(self) -> dict[str, Any]:
        """The body's ``benchmark_status_event``."""
        event: dict[str, Any] = self.body["benchmark_status_event"]
        return event


class EventRecorder:
    """Remembers every request in arrival order (``requests``); ``plan`` the answers of the next ones;
    ``missing_jobs`` are answered 404 ``resource_not_found``; anything else is accepted (204)."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Recorded] = []
        self.missing_jobs: set[str] = set()
        self._plan: deque[Action] = deque()
        self._changed = threading.Condition()

    def plan(self, *actions: Action) -> None:
        """The next requests get these answers, in order; after them, the hub's usual answer."""
        with self._changed:
            self._plan.extend(actions)

    @property
    def accepted(self) -> list[Recorded]:
        """The requests answered 2xx, in arrival order."""
        with self._changed:
            return [r for r in self.requests if r.answer is not None and 200 <= r.answer < 300]

    @property
    def delivered(self) -> list[Any]:
        """The bodies of the accepted requests, in arrival order."""
        return [r.body for r in self.accepted]

    def events(self, benchmark_index: int | None = None) -> list[dict[str, Any]]:
        """The ``benchmark_status_event`` of every accepted body (of one benchmark index, when given)."""
        return [
            r.event
            for r in self.accepted
            if benchmark_index is None or r.event["benchmark_index"] == benchmark_index
        ]

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Block until ``predicate(events)`` holds and return the events, or fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(events := self.events()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met in {timeout:g} s; events: {events}")
                self._changed.wait(remaining)
            return events

    def _answer(self, path: str) -> tuple[int | None, dict[str, str], bytes]:
        """The status (None: drop the connection), extra headers and body for the next request on ``path``."""
        with self._changed:
            action = self._plan.popleft() if self._plan else None
        if action is None:
            job_id = _job_of(path)
            if job_id in self.missing_jobs:
                return 404, {}, _refusal("resource_not_found", f"job {job_id} not found")
            return ACCEPTED, {}, b""
        if isinstance(action, str):  # DROP
            return None, {}, b""
        status, headers = (action, {}) if isinstance(action, int) else action
        body = _refusal("test_refusal", f"the recorder answered {status}") if status >= 400 else b"{}"
        return status, headers, body

    def _record(self, request: Recorded) -> None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()


def _job_of(path: str) -> str:
    return path.rstrip("/").split("/")[-2]


def _refusal(code: str, message: str) -> bytes:
    """An error body in the hub's shape."""
    return json.dumps({"message_code": code, "message": message, "trace": "t"}).encode()


def _handler(recorder: EventRecorder) -> type[QuietHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = recorder._answer(self.path)
            recorder._record(Recorded(self.path, headers, body, time.monotonic(), status))
            if status is None:
                self.close_connection = True
                return
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if status != 204:  # a 204 has no body, so no length either
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def recording(port: int = 0) -> Iterator[EventRecorder]:
    """An ``EventRecorder`` serving on 127.0.0.1:``port`` (a free one by default) until the block ends."""
    recorder = EventRecorder()
    with serving_http(_handler(recorder), port) as url:
        recorder.url = url
        yield recorder
