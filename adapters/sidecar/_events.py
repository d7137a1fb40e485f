"""Delivery of adapter events to the hub: one short synchronous attempt, then a FIFO buffer per job that a
background task drains with exponential backoff and jitter.

An adapter gets the hub's own answer when the hub gave one that retrying cannot change (2xx, or a 4xx
other than 408/429), and 202 when the event was buffered. Once a job has buffered events, its later events
queue behind them, so the hub always sees a job's events in the order the adapter sent them.

With ``eval_hub.spool_dir`` (the local hub sets it) every buffered event is also written there, one file per
event under ``<spool_dir>/<job_id>/``, and removed once the hub accepted (or refused for good) it: what a
stop, a SIGKILL or a crash leaves undelivered is loaded and delivered, in order, by the next sidecar.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.responses import JSONResponse, Response

from adapters.retry import Backoff, retry_after_seconds
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
    headers: dict[str, str]  # Authorization only when it is the launch's own credential
    spooled: Path | None = field(default=None, compare=False)


class _Spool:
    """Buffered events on disk, one JSON file per event, named so that sorting them restores their order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sequence = itertools.count()

    def put(self, event: _Event) -> _Event:
        folder = self.root / event.job_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{time.time_ns():020d}-{next(self._sequence):08d}.json"
        scratch = folder / f".{path.name}.tmp"
        record = {"body": base64.b64encode(event.body).decode("ascii"), "headers": event.headers}
        # Only this user may read it: it may hold the launch's credential.
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(record, file)
        os.replace(scratch, path)
        return _Event(event.job_id, event.body, event.headers, path)

    def remove(self, event: _Event) -> None:
        if event.spooled is None:
            return
        event.spooled.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            event.spooled.parent.rmdir()  # only when it was the job's last one

    def load(self) -> dict[str, list[_Event]]:
        found: dict[str, list[_Event]] = {}
        if not self.root.is_dir():
            return found
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.json")):
                try:
                    record = json.loads(path.read_text(encoding="utf-8"))
                    event = _Event(
                        folder.name, base64.b64decode(record["body"]), dict(record["headers"]), path
                    )
                except (OSError, ValueError, KeyError, TypeError):
                    logger.error("unreadable spooled event %s left where it is", path)
                    continue
                found.setdefault(folder.name, []).append(event)
        return found


