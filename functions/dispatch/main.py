"""Knative Service ``dispatch``: launches a job's benchmarks on the runtime, stops them on cancel.

Triggered by ``evaluation.accepted``, ``evaluation.retried``, ``evaluation.cancelled`` and
``benchmark.finished`` (binary or structured CloudEvents). Run it as Knative does::

    functions-framework --asgi --source functions/dispatch/main.py --target dispatch --port $PORT
"""

from __future__ import annotations

from cloudevents.http import CloudEvent
from functions_framework.aio import cloud_event

from assay.http import CloudEventHost
from assay.lifecycle import handlers

host = CloudEventHost(with_runtime=True)


@cloud_event
async def dispatch(event: CloudEvent) -> None:
    await host(handlers.dispatch, event)
