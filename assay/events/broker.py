"""The in-process broker of the local hub: the same CloudEvents, delivered to the same handlers.

Handlers are idempotent on ``(source, id)`` (through the inbox), so delivering an event again to
every subscriber after one of them failed is safe; that is what makes the outbox retry correct.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from cloudevents.http import CloudEvent

from assay.core.events import OutboxEvent
from assay.errors import Unprocessable
from assay.telemetry import tracing

log = logging.getLogger(__name__)

Handler = Callable[[CloudEvent], Awaitable[None]]


def to_cloudevent(event: OutboxEvent) -> CloudEvent:
    return CloudEvent(event.attributes(), event.data)


class LocalBroker:
    """Routes an event to every handler subscribed to its type, like Triggers filtering on ``type``."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[tuple[str, Handler]]] = {}

    def subscribe(self, event_type: str, name: str, handler: Handler) -> None:
        self._subscribers.setdefault(event_type, []).append((name, handler))

    async def deliver(self, event: OutboxEvent) -> None:
        """Deliver to every subscriber; a retryable failure raises (the outbox keeps the row), a poison
        event is logged as dead-lettered and acknowledged."""
        cloudevent = to_cloudevent(event)
        for name, handler in self._subscribers.get(event.type, []):
            try:
                with tracing.consuming(name, cloudevent):
                    await handler(cloudevent)
            except Unprocessable as exc:  # can never apply: dead-lettered, as Knative does with a 422
                log.error(
                    "dead-lettered event %s (%s) for %s: %s",
                    event.id,
                    event.type,
                    name,
                    exc,
                    extra={"event_id": event.id, "event_type": event.type, "subject": event.subject},
                )


__all__ = ["Handler", "LocalBroker", "to_cloudevent"]
