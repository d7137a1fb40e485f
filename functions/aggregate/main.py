"""Knative Service ``aggregate``: on ``benchmark.finished``, derives the job's state and, once every
benchmark is terminal, scores it and emits ``evaluation.finished``; on ``evaluation.finished``, exports the
job to MLflow and OCI (``docs/exports.md``). Run it as Knative does::

    uvicorn functions.aggregate.main:app --host 0.0.0.0 --port $PORT --no-access-log

``aggregate`` is also a plain functions-framework HTTP function (its default signature type), so
``functions-framework --asgi --source functions/aggregate/main.py --target aggregate`` serves the same;
the module does not import functions-framework, whose package loads Flask (``docs/performance.md``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from assay.functionhost import CloudEventHost
from assay.lifecycle import Exporter, handlers
from assay.settings import Settings
from functions import started


def exporter(settings: Settings) -> Exporter:
    """MLflow and OCI exports of finished jobs (imported on the first event, not at cold start)."""
    from assay.exports import build_exporter

    return build_exporter(settings)


host = CloudEventHost(with_runtime=False, exporter=exporter)


async def aggregate(request: Request) -> Response:
    """A CloudEvent from the broker (binary or structured), its sender checked first."""
    return await host.deliver(request, handlers.aggregate)


app = host.app(aggregate)
started()
