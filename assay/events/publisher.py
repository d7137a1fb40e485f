"""The outbox publisher: delivers committed events, soon after commit and again from the sweep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from assay.core.events import OutboxEvent
from assay.store import OutboxRepository, OutboxStats
from assay.telemetry import tracing

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

# How long the first delivered event waits for others before their published marks are written together. Well
# below the periodic retry's two seconds, so an event delivered from memory is not offered again; long enough that
# under load one statement marks the events of many evaluations (at 45 evaluations a second, 20 ms made it 0.74
# statements per evaluation, 200 ms 0.1). A mark lost to a crash only means a redelivery, which handlers absorb.
_MARK_LINGER_SECONDS = 0.2


class HttpSink:
    """Posts events to a Knative broker (the ``K_SINK`` a SinkBinding injects) in binary content mode. Its HTTP
    client is built on the first delivery: a function whose first event publishes nothing (dispatch, usually)
    does not import httpx for it."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._url = url
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx  # imported here: only the cluster publisher needs it

            # A plain-http sink (a broker's in-cluster ingress, the usual K_SINK) never does TLS, and redirects
            # are not followed, so its client skips loading the CA bundle (65-100 ms); an https sink verifies
            # its certificate as usual.
            verify = urlsplit(self._url).scheme.lower() != "http"
            self._client = httpx.AsyncClient(timeout=self._timeout, verify=verify)
        return self._client

    async def deliver(self, event: OutboxEvent) -> None:
        from cloudevents.conversion import to_binary

        from assay.events.broker import to_cloudevent

        headers, body = to_binary(to_cloudevent(event))
        response = await self._http().post(self._url, headers=headers, content=body)
        if response.status_code >= 300:
            raise RuntimeError(f"broker answered {response.status_code}: {response.text[:200]}")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class Publisher:
    """Delivers outbox rows through ``deliver``.

    ``deliver_soon(events)`` delivers just-committed events from memory (local hub); ``flush(ids)``
    delivers specific rows right away (a scale-to-zero function does this before answering); rows that
    fail stay in the outbox with backoff, and a periodic ``flush`` or the sweep delivers them later.
    """

    def __init__(
        self,
        outbox: OutboxRepository,
        deliver: Callable[[OutboxEvent], Awaitable[None]],
    ) -> None:
        self._outbox = outbox
        self._deliver = _publishing(deliver) if tracing.enabled() else deliver
        self._inflight: set[asyncio.Task[None]] = set()
        self._unmarked: list[str] = []  # delivered, their published mark not yet written
        self._marking: asyncio.Task[None] | None = None

    def deliver_soon(self, events: Sequence[OutboxEvent]) -> None:
        """Deliver just-committed events in a task of their own, straight from memory, so that events
        of different evaluations go out concurrently; each is marked published once delivered. One
        that fails stays in the outbox for a later ``flush`` (or the sweep) to retry."""
        task = asyncio.get_running_loop().create_task(self._deliver_now(list(events)))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _deliver_now(self, events: list[OutboxEvent]) -> None:
        delivered: list[str] = []
        for event in events:
            try:
                await self._deliver(event)
            except Exception:
                log.warning("delivering event %s failed; the outbox keeps it", event.id, exc_info=True)
                continue
            delivered.append(event.id)
        if delivered:
            self._unmarked += delivered
            if self._marking is None or self._marking.done():
                self._marking = asyncio.get_running_loop().create_task(self._mark())
                self._inflight.add(self._marking)
                self._marking.add_done_callback(self._inflight.discard)

    async def _mark(self) -> None:
        """Mark delivered events published, many per statement: what other deliveries finish meanwhile (and
        while one mark is being written) goes into the next one. Marks are off every evaluation's path, and
        an event delivered but never marked is delivered again later, which handlers absorb."""
        await asyncio.sleep(_MARK_LINGER_SECONDS)
        while self._unmarked:
            batch, self._unmarked = self._unmarked, []
            try:
                await self._outbox.mark_published(batch)
            except Exception:
                log.warning("marking %d event(s) published failed", len(batch), exc_info=True)

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

    async def drain(self) -> None:
        """Wait for deliveries started by :meth:`deliver_soon`, and for their published marks."""
        while self._inflight:
            await asyncio.wait(set(self._inflight))


def _publishing(
    deliver: Callable[[OutboxEvent], Awaitable[None]],
) -> Callable[[OutboxEvent], Awaitable[None]]:
    """Tracing on: each delivery of an event that carries a trace context is a producer span of that trace,
    and the event goes out carrying the span's own context, so its consumers become the span's children."""

    async def publish(event: OutboxEvent) -> None:
        if event.traceparent is None:
            await deliver(event)
            return
        kind = event.type.removeprefix("dev.assay.").removesuffix(".v1")
        attributes = {"cloudevents.event_id": event.id, "cloudevents.event_type": event.type}
        if event.correlation_id is not None:
            attributes["assay.evaluation.id"] = event.correlation_id
        parent = (event.traceparent, event.tracestate)
        with tracing.span(f"publish {kind}", attributes, parent=parent, kind="producer"):
            current = tracing.current()
            if current is not None:
                event = replace(event, traceparent=current[0], tracestate=current[1])
            await deliver(event)

    return publish


__all__ = ["HttpSink", "Publisher"]
