"""Delivering outbox events: to the in-process broker (local hub) or to the Knative broker (``K_SINK``)."""

from assay.events.broker import Handler, LocalBroker, to_cloudevent
from assay.events.publisher import HttpSink, Publisher

__all__ = ["Handler", "HttpSink", "LocalBroker", "Publisher", "to_cloudevent"]
