"""A real loopback HTTP server that records event POSTs and can be told to fail or drop the first calls."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# What the recorder does with one request: answer with a status (and headers), or DROP the connection.
DROP = "drop"
Action = int | tuple[int, dict[str, str]] | str


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    arrived: float
    answer: int | None  # None: the connection was dropped without an answer


@dataclass
class Recorder:
    """Answers 200 unless a planned action says otherwise; remembers every request in order."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    _plan: deque[Action] = field(default_factory=deque)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def plan(self, *actions: Action) -> None:
        """The next requests get these answers, in order; after them, 200."""
        with self._changed:
            self._plan.extend(actions)

    def next_action(self) -> Action:
        with self._changed:
            return self._plan.popleft() if self._plan else 200

    def record(self, request: Recorded) -> None:
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    @property
    def delivered(self) -> list[Any]:
        """Bodies the recorder accepted (2xx), in arrival order."""
        with self._changed:
            return [r.body for r in self.requests if r.answer is not None and 200 <= r.answer < 300]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The ``benchmark_status_event`` of every accepted body."""
        return [body["benchmark_status_event"] for body in self.delivered]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0) -> None:
        """Block until ``predicate(events)`` holds, or fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.events):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met in {timeout}s; events: {self.events}")
                self._changed.wait(remaining)


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            action = recorder.next_action()
            headers = {k.lower(): v for k, v in self.headers.items()}
            if isinstance(action, str):  # DROP
                recorder.record(Recorded(self.path, headers, body, time.monotonic(), None))
                self.close_connection = True
                return
            status, extra = (action, {}) if isinstance(action, int) else action
            recorder.record(Recorded(self.path, headers, body, time.monotonic(), status))
            payload = b"{}"
            if status >= 400:
                payload = json.dumps(
                    {
                        "message_code": "test_refusal",
                        "message": f"the recorder answered {status}",
                        "trace": "t",
                    }
                ).encode()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving() -> Iterator[Recorder]:
    """Start a recorder on a free loopback port; stop it on exit."""
    rec = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
