"""The HTTP edge: FastAPI routers, request context, error mapping and middleware."""

from assay.http.app import CATALOGUE, create_app

__all__ = ["CATALOGUE", "create_app"]
