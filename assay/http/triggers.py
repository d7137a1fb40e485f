"""The trigger ingress: registry CloudEvents, MLflow, GitHub and GitLab webhooks (the policies they evaluate:
policies.py). Every ingress authenticates first (401), names its tenant (``?tenant=``; 403 when the tenant is
unknown or has no secret), parses (400 naming the field), and only then creates anything: 202 with the job ids
it started, 200 for a duplicate or an event that starts nothing (with the reason)."""

from __future__ import annotations

import hmac
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from cloudevents.exceptions import GenericException as CloudEventError
from cloudevents.http import from_http
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from assay import triggers
from assay.auth import Access, Permission
from assay.core import Tenant
from assay.errors import FieldError, Forbidden, InvalidJSON, InvalidRequest, Unauthenticated, UnknownTenant
from assay.http.context import lifecycle_of, principal_of, settings_of, strict_query

if TYPE_CHECKING:
    from assay.triggers import Ignored, ModelVersionEvent, WebhookSecrets

ingress_router = APIRouter(prefix="/api/v1", tags=["triggers"])
# Registry CloudEvents come from the broker inside the cluster: served by the cluster-local callback service.
registry_router = APIRouter(prefix="/api/v1", tags=["triggers"])


def _secrets(request: Request) -> WebhookSecrets:
    state = request.app.state
    if not hasattr(state, "webhook_secrets"):
        state.webhook_secrets = triggers.WebhookSecrets(settings_of(request))
    return cast("WebhookSecrets", state.webhook_secrets)


def _tenant(request: Request, fallback: str | None = None) -> Tenant:
    """The tenant a delivery names (``?tenant=``; a CloudEvent may carry it instead), else the local default."""
    settings = settings_of(request)
    raw = request.query_params.get("tenant") or fallback
    if not raw:
        if settings.mode == "cluster":
            raise UnknownTenant(
                "The delivery names no tenant: add ?tenant=<tenant> to the webhook URL",
                errors=[FieldError("tenant", "required", "query parameter missing")],
            )
        raw = settings.default_tenant
    tenant = Tenant(raw.strip())
    if settings.tenants and tenant.name not in settings.tenants:
        raise UnknownTenant(f"Tenant {tenant.name!r} is not known to this hub")
    return tenant


def _secret(request: Request, tenant: Tenant, forge: str) -> str:
    secret = _secrets(request).secret(tenant.name, forge)
    if secret is None:
        raise UnknownTenant(
            f"Tenant {tenant.name!r} has no {forge} webhook secret configured",
            errors=[FieldError("tenant", "unknown_tenant", f"no {forge} webhook secret for this tenant")],
        )
    return secret


def _json(body: bytes) -> object:
    try:
        return json.loads(body)  # RecursionError: nested past the parser's depth
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidJSON(f"The request body is not valid JSON: {exc}") from None


def _required_header(request: Request, *names: str) -> str:
    for name in names:
        value = (request.headers.get(name) or "").strip()
        if value:
            return value
    raise InvalidRequest(
        f"The delivery lacks the {names[0]} header",
        errors=[FieldError(names[0], "required", "header missing")],
    )


async def _answer(
    request: Request, tenant: Tenant, source: str, delivery_id: str, parsed: ModelVersionEvent | Ignored
) -> JSONResponse:
    outcome = await triggers.ingest(lifecycle_of(request), tenant, source, delivery_id, parsed)
    return JSONResponse(outcome.body(), status_code=outcome.http_status)


_QUERY = Depends(strict_query("tenant", "registry"))


@ingress_router.post("/webhooks/mlflow", dependencies=[_QUERY])
async def mlflow_webhook(request: Request) -> JSONResponse:
    """MLflow 3 model-registry webhooks (``X-MLflow-Signature``, ``-Delivery-Id``, ``-Timestamp``)."""
    tenant = _tenant(request)
    secret = _secret(request, tenant, "mlflow")
    body = await request.body()
    delivery_id = request.headers.get("x-mlflow-delivery-id")
    triggers.verify_mlflow(
        secret,
        signature=request.headers.get("x-mlflow-signature"),
        delivery_id=delivery_id,
        timestamp=request.headers.get("x-mlflow-timestamp"),
        body=body,
        now=time.time(),
        tolerance_seconds=settings_of(request).webhook_timestamp_tolerance_seconds,
    )
    assert delivery_id is not None  # verified above
    registry = request.query_params.get("registry") or "mlflow"
    parsed = triggers.parse_mlflow(_json(body), delivery_id=delivery_id, registry=registry)
    return await _answer(request, tenant, "mlflow", delivery_id, parsed)


