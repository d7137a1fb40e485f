"""The ASGI app of a CloudEvent function and the read of a delivery's event: starlette and cloudevents only, so
the tenants function (no database, no lifecycle) shares them with dispatch, aggregate and sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from cloudevents.exceptions import GenericException as CloudEventError
from cloudevents.http import CloudEvent, from_http
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


def event_app(endpoint: Endpoint, close: Callable[[], Awaitable[None]]) -> Starlette:
    """The ASGI app of one CloudEvent function: ``endpoint`` answers a POST on any path (Knative's Triggers
    deliver to ``/``), ``close`` runs when the server shuts down."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await close()

    routes = [Route("/", endpoint, methods=["POST"]), Route("/{path:path}", endpoint, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


async def read_event(request: Request) -> CloudEvent | JSONResponse:
    """The delivery's CloudEvent (binary or structured), or the 400 that says why it is not one."""
    try:
        return from_http(dict(request.headers), await request.body())
    except CloudEventError as exc:
        return JSONResponse({"message_code": "invalid_cloudevent", "message": str(exc)}, 400)


HANDLED = 200
"""What a function answers for a handled CloudEvent (what functions-framework answered)."""
