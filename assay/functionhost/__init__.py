"""Hosting lifecycle handlers as Knative CloudEvent functions (dispatch, aggregate, sweep; tenants uses
``app`` alone).

Kept apart from :mod:`assay.http` on purpose: ``host`` loads the lifecycle, the store and starlette's
request/response types, never FastAPI or the REST routers, so an event function's cold start pays only for
what it runs (``tests/test_cold_start_path.py``, ``docs/performance.md``). Names load with their module on
first use, so ``assay.functionhost.app`` comes without the lifecycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assay._lazy import exports

if TYPE_CHECKING:
    from assay.functionhost.app import Endpoint, event_app, read_event
    from assay.functionhost.host import CloudEventHost, Handler
    from assay.functionhost.senders import bearer_of, verify_sender

_HOMES = {
    "CloudEventHost": "host",
    "Handler": "host",
    "Endpoint": "app",
    "event_app": "app",
    "read_event": "app",
    "bearer_of": "senders",
    "verify_sender": "senders",
}

__getattr__ = exports(__name__, _HOMES)

__all__ = ["CloudEventHost", "Endpoint", "Handler", "bearer_of", "event_app", "read_event", "verify_sender"]
