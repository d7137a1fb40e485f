"""Knative Service ``aggregate``: on ``benchmark.finished``, derives the job's state and, once every
benchmark is terminal, scores it and emits ``evaluation.finished``; on ``evaluation.finished``, exports the
job to MLflow and OCI (``docs/exports.md``). Run it as Knative does::

    functions-framework --asgi --source functions/aggregate/main.py --target aggregate --port $PORT
"""

from __future__ import annotations

from cloudevents.http import CloudEvent
from functions_framework.aio import cloud_event

from assay.http import CloudEventHost
from assay.lifecycle import Exporter, handlers
from assay.settings import Settings


def exporter(settings: Settings) -> Exporter:
    """MLflow and OCI exports of finished jobs (imported on the first event, not at cold start)."""
    from assay.exports import build_exporter

    return build_exporter(settings)


host = CloudEventHost(with_runtime=False, exporter=exporter)


@cloud_event
async def aggregate(event: CloudEvent) -> None:
    await host(handlers.aggregate, event)
