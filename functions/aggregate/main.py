"""Knative Service ``aggregate``: on ``benchmark.finished``, derives the job's state and, once every
benchmark is terminal, scores it and emits ``evaluation.finished``. Run it as Knative does::

    functions-framework --asgi --source functions/aggregate/main.py --target aggregate --port $PORT
"""

from __future__ import annotations

from cloudevents.http import CloudEvent
from functions_framework.aio import cloud_event

from assay.http import CloudEventHost
from assay.lifecycle import handlers

host = CloudEventHost(with_runtime=False)


@cloud_event
async def aggregate(event: CloudEvent) -> None:
    await host(handlers.aggregate, event)
