"""Routes served before FastAPI's, for the requests every evaluation makes several times (a client's poll of its
job, an adapter's status events): Starlette routes without FastAPI's per-request dependency solving, found first.
FastAPI's registrations of the same paths stay: they are what ``/openapi.json`` describes, and where a plain
route hands what it does not take (see :mod:`assay.http.callbacks`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from assay.http.edge import is_json_media, replay

__all__ = ["PlainRoute", "ValidatedBody", "route_of"]

M = TypeVar("M", bound=BaseModel)


class PlainRoute(Route):
    """A Starlette route that names itself in the scope, as FastAPI's do (the access log and the metrics read
    ``scope["route"].path``), for exactly the method it is given. ``endpoint``: a function of the request, or an
    ASGI application (an object that is not a function)."""

    def __init__(
        self, path: str, endpoint: Callable[[Request], Awaitable[Response]] | ASGIApp, method: str
    ) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.methods = {method}  # Starlette adds HEAD to a GET route; FastAPI's route did not answer it

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


class ValidatedBody(Generic[M]):
    """An ASGI endpoint for a route whose body is one model: a JSON body (``application/json`` or
    ``application/*+json``, what FastAPI parses as JSON) that is a valid ``model`` is parsed and validated in one
    pass (``model_validate_json``) and given to ``take``; any other body (another content type or none, not JSON,
    not valid) goes to FastAPI's ``fallback`` route, whose answer, an error naming the field included, is what it
    always was. The access middleware authorised the request before either."""

    def __init__(
        self, model: type[M], take: Callable[[Request, M], Awaitable[Response]], fallback: APIRoute
    ) -> None:
        self._model = model
        self._take = take
        self._fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()  # the whole body: RequestMiddleware read it, the JSON policy screened it
        receive = replay(message, receive)
        if message["type"] == "http.request" and _json_content(scope):
            try:
                value = self._model.model_validate_json(message.get("body", b""))
            except ValidationError:
                pass
            else:
                response = await self._take(Request(scope, receive), value)
                await response(scope, receive, send)
                return
        scope["route"] = self._fallback  # as FastAPI's router sets it: its error handlers read the route
        await self._fallback.handle(scope, receive, send)


def _json_content(scope: Scope) -> bool:
    """A content type FastAPI parses as JSON; with none it does not (its strict content types)."""
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name.lower() == b"content-type":
            return is_json_media(value.decode("latin-1"))
    return False


def route_of(router: APIRouter, endpoint: Callable[..., Any], path: str) -> APIRoute:
    """``router``'s route of ``endpoint`` at ``path`` (the full path, prefix included)."""
    return next(
        r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint and r.path == path
    )
