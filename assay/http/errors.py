"""The one place where exceptions become HTTP responses (EvalHub's error body plus ``errors``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import OperationalError
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from assay.api import ErrorBody, ErrorDetail
from assay.core import field_errors, summarise
from assay.errors import AssayError, FieldError, InvalidJSON, InvalidQuery, InvalidRequest, TemporaryError

log = logging.getLogger(__name__)

ReferenceCheck = Callable[[Request, dict[str, Any]], Awaitable[list[FieldError]]]
"""The errors a body's references (ids of providers, collections, benchmarks) would get, given the body with
its unknown fields removed."""

_REFERENCE_CHECKS: dict[Callable[..., Any], ReferenceCheck] = {}


def checks_references(check: ReferenceCheck) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a route whose body names other resources: when the body is refused only for unknown fields, the
    answer also lists the references ``check`` finds broken, so one response names every invalid field
    (a typo'd field name and a wrong benchmark id are fixed in one round trip). Apply below ``@router.*``."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        _REFERENCE_CHECKS[endpoint] = check
        return endpoint

    return register


async def _reference_errors(request: Request, body: object, raw: list[dict[str, Any]]) -> list[FieldError]:
    route = request.scope.get("route")
    check = _REFERENCE_CHECKS.get(getattr(route, "endpoint", None))  # type: ignore[arg-type]
    if check is None or not isinstance(body, dict) or any(e.get("type") != "extra_forbidden" for e in raw):
        return []
    return await check(request, _without(body, [tuple(e["loc"])[1:] for e in raw]))


def _without(body: dict[str, Any], paths: list[tuple[Any, ...]]) -> dict[str, Any]:
    """A copy of ``body`` without the members at ``paths`` (pydantic locations: keys and list indices)."""
    import copy

    cleaned = copy.deepcopy(body)
    for path in paths:
        node: Any = cleaned
        for part in path[:-1]:
            node = node[part] if isinstance(node, (dict, list)) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return cleaned


def request_id(request: Request) -> str:
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else str(uuid.uuid4())


def error_response(request: Request, exc: AssayError) -> JSONResponse:
    return error_response_for(exc, request_id(request))


def error_response_for(exc: AssayError, trace: str) -> JSONResponse:
    body = ErrorBody(
        message_code=exc.message_code,
        message=exc.message,
        trace=trace,
        detail=exc.message,
        errors=[ErrorDetail(path=e.path, code=e.code, message=e.message) for e in exc.errors],
    )
    headers = {"X-Content-Type-Options": "nosniff"}
    if isinstance(exc, TemporaryError):
        headers["Retry-After"] = "1"
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="assay"'  # RFC 6750: how to authenticate
    return JSONResponse(body.model_dump(mode="json"), status_code=exc.status, headers=headers)


async def _assay_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AssayError)
    if exc.status >= 500:
        log.error("request failed: %s", exc.message)
    return error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in raw):
        ctx: dict[str, object] = next((e.get("ctx", {}) for e in raw if e.get("type") == "json_invalid"), {})
        return error_response(
            request, InvalidJSON(f"The request body is not valid JSON: {ctx.get('error', 'parse error')}")
        )
    body_errors = [e for e in raw if tuple(e.get("loc", ()))[:1] == ("body",)]
    if body_errors:
        errors = field_errors(body_errors, strip=1)
        errors += await _reference_errors(request, getattr(exc, "body", None), body_errors)
        return error_response(request, InvalidRequest(summarise(errors), errors=errors))
    errors = field_errors(raw, strip=1)
    return error_response(
        request, InvalidQuery(summarise(errors, "Invalid query or path parameter"), errors=errors)
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        err: AssayError = AssayError(
            f"No route for {request.method} {request.url.path}", message_code="resource_not_found"
        )
    elif exc.status_code == 405:
        err = AssayError(
            f"Method {request.method} is not allowed on {request.url.path}", message_code="method_not_allowed"
        )
    else:
        err = AssayError(str(exc.detail), message_code="http_error")
    err.status = exc.status_code
    response = error_response(request, err)
    for name, value in (exc.headers or {}).items():  # 405 keeps its Allow header (RFC 9110)
        response.headers.setdefault(name, value)
    return response


async def _database_away(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return error_response(request, TemporaryError("The database is unavailable; retry shortly"))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(request, AssayError("Internal server error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AssayError, _assay_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_away)
    app.add_exception_handler(PoolTimeout, _database_away)
    app.add_exception_handler(Exception, _unexpected)