@ingress_router.post("/webhooks/github", dependencies=[Depends(strict_query("tenant"))])
async def github_webhook(request: Request) -> JSONResponse:
    """GitHub webhooks (``X-Hub-Signature-256``; deduplicated on ``X-GitHub-Delivery``)."""
    tenant = _tenant(request)
    secret = _secret(request, tenant, "github")
    body = await request.body()
    triggers.verify_github(secret, signature=request.headers.get("x-hub-signature-256"), body=body)
    delivery_id = _required_header(request, "X-GitHub-Delivery")
    event_name = _required_header(request, "X-GitHub-Event")
    parsed = triggers.parse_github(event_name, _json(body), delivery_id=delivery_id, now=datetime.now(UTC))
    return await _answer(request, tenant, "github", delivery_id, parsed)


@ingress_router.post("/webhooks/gitlab", dependencies=[Depends(strict_query("tenant"))])
async def gitlab_webhook(request: Request) -> JSONResponse:
    """GitLab webhooks (``X-Gitlab-Token``; deduplicated on ``Idempotency-Key``, which GitLab keeps across
    retries, else ``X-Gitlab-Webhook-UUID`` / ``X-Gitlab-Event-UUID``)."""
    tenant = _tenant(request)
    secret = _secret(request, tenant, "gitlab")
    triggers.verify_gitlab(secret, token=request.headers.get("x-gitlab-token"))
    body = await request.body()
    delivery_id = _required_header(request, "Idempotency-Key", "X-Gitlab-Webhook-UUID", "X-Gitlab-Event-UUID")
    event_name = _required_header(request, "X-Gitlab-Event")
    parsed = triggers.parse_gitlab(
        event_name,
        _json(body),
        delivery_id=delivery_id,
        instance=request.headers.get("x-gitlab-instance"),
        now=datetime.now(UTC),
    )
    return await _answer(request, tenant, "gitlab", delivery_id, parsed)


@registry_router.post("/events", dependencies=[Depends(strict_query("tenant"))])
async def registry_event(request: Request) -> JSONResponse:
    """Registry CloudEvents, binary (``ce-*`` headers) or structured (``application/cloudevents+json``) mode.

    Accepted from the broker (its OIDC identity is one of ``ASSAY_EVENT_SENDERS``), from a sender outside the
    cluster that signs the body (``X-Assay-Signature: sha256=<hex HMAC>`` with the tenant's ``cloudevents``
    webhook secret), or from a caller who may create evaluations in the tenant. The tenant is ``?tenant=``,
    else ``X-Tenant``, else the event's ``tenant`` extension or data field."""
    body = await request.body()
    try:
        event = from_http(dict(request.headers), body)
    except CloudEventError as exc:
        raise InvalidRequest(
            f"Not a CloudEvent: {exc}",
            message_code="invalid_cloudevent",
            errors=[FieldError("$", "invalid_cloudevent", str(exc))],
        ) from None
    data = event.data
    if isinstance(data, bytes | str):
        data = _json(data.encode() if isinstance(data, str) else data)
    extension = event.get("tenant")
    named = (request.headers.get("x-tenant") or "").strip() or None
    if named is None:
        named = extension if isinstance(extension, str) else None
    if named is None and isinstance(data, dict) and isinstance(data.get("tenant"), str):
        named = data["tenant"]
    tenant = _tenant(request, named)
    await _check_registry_sender(request, tenant, body)
    delivery_id = f"{event['source']}#{event['id']}"
    parsed = triggers.parse_registry_event(str(event["type"]), delivery_id, data)
    return await _answer(request, tenant, "cloudevents", delivery_id, parsed)


async def _check_registry_sender(request: Request, tenant: Tenant, body: bytes) -> None:
    principal = principal_of(request)
    if principal is None:
        signature = request.headers.get("x-assay-signature")
        if signature is None:
            raise Unauthenticated(
                "A registry event needs the broker's identity, a bearer token or an X-Assay-Signature"
            )
        expected = triggers.github_signature(_secret(request, tenant, "cloudevents"), body)
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            raise Unauthenticated(
                "X-Assay-Signature does not match the body signed with this tenant's cloudevents secret",
                errors=[FieldError("X-Assay-Signature", "mismatch", "signature does not match")],
            )
        return
    if principal.kind == "sender":
        return
    access: Access = request.app.state.access
    if not await access.guard.authorize(principal, tenant.name, Permission("evaluations", "create")):
        raise Forbidden(f"{principal.subject!r} may not create evaluations in tenant {tenant.name!r}")


__all__ = ["ingress_router", "registry_router"]
