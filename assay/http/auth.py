"""The access middleware: every request is authenticated and authorised before a handler runs.

It finds the route a request is for, takes that route's :class:`~assay.auth.Rule`, checks the credential the
rule asks for (a bearer token, a launch credential, the broker's identity), resolves the tenant (``X-Tenant``,
else the local default) and asks the guard whether the caller may do the route's verb there. What it learnt
goes into the request state (``principal``, ``tenant``) for :func:`assay.http.context.caller`. Every change,
and every refusal, is written to the ``assay.audit`` log with subject, tenant, resource, verb and outcome.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assay.auth import ALL_TENANTS, Access, NoRule, Principal, Rule, rule_of
from assay.core import Tenant
from assay.core.credentials import is_launch_token
from assay.errors import AssayError, Forbidden, InvalidIdentity, Unauthenticated, UnknownTenant
from assay.functionhost.senders import bearer_of, verify_sender
from assay.http.errors import error_response_for
from assay.http.middleware import request_headers
from assay.settings import Settings

__all__ = ["AccessMiddleware", "bearer_of", "verify_sender"]

audit = logging.getLogger("assay.audit")

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AccessMiddleware:
    """Authenticates and authorises each HTTP request (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        access: Access,
        settings: Settings,
    ) -> None:
        self.app = app
        self.access = access
        self.settings = settings
        hosts = settings.allowed_hosts or (("*",) if settings.mode == "cluster" else _LOOPBACK_HOSTS)
        self._any_host = "*" in hosts
        self._hosts = frozenset(h.lower() for h in hosts)

    def _rule(self, method: str, path: str) -> Rule:
        try:
            return rule_of(method, path)
        except NoRule:
            # No route of this hub (the router answers 404 or 405): still only for authenticated callers.
            return Rule("authenticated")

    def _host_ok(self, headers: dict[str, str]) -> bool:
        if self._any_host:
            return True
        host = headers.get("host", "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in self._hosts or host in self._hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)
        state: dict[str, Any] = scope["state"]
        method = scope["method"]
        if not self._host_ok(headers):
            await self._refuse(
                scope,
                receive,
                send,
                InvalidIdentity(
                    "The Host header names a host this hub does not serve (set ASSAY_ALLOWED_HOSTS)",
                    message_code="invalid_host_header",
                ),
            )
            return
        if method == "OPTIONS":
            await self.app(scope, receive, send)  # a CORS preflight carries no credential
            return
        path = scope["path"]
        rule = self._rule(method, path)
        try:
            await self._check(rule, headers, state, scope, method)
        except AssayError as exc:
            self._audit(state, method, path, rule, exc.status)
            await self._refuse(scope, receive, send, exc)
            return
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            if method not in _SAFE_METHODS or status in (401, 403):
                self._audit(state, method, path, rule, status)

    async def _check(
        self, rule: Rule, headers: dict[str, str], state: dict[str, Any], scope: Scope, method: str
    ) -> None:
        guard = self.access.guard
        token = bearer_of(headers)
        if rule.kind in ("public", "signed", "session"):
            return
        if rule.kind == "launch":
            state["principal"] = self._launch(token, scope)
            return
        if rule.kind == "sender":
            if self.access.senders is None and self.settings.mode == "cluster" and token is None:
                # No sender identity configured (Knative's OIDC is off): the broker sends no token, and the
                # dead-letter sink must still record what it gives up on. NetworkPolicies guard the service.
                return
            state["principal"] = await verify_sender(self.access, token, headers)
            return
        if rule.kind == "ingress":
            # The route checks the HMAC signature or this principal against the tenant the event names.
            if token is not None:
                senders = self.access.senders
                sender = await senders.sender(token) if senders is not None else None
                state["principal"] = sender or await guard.authenticate(token, headers)
            return
        if token is None and self.access.session is not None:
            token = self.access.session.token(headers)
            if token is not None and method not in _SAFE_METHODS and not self.access.session.csrf_ok(headers):
                raise Forbidden(
                    "The request lacks the session's CSRF token", message_code="csrf_token_invalid"
                )
        principal = await guard.authenticate(token, headers)
        state["principal"] = principal
        if rule.kind == "authenticated" or rule.permission is None:
            return
        if rule.permission.cluster:  # hub-wide (metrics): no tenant to name
            tenant, where = ALL_TENANTS, ""
        else:
            tenant = state["tenant"] = self._tenant(headers)
            where = f" in tenant {tenant!r}"
        if not await guard.authorize(principal, tenant, rule.permission):
            raise Forbidden(
                f"{principal.subject!r} may not {rule.permission.verb} {rule.permission.resource}{where}"
            )

    def _tenant(self, headers: dict[str, str]) -> str:
        raw = (headers.get("x-tenant") or "").strip()
        if not raw:
            if self.settings.mode == "cluster":
                raise InvalidIdentity("The X-Tenant header is required", message_code="missing_tenant_header")
            raw = self.settings.default_tenant
        tenant = Tenant(raw).name
        if self.settings.tenants and tenant not in self.settings.tenants:
            raise UnknownTenant(f"Tenant {tenant!r} is not known to this hub")
        return tenant

    def _launch(self, token: str | None, scope: Scope) -> Principal:
        signer = self.access.signer
        if token is None or not is_launch_token(token):
            raise Unauthenticated("Status events need the launch credential the hub gave this run's sidecar")
        if signer is None:
            raise Unauthenticated("This hub has no launch signing key: it cannot verify status events")
        claims = signer.verify(token, datetime.now(UTC))
        job_id = scope["path"].rstrip("/").split("/")[-2]
        if claims.evaluation_id != job_id:
            raise Forbidden("The launch credential is for another evaluation job")
        return Principal(subject=f"launch:{claims.evaluation_id}", kind="launch", launch=claims)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: AssayError) -> None:
        await error_response_for(exc, str(scope.get("state", {}).get("request_id", "")))(scope, receive, send)

    def _audit(
        self,
        state: dict[str, Any],
        method: str,
        path: str,
        rule: Rule,
        status: int,
    ) -> None:
        principal: Principal | None = state.get("principal")
        permission = rule.permission
        # A launch credential names its tenant; the request does not (a status event carries no X-Tenant).
        tenant = state.get("tenant") or (principal.launch.tenant if principal and principal.launch else None)
        audit.info(
            "%s %s by %s in %s: %s",
            method,
            path,
            principal.subject if principal else "(unauthenticated)",
            tenant or "-",
            status,
            extra={
                "audit": {
                    "subject": principal.subject if principal else None,
                    "tenant": tenant,
                    "resource": permission.resource if permission else rule.kind,
                    "verb": permission.verb if permission else method.lower(),
                    "route": f"{method} {path}",
                    "status": status,
                    "outcome": "allowed"
                    if status < 400
                    else ("denied" if status in (401, 403) else "failed"),
                }
            },
        )
