"""``/openapi.json`` as the API really behaves: every query parameter a route accepts, the headers it
reads (``X-Tenant``, ``Idempotency-Key``, CloudEvent binary-mode headers), and every status it answers
with its body: 400 (not FastAPI's 422) for invalid input, 401/403 for authentication and authorisation,
404, 409, 413, 415 and 503 where they can happen, each with EvalHub's error body.

Routes read their query parameters from the request (and refuse unknown ones through
``strict_query``); the names are taken from that dependency, their types and meanings from one table
here, so a parameter added to a route without a line here fails tests/http/test_openapi.py.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from assay.api import ErrorBody

_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_FILTER = "A list filter: repeat the parameter or separate values with `,` for AND, `|` for OR."

QUERY_PARAMETERS: dict[str, tuple[dict[str, Any], str]] = {
    "limit": (
        {"type": "integer", "minimum": 1, "maximum": 500},
        "Most items in the page (at most the hub's ASSAY_LIST_MAX_LIMIT).",
    ),
    "offset": ({"type": "integer", "minimum": 0}, "Items to skip."),
    "cursor": (
        _STR,
        "Where the page starts: the opaque cursor of a previous page's `next.href` (not with offset).",
    ),
    "benchmarks": (_BOOL, "Include each provider's benchmarks (default true)."),
    "name": (_STR, f"Filter by name. {_FILTER}"),
    "tags": (_STR, f"Filter by tags. {_FILTER}"),
    "owner": (_STR, f"Filter by owner. {_FILTER}"),
    "category": (_STR, f"Filter by category. {_FILTER}"),
    "scope": (
        {"type": "string", "enum": ["system", "tenant"]},
        "Only the system catalogue, or only the tenant's own.",
    ),
    "sort": (
        {"type": "string", "enum": ["created_at", "-created_at", "name", "-name"]},
        "Order of the list.",
    ),
    "status": (_STR, f"Filter jobs by state. {_FILTER}"),
    "experiment_id": (_STR, f"Filter jobs by MLflow experiment id. {_FILTER}"),
    "collection_id": (_STR, f"Filter jobs by collection. {_FILTER}"),
    "hard_delete": (_BOOL, "Delete the job and its data instead of cancelling it (default false)."),
    "baseline": (_STR, "The id of the job to compare with (a job of the same tenant)."),
    "max_drop": ({"type": "number", "minimum": 0}, "The largest drop that is not a regression (default 0)."),
    "relative": (_BOOL, "max_drop is a fraction of the baseline's score (default false)."),
    "sigma": (
        {"type": "number", "minimum": 0},
        "A regression must also exceed this many combined standard errors (default 2).",
    ),
    "format": (
        {"type": "string", "enum": ["junit", "markdown", "github-status", "gitlab-status"]},
        "The report's format (default junit).",
    ),
    "context": (_STR, "The commit-status context (default assay/<job name>)."),
    "only": (
        {"type": "string", "enum": ["failed"]},
        "Which benchmarks to run again (failed and cancelled ones).",
    ),
    "tail_lines": (
        {"type": "integer", "minimum": -1, "maximum": 10000},
        "Last lines of each log (-1: all; default 1000).",
    ),
    "timestamps": (_BOOL, "Prefix each line with its time (default false)."),
    "since_seconds": ({"type": "integer", "minimum": 1}, "Only lines of the last N seconds."),
    "enabled": (_BOOL, "Filter policies by whether they are enabled."),
    "evaluation_id": (_STR, "Filter dead letters by evaluation."),
    "type": (_STR, "Filter dead letters by CloudEvent type."),
    "tenant": (_STR, "The tenant the delivery is for (when no X-Tenant header names it)."),
    "registry": (_STR, "The registry name evaluation policies match on."),
}

_TENANT_HEADER = {
    "name": "X-Tenant",
    "in": "header",
    "required": False,
    "description": "The tenant to act in (default: the hub's default tenant in local mode; required in cluster mode).",
    "schema": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
}
_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Submit at most once per key and tenant: a replay answers with the first job "
    "(Idempotent-Replayed: true); the same key with another body is 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_CLOUDEVENT_HEADERS = [
    {
        "name": name,
        "in": "header",
        "required": False,
        "description": f"CloudEvents HTTP binary mode: the event's `{name[3:]}` (or send application/cloudevents+json).",
        "schema": {"type": "string"},
    }
    for name in ("ce-id", "ce-type", "ce-source", "ce-specversion", "ce-subject", "ce-time")
]

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_STATUS_TEXT = {
    "400": "Invalid input: the body, a query or path parameter, or a header; `errors` names each field",
    "401": "No valid credentials (`WWW-Authenticate: Bearer`)",
    "403": "The caller may not do this in this tenant",
    "404": "No such resource (or route) in the tenant",
    "405": "The method is not allowed on this path (`Allow` lists those that are)",
    "409": "The resource's state forbids the change, or it already exists",
    "413": "The body is larger than the hub accepts",
    "415": "The body is not JSON",
    "503": "The database is unavailable: retry (`Retry-After`)",
}
_PUBLIC = {"/api/v1/health", "/readyz"}
_CALLERS_WITH_TENANT = ("/api/v1/evaluations", "/api/v1/events", "/api/v1/webhooks", "/api/v1/dead-letters")


def _query_names(route: APIRoute) -> list[str]:
    """The query parameters ``strict_query`` lets through on ``route``, in its order."""
    for dependency in route.dependant.dependencies:
        call = dependency.call
        if call is not None and getattr(call, "__qualname__", "").startswith("strict_query."):
            names = inspect.getclosurevars(call).nonlocals.get("names", frozenset())
            return sorted(names)
    return []


def _api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """(effective path, route) of every documented API route, through included routers."""
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI >= 0.165: routers are included lazily
    except ImportError:  # older FastAPI copies the routes into app.routes with their full paths
        return [(r.path_format, r) for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema]
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema and context.path_format:
            found.append((context.path_format, route))
    return found


def _error(code: str) -> dict[str, Any]:
    return {"description": _STATUS_TEXT[code], "content": {"application/json": {"schema": _ERROR_REF}}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    routes = {
        (method.lower(), path): route for path, route in _api_routes(app) for method in route.methods or ()
    }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            route = routes.get((method, path))
            parameters: list[dict[str, Any]] = operation.setdefault("parameters", [])
            known = {(p["in"], p["name"].lower()) for p in parameters}
            for name in _query_names(route) if route is not None else []:
                if ("query", name) in known:
                    continue
                if name not in QUERY_PARAMETERS:
                    raise KeyError(
                        f"{method.upper()} {path}: query parameter {name!r} is not described in {__name__}"
                    )
                param_schema, description = QUERY_PARAMETERS[name]
                parameters.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": False,
                        "description": description,
                        "schema": param_schema,
                    }
                )
            if path.startswith(_CALLERS_WITH_TENANT) and ("header", "x-tenant") not in known:
                parameters.append(_TENANT_HEADER)
            if method == "post" and path in ("/api/v1/evaluations/jobs", "/api/v1/evaluations"):
                parameters.append(_IDEMPOTENCY_HEADER)
            if method == "post" and path == "/api/v1/events":
                parameters.extend(_CLOUDEVENT_HEADERS)
            if not parameters:
                operation.pop("parameters")
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            has_body = "requestBody" in operation
            codes = ["400", "404", "503"]
            if path not in _PUBLIC:
                codes += ["401", "403"]
            if method in ("post", "put", "patch", "delete"):
                codes.append("409")
            if has_body:
                codes += ["413", "415"]
            for code in sorted(codes):
                responses.setdefault(code, _error(code))
    return schema


def describe(app: FastAPI) -> None:
    """Serve :func:`build_openapi`'s document at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["QUERY_PARAMETERS", "build_openapi", "describe"]
