"""The HTTP edge: FastAPI routers, request context, error mapping, middleware, CloudEvent hosting."""

from assay.functionhost import CloudEventHost  # re-exported: it lives apart so event functions skip FastAPI
from assay.http.app import Role, create_app, routers

__all__ = ["CloudEventHost", "Role", "create_app", "routers"]
