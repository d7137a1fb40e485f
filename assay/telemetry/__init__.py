"""Observability: structured logs with request context, and Prometheus metrics."""

from assay.telemetry.logs import configure_logging, request_id_var, tenant_var, user_var
from assay.telemetry.metrics import CONTENT_TYPE, Metrics

__all__ = ["CONTENT_TYPE", "Metrics", "configure_logging", "request_id_var", "tenant_var", "user_var"]
