"""The guards that need no cluster: static tokens (and the local hub's own), OIDC/JWT, a trusted proxy, none."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from assay.auth._cache import TtlCache
from assay.auth._model import ALL_TENANTS, Permission, Principal, Role, role_allows
from assay.errors import Unauthenticated

__all__ = ["NoAuth", "OidcGuard", "RoleFile", "TokenGuard", "TrustedProxy", "token_digest"]

log = logging.getLogger(__name__)

_ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
_RANK = {role: rank for rank, role in enumerate(_ROLES)}


def token_digest(token: str) -> str:
    """How a bearer token is stored and cached: its SHA-256, never the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _role(value: object, where: str) -> Role:
    if value not in _ROLES:
        raise ValueError(f"{where}: role must be one of {', '.join(_ROLES)}, got {value!r}")
    return value


class _Reloading:
    """A YAML file parsed again when its modification time changes (a mounted Secret is rotated)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp: float | None = None
        self._parsed: Any = None

    def current(self) -> Any:
        if self._path is None:
            return None
        try:
            stamp = self._path.stat().st_mtime
        except OSError as exc:
            raise ValueError(f"{self._path}: cannot read it: {exc}") from exc
        if stamp != self._stamp:
            self._parsed = yaml.safe_load(self._path.read_text(encoding="utf-8")) or {}
            self._stamp = stamp
        return self._parsed


class TokenGuard:
    """Static bearer tokens, stored hashed (SHA-256): ``tokens: [{subject, sha256, tenants: {t: role}}]``,
    plus the local hub's own token (an administrator of every tenant)."""

    mode = "token"

    def __init__(self, token_file: Path | None, local_token: str | None = None) -> None:
        self._file = _Reloading(token_file)
        self._local = token_digest(local_token) if local_token else None
        self._table: dict[str, Principal] = {}
        self._source: Any = object()
        self._refresh()  # a broken file fails the start, not the first request

    def _refresh(self) -> None:
        parsed = self._file.current()
        if parsed is self._source:
            return
        table: dict[str, Principal] = {}
        if parsed is None:
            entries: object = []  # no token file: only the local hub's own token
        elif isinstance(parsed, dict):
            entries = parsed.get("tokens") or []
        else:
            entries = None
        if not isinstance(entries, list):
            raise ValueError("the token file must be a mapping with a 'tokens' list")
        for position, entry in enumerate(entries):
            where = f"tokens[{position}]"
            if not isinstance(entry, dict) or not entry.get("subject") or not entry.get("sha256"):
                raise ValueError(f"{where}: needs 'subject' and 'sha256'")
            tenants = entry.get("tenants") or {}
            if not isinstance(tenants, dict):
                raise ValueError(f"{where}.tenants: must map tenant names to roles")
            digest = str(entry["sha256"]).strip().lower()
            table[digest] = Principal(
                subject=str(entry["subject"]),
                groups=tuple(str(g) for g in entry.get("groups") or ()),
                roles={str(t): _role(r, f"{where}.tenants.{t}") for t, r in tenants.items()},
            )
        self._table = table
        self._source = parsed

    async def authenticate(self, token: str | None, headers: Mapping[str, str]) -> Principal:
        if not token:
            raise Unauthenticated("A bearer token is required (Authorization: Bearer <token>)")
        digest = token_digest(token)
        if self._local is not None and hmac.compare_digest(digest, self._local):
            return Principal(subject="local-admin", roles={ALL_TENANTS: "admin"})
        try:
            self._refresh()
        except (OSError, ValueError, yaml.YAMLError):
            log.exception("the token file is unusable; keeping the tokens read before")
        principal = self._table.get(digest)
        if principal is None:
            raise Unauthenticated("The bearer token is not valid")
        return principal

    async def authorize(self, principal: Principal, tenant: str, permission: Permission) -> bool:
        role = principal.role_in(ALL_TENANTS if permission.cluster else tenant)
        return role_allows(role, permission)


