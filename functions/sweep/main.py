"""Knative Service ``sweep``: triggered by a PingSource; republishes undelivered outbox events,
fails runs past their deadline, re-dispatches runs never launched, settles finished jobs::

    functions-framework --asgi --source functions/sweep/main.py --target sweep --port $PORT
"""

from __future__ import annotations

from cloudevents.http import CloudEvent
from functions_framework.aio import cloud_event

from assay.http import CloudEventHost
from assay.lifecycle import handlers

host = CloudEventHost(with_runtime=False)


@cloud_event
async def sweep(event: CloudEvent) -> None:
    await host(handlers.sweep, event)
