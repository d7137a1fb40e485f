"""ASGI middleware: request id, body-size limit, Prometheus metrics and the access log (outermost), and the JSON
policy (inside authentication: an anonymous caller's body is never parsed)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assay.errors import PayloadTooLarge
from assay.http.edge import screen_request
from assay.http.errors import error_response_for
from assay.telemetry import Metrics, request_id_var

log = logging.getLogger("assay.access")

_QUIET = {"/metrics", "/health", "/healthz", "/readyz", "/api/v1/health"}
_REQUEST_ID_MAX = 128


def _request_id(given: str | None) -> str:
    """The caller's ``X-Global-Transaction-Id`` when it is a plain token (visible ASCII, at most 128 characters),
    else a fresh one: it is echoed in a response header and written on every log line of the request."""
    if (
        given
        and len(given) <= _REQUEST_ID_MAX
        and given.isascii()
        and given.isprintable()
        and " " not in given
    ):
        return given
    return str(uuid.uuid4())


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the last of a repeated one wins), decoded once per request: both
    middlewares read them."""
    state: dict[str, Any] = scope.setdefault("state", {})
    headers: dict[str, str] | None = state.get("headers")
    if headers is None:
        headers = state["headers"] = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
    return headers


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)
        rid = _request_id(headers.get("x-global-transaction-id"))
        state: dict[str, Any] = scope["state"]
        state["request_id"] = rid
        token = request_id_var.set(rid)
        status = 500
        started = time.perf_counter()
        declared = headers.get("content-length", "")

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-global-transaction-id", rid.encode("latin-1")),
                ]
            await send(message)

        try:
            body_receive = await self._bounded_body(declared, receive)
            if body_receive is None:
                too_large = PayloadTooLarge(f"The request body is larger than {self.max_body} bytes")
                await error_response_for(too_large, rid)(scope, receive, tracked_send)
                return
            await self.app(scope, body_receive, tracked_send)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(scope["method"], template, status, elapsed)
            level = logging.DEBUG if template in _QUIET else logging.INFO
            log.log(
                level,
                "%s %s -> %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "request_id": rid,
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "tenant": state.get("tenant"),
                    "user": state.get("user"),
                },
            )
            request_id_var.reset(token)

    async def _bounded_body(self, declared: str, receive: Receive) -> Receive | None:
        """Read the whole body up front (it is at most ``max_body`` bytes) and replay it, or None if larger.

        Reading it here, rather than raising from inside ``receive``, keeps the limit independent of
        how the framework reports errors while parsing a body.
        """
        if (
            declared.isascii()
            and declared.isdigit()
            and (len(declared) > 18 or int(declared) > self.max_body)
        ):
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message])
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)


class JsonPolicyMiddleware:
    """The JSON policy (:mod:`assay.http.edge`): NaN, Infinity and NUL are refused before any route runs. It sits
    inside :class:`~assay.http.auth.AccessMiddleware`, so only an authenticated, authorised request's body is
    parsed for it; :class:`RequestMiddleware` has already bounded and buffered the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        screened, refusal = await screen_request(scope, receive)
        if refusal is not None:
            rid = scope.get("state", {}).get("request_id") or str(uuid.uuid4())
            await error_response_for(refusal, rid)(scope, screened, send)
            return
        await self.app(scope, screened, send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return replayed
