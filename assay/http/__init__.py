"""The HTTP edge: FastAPI routers, request context, error mapping, middleware, CloudEvent hosting."""

from assay.http.app import CALLBACK, HUB, SUBMIT, create_app
from assay.http.functions import CloudEventHost

__all__ = ["CALLBACK", "HUB", "SUBMIT", "CloudEventHost", "create_app"]
