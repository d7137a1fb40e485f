"""Hosting lifecycle handlers as Knative CloudEvent functions (dispatch, aggregate, sweep).

Kept apart from :mod:`assay.http` on purpose: importing this package loads the lifecycle, the store and
starlette's request/response types, never FastAPI or the REST routers, so an event function's cold start
pays only for what it runs (``tests/test_cold_start_path.py``, ``docs/performance.md``).
"""

from assay.functionhost.host import CloudEventHost, Endpoint, Handler, event_app
from assay.functionhost.senders import bearer_of, verify_sender

__all__ = ["CloudEventHost", "Endpoint", "Handler", "bearer_of", "event_app", "verify_sender"]