class EventForwarder:
    """Forwards events to ``<eval_hub.base_url>/api/v1/evaluations/jobs/<job_id>/events``."""

    def __init__(self, settings: EvalHubSettings, client: httpx.AsyncClient, token: TokenFile) -> None:
        self._settings = settings
        # Jitter: the sidecars of many pods do not retry in step.
        self._backoff = Backoff(initial=settings.retry_initial, maximum=settings.retry_max)
        self._client = client
        self._token = token
        self._queues: dict[str, deque[_Event]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._flushing = asyncio.Event()
        self._spool = _Spool(settings.spool_dir) if settings.spool_dir is not None else None
        self.delivered = 0

    def resume(self) -> int:
        """Start delivering the events an earlier sidecar left in the spool; returns how many."""
        if self._spool is None:
            return 0
        loaded = self._spool.load()
        for job_id, events in loaded.items():
            self._queues.setdefault(job_id, deque()).extend(events)
            self._workers[job_id] = asyncio.create_task(
                self._drain(job_id, None), name=f"sidecar-events-{job_id}"
            )
        count = sum(len(events) for events in loaded.values())
        if count:
            logger.info("%d undelivered events of %d jobs loaded from the spool", count, len(loaded))
        return count

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
                return self._buffer(
                    event, "earlier events of this job are still buffered", failed=False, acknowledged=True
                )
            try:
                answer = await self._client.post(
                    self._url(job_id),
                    content=body,
                    headers=self._headers(event),
                    timeout=self._settings.sync_timeout,
                )
            except httpx.HTTPError as exc:
                reason = f"the hub is unreachable ({type(exc).__name__})"
                return self._buffer(event, reason, failed=True, acknowledged=True)
            if is_transient(answer.status_code):
                reason = f"the hub answered {answer.status_code}"
                wait = retry_after_seconds(answer.headers.get("retry-after"))
                return self._buffer(event, reason, failed=True, acknowledged=True, retry_after=wait)
            self.delivered += 1
            passed = {k: v for k, v in answer.headers.items() if k.lower() == "content-type"}
            return Response(answer.content, status_code=answer.status_code, headers=passed)

    def enqueue(self, job_id: str, body: bytes, headers: dict[str, str]) -> None:
        """Queue an event the sidecar itself reports (it is delivered behind the job's buffered ones)."""
        headers = dict(headers)
        headers.setdefault("X-Global-Transaction-Id", str(uuid.uuid4()))
        self._buffer(
            _Event(job_id, body, headers), "reported by the sidecar", failed=False, acknowledged=False
        )

    def _buffer(
        self,
        event: _Event,
        reason: str,
        *,
        failed: bool,
        acknowledged: bool,
        retry_after: float | None = None,
    ) -> Response:
        """Queue ``event`` behind the job's earlier ones; ``acknowledged``: the adapter is told it is taken;
        ``retry_after``: the hub's ``Retry-After`` with the failed attempt, which the first retry waits.

        With a spool, an event the adapter is told was taken is on disk first: the local hub reads the spool,
        not this process, to know whether a finished run's events are still on their way. One that cannot
        be written is refused (503, the adapter retries) rather than acknowledged and held in memory only."""
        if self._spool is not None:
            try:
                event = self._spool.put(event)
            except OSError:
                logger.exception("spooling an event of job %s failed", event.job_id)
                if acknowledged:
                    return JSONResponse(
                        {"message": "the sidecar could not keep this event; send it again"},
                        status_code=503,
                        headers={"Retry-After": "1"},
                    )
        queue = self._queues.setdefault(event.job_id, deque())
        queue.append(event)
        logger.info("event for job %s buffered (%s); %d waiting", event.job_id, reason, len(queue))
        worker = self._workers.get(event.job_id)
        if worker is None or worker.done():
            self._workers[event.job_id] = asyncio.create_task(
                self._drain(event.job_id, reason if failed else None, retry_after),
                name=f"sidecar-events-{event.job_id}",
            )
        return JSONResponse(
            {"message": f"buffered: {reason}; the sidecar delivers it when the hub accepts it"},
            status_code=202,
        )

    async def _drain(self, job_id: str, failure: str | None, retry_after: float | None = None) -> None:
        """Deliver the job's queue head first; ``failure`` says the synchronous attempt just failed, so the
        first try waits a backoff too (or the hub's ``retry_after``)."""
        queue = self._queues[job_id]
        failures = 0
        if failure is not None:
            failures = 1
            await self._back_off(failures, job_id, failure, retry_after)
        while queue:
            event = queue[0]
            retry_after = None
            try:
                answer = await self._client.post(
                    self._url(job_id),
                    content=event.body,
                    headers=self._headers(event),
                    timeout=self._settings.http_timeout,
                )
                status: int | None = answer.status_code
                detail = f"status {status}"
                retry_after = retry_after_seconds(answer.headers.get("retry-after"))
            except httpx.HTTPError as exc:
                status, detail = None, repr(exc)
            if status is not None and not is_transient(status):
                queue.popleft()
                if self._spool is not None:
                    self._spool.remove(event)
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
            await self._back_off(failures, job_id, detail, retry_after)
        del self._queues[job_id]
        self._workers.pop(job_id, None)

    async def _back_off(
        self, failures: int, job_id: str, detail: str, retry_after: float | None = None
    ) -> None:
        """Wait before retry number ``failures``: the hub's ``Retry-After`` when it gave one (at most the longest
        backoff, so a hub cannot park a job's events), else the backoff; while flushing, briefly either way."""
        at_most = _FLUSH_RETRY_SECONDS if self._flushing.is_set() else None
        if retry_after is not None:
            retry_after = min(retry_after, at_most if at_most is not None else self._settings.retry_max)
        delay = self._backoff.delay(failures, retry_after=retry_after, at_most=at_most)
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
                if event.spooled is not None:
                    logger.warning("undelivered at shutdown, job %s: kept in %s", job_id, event.spooled)
                else:
                    logger.error(
                        "undelivered at shutdown, job %s: %s",
                        job_id,
                        event.body[:300].decode(errors="replace"),
                    )
        self._workers.clear()
        return left
