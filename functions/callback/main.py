"""Knative Service ``callback``: where sidecars post benchmark status events.

``POST /api/v1/evaluations/jobs/{id}/events`` records the event; a run that turns terminal commits a
``benchmark.finished`` event with it, delivered to the broker (``K_SINK``) for aggregate. Run it as
Knative does::

    uvicorn functions.callback.main:app --host 0.0.0.0 --port $PORT
"""

from __future__ import annotations

from fastapi import FastAPI

from assay.http import create_app
from assay.settings import Settings
from assay.telemetry import configure_logging
from functions import started


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(mode="cluster")
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings, "callback", load_catalogue=False, lifecycle="function")


app = build()
started()
