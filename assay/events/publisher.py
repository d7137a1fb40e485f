"""The outbox publisher: delivers committed events, soon after commit and again from the sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from assay.core.events import OutboxEvent
from assay.store import OutboxRepository, OutboxStats

log = logging.getLogger(__name__)


class HttpSink:
    """Posts events to a Knative broker (the ``K_SINK`` a SinkBinding injects) in binary content mode."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        import httpx  # imported here: only the cluster publisher needs it

        self._url = url
        self._client = httpx.AsyncClient(timeout=timeout)

    async def deliver(self, event: OutboxEvent) -> None:
        from cloudevents.conversion import to_binary

        from assay.events.broker import to_cloudevent

        headers, body = to_binary(to_cloudevent(event))
        response = await self._client.post(self._url, headers=headers, content=body)
        if response.status_code >= 300:
            raise RuntimeError(f"broker answered {response.status_code}: {response.text[:200]}")

    async def close(self) -> None:
        await self._client.aclose()


class Publisher:
    """Delivers outbox rows through ``deliver``.

    ``kick()`` after a commit wakes the background loop (local hub); ``flush(ids)`` delivers specific
    rows right away (a scale-to-zero function does this before answering); rows that fail stay in the
    outbox with backoff and the loop or the sweep delivers them later.
    """

    def __init__(
        self,
        outbox: OutboxRepository,
        deliver: Callable[[OutboxEvent], Awaitable[None]],
        *,
        interval_seconds: float = 1.0,
    ) -> None:
        self._outbox = outbox
        self._deliver = deliver
        self._interval = interval_seconds
        self._wake = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    async def flush(
        self, ids: Sequence[str] | None = None, *, older_than_seconds: float = 0.0
    ) -> OutboxStats:
        total = OutboxStats(0, 0)
        while True:
            stats = await self._outbox.deliver_pending(
                self._deliver, ids=ids, older_than_seconds=older_than_seconds
            )
            total = OutboxStats(total.delivered + stats.delivered, total.failed + stats.failed)
            if stats.delivered + stats.failed < 100:
                return total

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set: on every kick, and every ``interval`` for rows due a retry."""
        while not stop.is_set():
            self._wake.clear()  # before flushing, so a kick during the flush is not lost
            try:
                await self.flush()
            except Exception:
                log.exception("outbox delivery failed; retrying")
            waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait(waiters, timeout=self._interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()


__all__ = ["HttpSink", "Publisher"]
