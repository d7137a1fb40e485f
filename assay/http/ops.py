"""The operations surface: liveness, readiness (checks the database), metrics, OpenAPI as YAML."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from assay import __version__
from assay.api import Health
from assay.http.context import database_of
from assay.telemetry import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


def _healthy() -> dict[str, Any]:
    return Health(status="healthy", timestamp=datetime.now(UTC), version=__version__).model_dump(mode="json")


@router.get("/api/v1/health", response_model=Health)
async def health(request: Request) -> JSONResponse:
    """Health as eval-hub-sdk's ``client.health()`` and ``evalhub health`` expect it, telling the truth about
    the database: ``unhealthy`` (503) while it does not answer within a second. ``/healthz`` is liveness only."""
    return await _database_check(request, timeout=1.0)


@router.get("/health", response_model=Health, include_in_schema=False)
@router.get("/healthz", response_model=Health, include_in_schema=False)
async def health_alias() -> dict[str, Any]:
    return _healthy()


@router.get("/readyz", response_model=Health)
async def ready(request: Request) -> JSONResponse:
    """Ready when the database answers within two seconds."""
    return await _database_check(request, timeout=2.0)


async def _database_check(request: Request, timeout: float) -> JSONResponse:
    database = database_of(request)
    try:
        await asyncio.wait_for(database.ping(), timeout=timeout)
    except Exception as exc:
        # The reason goes to the log: an exception's text can name hosts, users and paths.
        log.warning("health: the database did not answer: %s", type(exc).__name__)
        check = "timeout" if isinstance(exc, TimeoutError) else "unavailable"
        down = database.down_for
        if down is not None:
            check = f"unavailable for {down:.0f} s"
        body = Health(
            status="unhealthy", timestamp=datetime.now(UTC), version=__version__, checks={"database": check}
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    body = Health(
        status="healthy", timestamp=datetime.now(UTC), version=__version__, checks={"database": "ok"}
    )
    return JSONResponse(body.model_dump(mode="json"))


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE)


@router.get("/openapi.yaml", include_in_schema=False)
async def openapi_yaml(request: Request) -> Response:
    spec = request.app.openapi()
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(spec)
    import yaml  # rarely asked for; not worth importing at cold start

    return Response(yaml.safe_dump(spec, sort_keys=False), media_type="application/yaml")
