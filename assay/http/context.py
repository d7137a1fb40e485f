"""Request-scoped inputs: who is asking (tenant, user), strict query parameters, paging."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal, cast
from urllib.parse import urlencode

from fastapi import Depends, Request

from assay.auth import Principal
from assay.core import Tenant
from assay.errors import FieldError, Forbidden, InvalidQuery
from assay.settings import Settings
from assay.store import Database, Groups, Sort, TenantStore
from assay.telemetry import tenant_var, user_var

if TYPE_CHECKING:
    from assay.lifecycle import Hub, Lifecycle


def lifecycle_of(request: Request) -> Lifecycle:
    """The lifecycle of the hub the app's lifespan opened."""
    return cast("Hub", request.app.state.hub).lifecycle


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: Tenant
    user: str | None
    store: TenantStore
    principal: Principal | None = None


def settings_of(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def database_of(request: Request) -> Database:
    return cast(Database, request.app.state.database)


def principal_of(request: Request) -> Principal | None:
    return cast(Principal | None, request.scope.get("state", {}).get("principal"))


async def caller(request: Request) -> Caller:
    """The tenant and subject of this request, as :class:`~assay.http.auth.AccessMiddleware` established and
    authorised them. The owner of what the caller creates is the authenticated subject, never a header."""
    state = request.scope.setdefault("state", {})
    tenant_name = state.get("tenant")
    principal = principal_of(request)
    if tenant_name is None or principal is None:
        # Only a route whose rule authorises no tenant gets here: a programming error, refused.
        raise Forbidden("This route does not authorise a tenant")
    tenant = Tenant(tenant_name)
    user = principal.subject[:256] if principal.kind in ("user", "sender") else None
    state["user"] = user
    tenant_var.set(tenant.name)
    user_var.set(user)
    return Caller(tenant=tenant, user=user, store=database_of(request).scoped(tenant), principal=principal)


# A route's authenticated caller, as FastAPI resolves it.
CallerDep = Annotated[Caller, Depends(caller)]


def timestamp(value: datetime) -> str:
    """A stored time as the API writes it: UTC, ISO 8601 with ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def strict_query(*allowed: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing query parameters outside ``allowed`` with 400 ``query_bad_parameter``."""
    names = frozenset(allowed)

    async def check(request: Request) -> None:  # async: FastAPI would run a sync one in a thread
        unknown = sorted({k for k in request.query_params if k not in names})
        if unknown:
            raise InvalidQuery(
                f"Unknown query parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}",
                message_code="query_bad_parameter",
                errors=[
                    FieldError(k, "unknown_parameter", f"{k!r} is not a query parameter here")
                    for k in unknown
                ],
            )

    return check


def groups(request: Request, name: str) -> Groups:
    """A list filter: repeated values and ``,`` mean AND, ``|`` means OR."""
    values = request.query_params.getlist(name)
    parts = [part for value in values for part in value.split(",")]
    return tuple(g for g in (tuple(v.strip() for v in p.split("|") if v.strip()) for p in parts) if g)


def boolean(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidQuery(
        f"Query parameter {name!r} must be true or false, got {raw[:40]!r}",
        errors=[FieldError(name, "type", "must be true or false")],
    )


def _integer(request: Request, name: str, default: int, lowest: int, highest: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lowest - 1
    if not lowest <= value <= highest:
        raise InvalidQuery(
            f"Query parameter {name!r} must be an integer from {lowest} to {highest}, got {raw[:40]!r}",
            errors=[FieldError(name, "range", f"must be an integer from {lowest} to {highest}")],
        )
    return value


def number(request: Request, name: str, default: float, lowest: float) -> float:
    """A finite number of at least ``lowest`` (``default`` when the parameter is absent)."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value >= lowest and value < float("inf")):
        raise InvalidQuery(
            f"Query parameter {name!r} must be a number of at least {lowest:g}, got {raw[:40]!r}",
            message_code="query_parameter_value_invalid",
            errors=[FieldError(name, "range", f"must be a number of at least {lowest:g}")],
        )
    return value


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int
    offset: int


def paging(request: Request, default_limit: int) -> Paging:
    highest = settings_of(request).list_max_limit
    return Paging(
        limit=_integer(request, "limit", min(default_limit, highest), 1, highest),
        offset=_integer(request, "offset", 0, 0, 2**31 - 1),
    )


def scope_and_owner(request: Request) -> tuple[Literal["system", "tenant"] | None, Groups]:
    scope = request.query_params.get("scope")
    owner = groups(request, "owner")
    if scope is not None and owner:
        raise InvalidQuery("Use either 'owner' or 'scope', not both", message_code="query_parameter_mismatch")
    if scope not in (None, "system", "tenant"):
        raise InvalidQuery(
            f"Query parameter 'scope' must be 'system' or 'tenant', got {scope[:40]!r}",
            errors=[FieldError("scope", "enum", "must be system or tenant")],
        )
    return cast(Literal["system", "tenant"] | None, scope), owner


def sort_order(request: Request) -> Sort:
    raw = request.query_params.get("sort", "created_at")
    choices = ("created_at", "-created_at", "name", "-name")
    if raw not in choices:
        raise InvalidQuery(
            f"Query parameter 'sort' must be one of {', '.join(choices)}",
            errors=[FieldError("sort", "enum", f"must be one of {', '.join(choices)}")],
        )
    return cast(Sort, raw)


def page_links(request: Request, page: Paging, total: int) -> dict[str, dict[str, str]]:
    """``first`` echoes the request; ``next`` appears only when it really advances."""

    def href(params: Iterable[tuple[str, str]]) -> str:
        query = urlencode(list(params))
        return request.url.path + (f"?{query}" if query else "")

    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]
    links = {"first": {"href": href([*kept, ("limit", str(page.limit))])}}
    if page.offset + page.limit < total:
        links["next"] = {
            "href": href([*kept, ("limit", str(page.limit)), ("offset", str(page.offset + page.limit))])
        }
    return links
