"""Delivery of adapter events to the hub: one short synchronous attempt, then a FIFO buffer per job that a
background task drains with exponential backoff and jitter.

An adapter gets the hub's own answer when the hub gave one that retrying cannot change (2xx, or a 4xx
other than 408/429), and 202 when the event was buffered. Once a job has buffered events, its later events
queue behind them, so the hub always sees a job's events in the order the adapter sent them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import deque
from dataclasses import dataclass

import httpx
from starlette.responses import JSONResponse, Response

from adapters.sidecar._config import EvalHubSettings
from adapters.sidecar._forwarding import TokenFile

__all__ = ["EventForwarder", "is_transient"]

logger = logging.getLogger(__name__)

_TRANSIENT_STATUSES = frozenset({408, 429})
# How long a retry waits at most while the sidecar is shutting down, so the flush deadline is used well.
_FLUSH_RETRY_SECONDS = 0.2


def is_transient(status: int) -> bool:
    return status in _TRANSIENT_STATUSES or status >= 500


@dataclass(frozen=True, slots=True)
class _Event:
    job_id: str
    body: bytes
    headers: dict[str, str]  # without Authorization: the token is read at send time


class EventForwarder:
    """Forwards events to ``<eval_hub.base_url>/api/v1/evaluations/jobs/<job_id>/events``."""

    def __init__(self, settings: EvalHubSettings, client: httpx.AsyncClient, token: TokenFile) -> None:
        self._settings = settings
        self._client = client
        self._token = token
        self._queues: dict[str, deque[_Event]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._flushing = asyncio.Event()
        self.delivered = 0

    def pending(self, job_id: str | None = None) -> int:
        """Events buffered (for ``job_id``, or for every job) and not yet accepted by the hub."""
        if job_id is not None:
            return len(self._queues.get(job_id, ()))
        return sum(len(queue) for queue in self._queues.values())

    def _url(self, job_id: str) -> str:
        return f"{self._settings.base_url.rstrip('/')}/api/v1/evaluations/jobs/{job_id}/events"

    def _headers(self, event: _Event) -> dict[str, str]:
        headers = dict(event.headers)
        token = self._token.get()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def submit(self, job_id: str, body: bytes, headers: dict[str, str]) -> Response:
        """Forward now, or buffer behind the job's earlier events; the response is the adapter's answer."""
        headers = dict(headers)
        headers.setdefault("X-Global-Transaction-Id", str(uuid.uuid4()))
        event = _Event(job_id, body, headers)
        # One attempt at a time per job: a second event must not overtake a first one that is still in flight.
        lock = self._locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            if self._queues.get(job_id):
                return self._buffer(event, "earlier events of this job are still buffered", failed=False)
            try:
                answer = await self._client.post(
                    self._url(job_id),
                    content=body,
                    headers=self._headers(event),
                    timeout=self._settings.sync_timeout,
                )
            except httpx.HTTPError as exc:
                return self._buffer(event, f"the hub is unreachable ({type(exc).__name__})", failed=True)
            if is_transient(answer.status_code):
                return self._buffer(event, f"the hub answered {answer.status_code}", failed=True)
            self.delivered += 1
            passed = {k: v for k, v in answer.headers.items() if k.lower() == "content-type"}
            return Response(answer.content, status_code=answer.status_code, headers=passed)

    def enqueue(self, job_id: str, body: bytes, headers: dict[str, str]) -> None:
        """Queue an event the sidecar itself reports (it is delivered behind the job's buffered ones)."""
        headers = dict(headers)
        headers.setdefault("X-Global-Transaction-Id", str(uuid.uuid4()))
        self._buffer(_Event(job_id, body, headers), "reported by the sidecar", failed=False)

    def _buffer(self, event: _Event, reason: str, *, failed: bool) -> Response:
        queue = self._queues.setdefault(event.job_id, deque())
        queue.append(event)
        logger.info("event for job %s buffered (%s); %d waiting", event.job_id, reason, len(queue))
        worker = self._workers.get(event.job_id)
        if worker is None or worker.done():
            self._workers[event.job_id] = asyncio.create_task(
                self._drain(event.job_id, reason if failed else None), name=f"sidecar-events-{event.job_id}"
            )
        return JSONResponse(
            {"message": f"buffered: {reason}; the sidecar delivers it when the hub accepts it"},
            status_code=202,
        )

    async def _drain(self, job_id: str, failure: str | None) -> None:
        """Deliver the job's queue head first; ``failure`` says the synchronous attempt just failed, so the
        first try waits a backoff too."""
        queue = self._queues[job_id]
        failures = 0
        if failure is not None:
            failures = 1
            await self._back_off(failures, job_id, failure)
        while queue:
            event = queue[0]
            try:
                answer = await self._client.post(
                    self._url(job_id),
                    content=event.body,
                    headers=self._headers(event),
                    timeout=self._settings.http_timeout,
                )
                status: int | None = answer.status_code
                detail = f"status {status}"
            except httpx.HTTPError as exc:
                status, detail = None, repr(exc)
            if status is not None and not is_transient(status):
                queue.popleft()
                failures = 0
                if status < 300:
                    self.delivered += 1
                else:
                    logger.error(
                        "the hub rejected a buffered event of job %s for good (%s): %s",
                        job_id,
                        detail,
                        event.body[:300].decode(errors="replace"),
                    )
                continue
            failures += 1
            await self._back_off(failures, job_id, detail)
        del self._queues[job_id]
        self._workers.pop(job_id, None)

    async def _back_off(self, failures: int, job_id: str, detail: str) -> None:
        ceiling = min(self._settings.retry_max, self._settings.retry_initial * 2 ** (failures - 1))
        if self._flushing.is_set():
            ceiling = min(ceiling, _FLUSH_RETRY_SECONDS)
        delay = random.uniform(ceiling / 2, ceiling)  # jitter: sidecars of many pods do not retry in step
        logger.warning(
            "delivering events of job %s failed (%s); retry %d in %.2fs", job_id, detail, failures, delay
        )
        if self._flushing.is_set():
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            # flush() sets the event to cut a long wait short.
            await asyncio.wait_for(self._flushing.wait(), delay)

    async def flush(self, timeout: float) -> int:
        """Deliver what is buffered within ``timeout`` seconds; returns how many events were left undelivered
        (each is logged)."""
        self._flushing.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._workers and loop.time() < deadline:
            workers = [w for w in self._workers.values() if not w.done()]
            if not workers:
                break
            await asyncio.wait(workers, timeout=max(0.0, deadline - loop.time()))
        left = 0
        for job_id, worker in list(self._workers.items()):
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            for event in self._queues.pop(job_id, ()):
                left += 1
                logger.error(
                    "undelivered at shutdown, job %s: %s", job_id, event.body[:300].decode(errors="replace")
                )
        self._workers.clear()
        return left
