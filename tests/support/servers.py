"""Real servers on loopback, in a thread of the test process: an ASGI app under uvicorn (``ThreadedServer``)
or a handler under the standard library's ``ThreadingHTTPServer`` (``serving_http``), for stand-ins that must
answer at the socket level (drop a connection, speak a registry's protocol)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self, TypeVar

import uvicorn

from tests.support.net import LOOPBACK, free_port
from tests.support.waiting import wait_for

START_SECONDS = 20.0
STOP_SECONDS = 20.0
T = TypeVar("T")


class ThreadedServer:
    """``app`` under uvicorn on 127.0.0.1:``port`` (a free one unless given), in a daemon thread. ``start`` returns
    once it accepts connections; ``stop`` runs its lifespan shutdown. Also a context manager."""

    def __init__(
        self, app: Any, port: int | None = None, *, lifespan: Literal["auto", "on", "off"] = "auto"
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=LOOPBACK, port=self.port, log_config=None, lifespan=lifespan)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Self:
        self.thread.start()
        wait_for(
            lambda: self.server.started or not self.thread.is_alive(),
            f"the server on {self.url}",
            timeout=START_SECONDS,
            interval=0.02,
        )
        if not self.server.started:
            raise RuntimeError(f"the server on {self.url} did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=STOP_SECONDS)

    def on_loop(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coroutine`` on the server's event loop, where its app's pools and tasks live; its result."""
        loop = self.server.servers[0].get_loop()
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps its access log out of the test output."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving_http(handler: type[BaseHTTPRequestHandler], port: int = 0) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1:``port`` (a free one by default) in a thread; yields the base URL and shuts
    the server down on exit."""
    server = ThreadingHTTPServer((LOOPBACK, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
