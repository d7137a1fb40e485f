"""ASGI middleware: request id, body-size limit, Prometheus metrics and the access log."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assay.errors import PayloadTooLarge
from assay.telemetry import Metrics, request_id_var

log = logging.getLogger("assay.access")

_QUIET = {"/metrics", "/health", "/healthz", "/readyz", "/api/v1/health"}


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = headers.get("x-global-transaction-id") or str(uuid.uuid4())
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        token = request_id_var.set(rid)
        status = 500
        started = time.perf_counter()
        declared = headers.get("content-length", "")
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > self.max_body:
                raise PayloadTooLarge(f"The request body is larger than {self.max_body} bytes")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise PayloadTooLarge(f"The request body is larger than {self.max_body} bytes")
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-global-transaction-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
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
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "tenant": state.get("tenant"),
                    "user": state.get("user"),
                },
            )
            request_id_var.reset(token)
