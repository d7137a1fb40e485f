"""Knative Service ``aggregate``: on ``benchmark.finished``, derives the job's state and, once every
benchmark is terminal, scores it and emits ``evaluation.finished``; on ``evaluation.finished``, exports the
job to MLflow and OCI (``docs/exports.md``). Run it as Knative does::

    functions-framework --asgi --source functions/aggregate/main.py --target aggregate --port $PORT
"""

from __future__ import annotations

from functions_framework.aio import http
from starlette.requests import Request
from starlette.responses import Response

from assay.functionhost import CloudEventHost
from assay.lifecycle import Exporter, handlers
from assay.settings import Settings


def exporter(settings: Settings) -> Exporter:
    """MLflow and OCI exports of finished jobs (imported on the first event, not at cold start)."""
    from assay.exports import build_exporter

    return build_exporter(settings)


host = CloudEventHost(with_runtime=False, exporter=exporter)


@http
async def aggregate(request: Request) -> Response:
    """A CloudEvent from the broker (binary or structured), its sender checked first."""
    return await host.deliver(request, handlers.aggregate)
