"""Real servers on loopback for the sidecar tests: the sidecar itself (in a thread, or as a subprocess) and an
OpenAI-compatible model server that counts calls and can be told to fail. The hub they forward events to is the
``recorder`` fixture (tests.support.recorders)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adapters.sidecar import SidecarConfig, create_app
from tests.support.net import free_port
from tests.support.servers import ThreadedServer
from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


# -- the model server ----------------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    target: str  # path and query exactly as received
    headers: dict[str, str]
    body: bytes


class FakeModel:
    """An OpenAI-compatible model server on raw asyncio streams (so it can drop a connection without an
    answer). ``plan`` is consumed one action per request: ``"429:<seconds>"`` (with Retry-After),
    ``"503"``, ``"drop"``; an empty plan answers normally after ``delay`` seconds."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.plan: list[str] = []
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> FakeModel:
        self._thread.start()
        wait_for(self._ready.is_set, "the fake model server")
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def upstream_calls(self, path_prefix: str = "/v1/") -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.target.startswith(path_prefix)]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                with self.lock:
                    self.calls.append(Call(method, target, headers, body))
                    action = self.plan.pop(0) if self.plan else ""
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if action == "drop":
                        writer.close()
                        return
                    if action.startswith("429"):
                        retry_after = action.split(":", 1)[1]
                        await self._send(writer, 429, b'{"error":"slow down"}', {"Retry-After": retry_after})
                        continue
                    if action == "503":
                        await self._send(writer, 503, b'{"error":"unavailable"}')
                        continue
                    if self.delay:
                        await asyncio.sleep(self.delay)  # simulated generation time
                    await self._answer(writer, target, body)
                finally:
                    with self.lock:
                        self.in_flight -= 1

    async def _answer(self, writer: asyncio.StreamWriter, target: str, body: bytes) -> None:
        request = json.loads(body) if body else {}
        prompt = str(request.get("prompt") or request.get("messages") or "")
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": 3}
        usage["total_tokens"] = usage["prompt_tokens"] + 3
        with self.lock:
            serial = len(self.calls)
        if request.get("stream"):
            chunks = [
                {"choices": [{"text": " yes", "index": 0}]},
                {"choices": [], "usage": usage},
            ]
            data = (
                b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
            )
            await self._send(writer, 200, data, content_type="text/event-stream")
            return
        answer = {
            "id": f"cmpl-{serial}",
            "object": "text_completion",
            "model": request.get("model"),
            "choices": [{"text": f" answer {serial}", "index": 0, "finish_reason": "stop"}],
            "usage": usage,
        }
        await self._send(writer, 200, json.dumps(answer).encode())

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        extra: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        reason = {200: "OK", 429: "Too Many Requests", 503: "Service Unavailable"}[status]
        head = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()


@pytest.fixture()
def model() -> Iterator[FakeModel]:
    server = FakeModel().start()
    yield server
    server.stop()


# -- the sidecar ---------------------------------------------------------------------------------------


def write_job_info(
    jobs_root: Path, job_id: str, index: int, upstream: str, name: str, indices: list[int] | None = None
) -> None:
    path = jobs_root / job_id / str(index) / "sidecar-job-info.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "model": {"url": upstream, "name": name, "http_timeout": "30s"},
        "provider_id": "p",
        "benchmark_id": f"b{index}",
        "benchmark_indices": indices or [index],
    }
    path.write_text(json.dumps(info), encoding="utf-8")


def local_config(tmp_path: Path, hub_url: str, **model: Any) -> dict[str, Any]:
    return {
        "local_mode": True,
        "local": {"jobs_root": str(tmp_path / "jobs")},
        "eval_hub": {
            "base_url": hub_url,
            "retry_initial": "50ms",
            "retry_max": "200ms",
            "sync_timeout": "2s",
        },
        "cache": {"dir": str(tmp_path / "cache"), "enabled": True},
        "model": {"retry_initial": "20ms", "retry_max": "100ms", **model},
        "shutdown_timeout": "5s",
    }


@pytest.fixture()
def start_sidecar() -> Iterator[Callable[[dict[str, Any]], ThreadedServer]]:
    """Start a sidecar in a thread from a config dict; all are stopped at the end of the test."""
    started: list[ThreadedServer] = []

    def start(config: dict[str, Any]) -> ThreadedServer:
        server = ThreadedServer(create_app(SidecarConfig.model_validate(config)), lifespan="on").start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()
