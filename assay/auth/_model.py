"""Who is calling and what a route asks of them: principals, roles, and the access rule of every route."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from assay.core.credentials import LaunchClaims

__all__ = [
    "ALL_TENANTS",
    "ROLE_VERBS",
    "Guard",
    "Permission",
    "Principal",
    "Role",
]

Role = Literal["viewer", "editor", "admin"]
ALL_TENANTS = "*"

# Kubernetes verbs (what kube-rbac-proxy derives from HTTP methods), granted per role.
ROLE_VERBS: Mapping[Role, frozenset[str]] = {
    "viewer": frozenset({"get", "list"}),
    "editor": frozenset({"get", "list", "create", "update", "patch", "delete"}),
    "admin": frozenset({"get", "list", "create", "update", "patch", "delete"}),
}
# Resources only an admin may touch whatever the verb: the broker's dead letters (other systems' events), the
# hub's metrics, and job priorities (the Kueue queue all tenants share).
ADMIN_RESOURCES = frozenset({"deadletters", "metrics", "priorities"})


@dataclass(frozen=True, slots=True)
class Permission:
    """What one route asks: ``verb`` on ``resource`` in the request's tenant (or, ``cluster``, hub-wide)."""

    resource: str
    verb: str
    cluster: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``roles`` is set by authenticators that know them (static tokens, OIDC with a
    roles file); Kubernetes principals are authorised by SubjectAccessReview instead. ``launch`` is set for the
    sidecar of one launch (a launch credential), which may do nothing but report on that launch."""

    subject: str
    kind: Literal["user", "launch", "anonymous", "sender"] = "user"
    groups: tuple[str, ...] = ()
    uid: str | None = None
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    roles: Mapping[str, Role] | None = None
    launch: LaunchClaims | None = None

    def role_in(self, tenant: str) -> Role | None:
        if self.roles is None:
            return None
        return self.roles.get(tenant) or self.roles.get(ALL_TENANTS)


class Guard(Protocol):
    """Authenticates bearer tokens and authorises permissions; one per process, chosen by settings."""

    mode: str

    async def authenticate(self, token: str | None, headers: Mapping[str, str]) -> Principal:
        """The caller, or :class:`~assay.errors.Unauthenticated`."""
        ...

    async def authorize(self, principal: Principal, tenant: str, permission: Permission) -> bool:
        """Whether ``principal`` may do ``permission`` in ``tenant``."""
        ...


def role_allows(role: Role | None, permission: Permission) -> bool:
    if role is None:
        return False
    if permission.resource in ADMIN_RESOURCES:
        return role == "admin"
    return permission.verb in ROLE_VERBS[role]