class RoleFile:
    """Tenants → roles → subjects (``alice``), groups (``group:ml``) or everyone authenticated (``*``)."""

    def __init__(self, path: Path | None) -> None:
        self._file = _Reloading(path)
        self.current()

    def current(self) -> dict[str, dict[Role, frozenset[str]]]:
        parsed = self._file.current() or {}
        if not isinstance(parsed, dict):
            raise ValueError("the roles file must map tenants to roles")
        table: dict[str, dict[Role, frozenset[str]]] = {}
        for tenant, roles in parsed.items():
            if not isinstance(roles, dict):
                raise ValueError(f"{tenant}: must map roles to lists of subjects")
            table[str(tenant)] = {
                _role(role, str(tenant)): frozenset(str(s) for s in members or ())
                for role, members in roles.items()
            }
        return table

    def roles_of(self, subject: str, groups: tuple[str, ...]) -> dict[str, Role]:
        names = {subject, "*", *(f"group:{g}" for g in groups)}
        granted: dict[str, Role] = {}
        for tenant, roles in self.current().items():
            best = max(
                (r for r, members in roles.items() if names & members), key=_RANK.__getitem__, default=None
            )
            if best is not None:
                granted[tenant] = best
        return granted


class OidcGuard:
    """JWTs from one OIDC issuer, verified with its JWKS (PyJWT); roles from :class:`RoleFile`."""

    mode = "oidc"

    def __init__(
        self,
        issuer: str,
        audience: str | None,
        jwks_url: str | None,
        roles: RoleFile,
        *,
        username_claim: str = "sub",
        groups_claim: str = "groups",
        cache_seconds: float = 60.0,
    ) -> None:
        import jwt  # PyJWT: imported only by hubs that use OIDC

        self._jwt = jwt
        self._issuer = issuer.rstrip("/")
        self._audience = audience
        self._jwks_url = jwks_url
        self._roles = roles
        self._username_claim = username_claim
        self._groups_claim = groups_claim
        self._cache_seconds = max(cache_seconds, 1.0)
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._verified: TtlCache[str, Principal] = TtlCache(cache_seconds)

    async def _jwks(self) -> Any:
        async with self._lock:
            if self._client is None:
                url = self._jwks_url if self._jwks_url else await asyncio.to_thread(self._discover)
                self._client = self._jwt.PyJWKClient(url, cache_keys=True, lifespan=self._cache_seconds)
            return self._client

    def _discover(self) -> str:
        with urllib.request.urlopen(f"{self._issuer}/.well-known/openid-configuration", timeout=10) as answer:
            return str(json.load(answer)["jwks_uri"])

    async def authenticate(self, token: str | None, headers: Mapping[str, str]) -> Principal:
        if not token:
            raise Unauthenticated("A bearer token is required (Authorization: Bearer <token>)")
        digest = token_digest(token)
        cached = self._verified.get(digest)
        if cached is not None:
            return cached
        jwt = self._jwt
        try:
            client = await self._jwks()
            key = await asyncio.to_thread(client.get_signing_key_from_jwt, token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iss"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("the OIDC issuer's keys could not be fetched: %s", exc)
            raise Unauthenticated("The token could not be verified now") from None
        except (jwt.PyJWTError, ValueError, OSError, KeyError) as exc:
            raise Unauthenticated(f"The bearer token is not valid: {type(exc).__name__}") from None
        subject = claims.get(self._username_claim)
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated(f"The token has no {self._username_claim!r} claim")
        raw_groups = claims.get(self._groups_claim) or []
        groups = tuple(str(g) for g in raw_groups) if isinstance(raw_groups, list) else ()
        principal = Principal(subject=subject, groups=groups, roles=self._roles.roles_of(subject, groups))
        self._verified.put(digest, principal)
        return principal

    async def authorize(self, principal: Principal, tenant: str, permission: Permission) -> bool:
        return role_allows(principal.role_in(ALL_TENANTS if permission.cluster else tenant), permission)


class TrustedProxy:
    """kube-rbac-proxy in front already authenticated and authorised the request: its headers say who."""

    mode = "trusted-proxy"

    async def authenticate(self, token: str | None, headers: Mapping[str, str]) -> Principal:
        user = (headers.get("x-user") or headers.get("x-remote-user") or "").strip()
        if not user:
            raise Unauthenticated("The authenticating proxy sent no X-User header")
        raw = headers.get("x-forwarded-groups") or headers.get("x-remote-group") or ""
        return Principal(subject=user, groups=tuple(g.strip() for g in raw.split(",") if g.strip()))

    async def authorize(self, principal: Principal, tenant: str, permission: Permission) -> bool:
        return True


class NoAuth:
    """``auth_mode=none``: everyone is an administrator; only ever on loopback (settings enforce it)."""

    mode = "none"

    async def authenticate(self, token: str | None, headers: Mapping[str, str]) -> Principal:
        return Principal(subject="anonymous", kind="anonymous", roles={ALL_TENANTS: "admin"})

    async def authorize(self, principal: Principal, tenant: str, permission: Permission) -> bool:
        return True
