"""Authentication and authorisation: who calls (a guard chosen by settings turns a bearer token into a
:class:`Principal`) and whether they may (every route's :class:`Rule`, checked per tenant). See docs/security.md."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from assay.auth._guards import NoAuth, OidcGuard, RoleFile, TokenGuard, TrustedProxy
from assay.auth._keys import client_token, launch_signer, local_token, read_local_token
from assay.auth._model import ALL_TENANTS, ROLE_VERBS, Guard, Permission, Principal, Role, role_allows
from assay.auth._routes import NoRule, Rule, rule_of
from assay.core.credentials import LaunchSigner
from assay.settings import Settings

__all__ = [
    "ALL_TENANTS",
    "ROLE_VERBS",
    "Access",
    "Guard",
    "NoRule",
    "Permission",
    "Principal",
    "Role",
    "Rule",
    "Senders",
    "SessionBridge",
    "build_access",
    "client_token",
    "launch_signer",
    "local_token",
    "read_local_token",
    "role_allows",
    "rule_of",
]

log = logging.getLogger(__name__)


class Senders(Protocol):
    async def sender(self, token: str) -> Principal | None: ...


class SessionBridge(Protocol):
    """The dashboard's signed-in session: a cookie standing for a bearer token, with CSRF protection."""

    def token(self, headers: dict[str, str]) -> str | None:
        """The bearer token the session cookie stands for, or None."""
        ...

    def csrf_ok(self, headers: dict[str, str]) -> bool:
        """Whether a state-changing request carries the session's CSRF token."""
        ...


@dataclass(slots=True)
class Access:
    """Everything one process needs to check a request: the guard, the launch signer, the event senders."""

    guard: Guard
    signer: LaunchSigner | None
    senders: Senders | None = None
    session: SessionBridge | None = None


def build_guard(settings: Settings) -> Guard:
    mode = settings.effective_auth_mode
    if mode == "none":
        log.warning(
            "AUTHENTICATION IS OFF (auth_mode=none): every caller on %s is an administrator of every tenant",
            settings.host,
        )
        return NoAuth()
    if mode == "trusted-proxy":
        return TrustedProxy()
    if mode == "oidc":
        if not settings.oidc_issuer:
            raise ValueError("auth_mode=oidc needs ASSAY_OIDC_ISSUER")
        return OidcGuard(
            settings.oidc_issuer,
            settings.oidc_audience,
            settings.oidc_jwks_url,
            RoleFile(settings.auth_roles_file),
            username_claim=settings.oidc_username_claim,
            groups_claim=settings.oidc_groups_claim,
            cache_seconds=settings.auth_cache_seconds,
        )
    if mode == "kubernetes":
        # Imported here alone: the kubernetes client stays out of hubs that do not use it.
        from assay.auth._kubernetes import KubernetesGuard

        return KubernetesGuard(settings)
    return TokenGuard(settings.auth_token_file, local_token(settings) if settings.mode == "local" else None)


def build_senders(settings: Settings) -> Senders | None:
    if not settings.event_senders:
        return None
    from assay.auth._kubernetes import SenderCheck

    return SenderCheck(settings)


def build_access(settings: Settings, *, signer: LaunchSigner | None = None) -> Access:
    """The access checks of one process from ``settings`` (a launch signer only where one is configured
    or, in local mode, generated)."""
    if signer is None and (settings.launch_signing_key is not None or settings.mode == "local"):
        signer = launch_signer(settings)
    return Access(guard=build_guard(settings), signer=signer, senders=build_senders(settings))
