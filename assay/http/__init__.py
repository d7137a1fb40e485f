"""The HTTP edge: FastAPI routers, request context, error mapping, middleware, CloudEvent hosting."""

from assay.functionhost import CloudEventHost  # re-exported: it lives apart so event functions skip FastAPI
from assay.http.app import CALLBACK, HUB, SUBMIT, create_app

__all__ = ["CALLBACK", "HUB", "SUBMIT", "CloudEventHost", "create_app"]
