"""Knative Service ``dispatch``: launches a job's benchmarks on the runtime, stops them on cancel.

Triggered by ``evaluation.accepted``, ``evaluation.retried``, ``evaluation.cancelled`` and
``benchmark.finished`` (binary or structured CloudEvents). With ``ASSAY_RUNTIME=kubernetes`` each benchmark
group becomes a Kueue-queued Job (``docs/cluster.md``); otherwise the local runtime runs it. Run it as
Knative does::

    uvicorn functions.dispatch.main:app --host 0.0.0.0 --port $PORT --no-access-log

``dispatch`` is also a plain functions-framework HTTP function (its default signature type), so
``functions-framework --asgi --source functions/dispatch/main.py --target dispatch`` serves the same;
the module does not import functions-framework, whose package loads Flask (``docs/performance.md``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from assay.functionhost import CloudEventHost
from assay.lifecycle import Runtime, handlers
from assay.settings import Settings
from functions import started


def runtime(settings: Settings) -> Runtime | None:
    if settings.runtime != "kubernetes":
        return None  # the local runtime
    # Imported only here: the kubernetes client stays out of every process that does not launch or watch.
    from assay.runtimes.kubernetes import kubernetes_runtime

    return kubernetes_runtime(settings, launches=True)  # it signs each launch's credential


host = CloudEventHost(with_runtime=True, runtime=runtime)


async def dispatch(request: Request) -> Response:
    """A CloudEvent from the broker (binary or structured), its sender checked first."""
    return await host.deliver(request, handlers.dispatch)


app = host.app(dispatch)
started()
