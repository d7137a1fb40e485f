"""Knative Service ``submit``: the EvalHub v1 REST API that users, the SDK and the CLI call.

Serves jobs, providers and collections; a submitted job and its ``evaluation.accepted`` event commit
together and the event goes to the broker (``K_SINK``) before the 202. Configured entirely from the
environment (``DATABASE_URL``, ``K_SINK``, ``ASSAY_*``). Run it as Knative does::

    uvicorn functions.submit.main:app --host 0.0.0.0 --port $PORT
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
    return create_app(settings, "submit", lifecycle="function")


app = build()
started()
