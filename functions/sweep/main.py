"""Knative Service ``sweep``: republishes undelivered outbox events, fails runs past their deadline,
re-dispatches runs never launched, settles finished jobs, and (``ASSAY_RUNTIME=kubernetes``) runs the
watcher over Jobs, pods and Kueue Workloads.

Triggered by a PingSource (any event type is a tick, ``dev.assay.sweep.requested.v1`` included) and by the
ApiServerSource's ``dev.knative.apiserver.resource.*`` events, which reconcile only the evaluation the
changed object belongs to::

    uvicorn functions.sweep.main:app --host 0.0.0.0 --port $PORT --no-access-log

``sweep`` is also a plain functions-framework HTTP function (its default signature type), so
``functions-framework --asgi --source functions/sweep/main.py --target sweep`` serves the same;
the module does not import functions-framework, whose package loads Flask (``docs/performance.md``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from assay.functionhost import CloudEventHost
from assay.lifecycle import Exporter, Runtime, SweepStep, handlers
from assay.settings import Settings
from functions import started


def runtime(settings: Settings) -> Runtime | None:
    if settings.runtime != "kubernetes":
        return None  # the local runtime's processes belong to the hub that started them, not to the sweep
    from assay.runtimes.kubernetes import kubernetes_runtime

    return kubernetes_runtime(settings)


def exporter(settings: Settings) -> Exporter:
    """The sweep retries failed exports (imported on the first event, not at cold start)."""
    from assay.exports import build_exporter

    return build_exporter(settings)


def sweep_steps(settings: Settings) -> list[SweepStep]:
    """What the sweep does for the triggers (claimed model versions, Kubeflow polls): only this function runs
    them, so only it imports the triggers (on its first event)."""
    from assay.triggers import sweep_steps

    return sweep_steps(settings)


host = CloudEventHost(with_runtime=False, runtime=runtime, exporter=exporter, sweep_steps=sweep_steps)


async def sweep(request: Request) -> Response:
    """A CloudEvent from the broker (binary or structured), its sender checked first."""
    return await host.deliver(request, handlers.sweep)


app = host.app(sweep)
started()
