"""Knative Service ``callback``: where sidecars post benchmark events.

Today it serves the operations surface (health, readiness, metrics) over the same database; the
events route (``POST /api/v1/evaluations/jobs/{id}/events``) arrives with the job lifecycle.
Run it as Knative does::

    uvicorn functions.callback.main:app --host 0.0.0.0 --port $PORT
"""

from __future__ import annotations

from fastapi import FastAPI

from assay.http import create_app
from assay.settings import Settings
from assay.telemetry import configure_logging


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(mode="cluster")
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings, routers=(), load_catalogue=False)


app = build()
