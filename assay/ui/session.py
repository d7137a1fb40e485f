"""Dashboard sessions: a person signs in once with an API token; the browser then holds it in a signed,
HttpOnly, SameSite=Strict cookie, and every request that changes something must echo the session's CSRF
token in ``X-CSRF-Token``.

The cookie is stateless (no table to sweep, any replica of the submit service reads it):

    v1.<base64url(json {"tok": token, "ten": tenant, "csrf": csrf, "exp": epoch seconds})>.<base64url(hmac)>

HMAC-SHA256 keyed by ``ASSAY_UI_SESSION_KEY`` (local mode: generated once in ``data_dir/ui-session.key``).
The cookie carries the person's own token: it never reaches page scripts (HttpOnly), is sent only to this
origin on same-site navigations (SameSite=Strict), and stops being accepted at ``exp``; the API still
authenticates the token itself on every request, so a revoked token stops working at once.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from starlette.requests import HTTPConnection, cookie_parser

from assay.core.credentials import b64url, unb64url
from assay.settings import Settings

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "Session",
    "SessionCookies",
    "clear_cookie",
    "new_session",
    "principal_from_session",
    "read_session",
    "session_key",
    "sessions_of",
    "set_cookie",
]

COOKIE = "assay_session"
CSRF_HEADER = "x-csrf-token"
_PREFIX = "v1."
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_KEY_FILE = "ui-session.key"


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    tenant: str
    csrf: str
    expires_at: int


def _mac(key: bytes, payload: str) -> str:
    return b64url(hmac.new(key, f"assay-ui-session:{payload}".encode("ascii"), hashlib.sha256).digest())


def encode_session(session: Session, key: bytes) -> str:
    claims = {"tok": session.token, "ten": session.tenant, "csrf": session.csrf, "exp": session.expires_at}
    payload = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return f"{_PREFIX}{payload}.{_mac(key, payload)}"


def decode_session(cookie: str, key: bytes, now: float) -> Session | None:
    """The session in ``cookie`` when its signature is right and it has not expired; else None."""
    if not cookie.startswith(_PREFIX) or len(cookie) > 8192 or not cookie.isascii():
        return None  # a cookie is read as Latin-1: one we made is ASCII (the MAC compares ASCII only)
    payload, _, mac = cookie[len(_PREFIX) :].partition(".")
    if not payload or not mac or not hmac.compare_digest(mac, _mac(key, payload)):
        return None
    try:
        claims = json.loads(unb64url(payload))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict):
        return None
    token, tenant, csrf, expires = (claims.get(k) for k in ("tok", "ten", "csrf", "exp"))
    if not (isinstance(token, str) and isinstance(tenant, str) and isinstance(csrf, str)):
        return None
    if isinstance(expires, bool) or not isinstance(expires, int) or expires <= now:
        return None
    return Session(token=token, tenant=tenant, csrf=csrf, expires_at=expires)


def _settings(connection: HTTPConnection) -> Settings:
    return cast(Settings, connection.app.state.settings)


def load_session_key(settings: Settings) -> bytes | None:
    """The cookie-signing key: the configured one, else (local mode) one generated and kept in
    ``data_dir``; None in cluster mode without a key (the dashboard then takes bearer tokens only)."""
    if settings.ui_session_key is not None:
        key = settings.ui_session_key.get_secret_value().encode("utf-8")
        if len(key) < 32:
            raise ValueError("ASSAY_UI_SESSION_KEY must be at least 32 bytes")
        return key
    if settings.mode == "local":
        return _local_key(settings.data_dir / _KEY_FILE)
    return None


def _local_key(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(32).encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of this hub wrote it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(fresh)
    return fresh


class SessionCookies:
    """The dashboard's sessions as the API's authentication sees them (``assay.auth.SessionBridge``): the
    bearer token a request's session cookie stands for, and whether it carries the session's CSRF token.
    ``headers`` are the request's, with lower-case names."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._key: bytes | None = None
        self._loaded = False

    @property
    def key(self) -> bytes | None:
        if not self._loaded:
            self._key = load_session_key(self._settings)
            self._loaded = True
        return self._key

    def session(self, headers: Mapping[str, str]) -> Session | None:
        raw = headers.get("cookie")
        if not raw:
            return None
        cookie = cookie_parser(raw).get(COOKIE)
        key = self.key
        if not cookie or key is None:
            return None
        return decode_session(cookie, key, time.time())

    def token(self, headers: Mapping[str, str]) -> str | None:
        session = self.session(headers)
        return session.token if session is not None else None

    def csrf_ok(self, headers: Mapping[str, str]) -> bool:
        session = self.session(headers)
        sent = headers.get(CSRF_HEADER) or ""
        return (
            session is not None and bool(sent) and hmac.compare_digest(sent.encode(), session.csrf.encode())
        )


def sessions_of(connection: HTTPConnection) -> SessionCookies:
    """This app's session reader (one per app, made on first use)."""
    state = connection.app.state
    found = getattr(state, "ui_sessions", None)
    if not isinstance(found, SessionCookies):
        found = SessionCookies(_settings(connection))
        state.ui_sessions = found
    return found


def session_key(connection: HTTPConnection) -> bytes | None:
    return sessions_of(connection).key


def new_session(connection: HTTPConnection, token: str, tenant: str) -> Session:
    lifetime = _settings(connection).ui_session_max_age_seconds
    return Session(
        token=token,
        tenant=tenant,
        csrf=secrets.token_urlsafe(32),
        expires_at=int(time.time()) + lifetime,
    )


def read_session(connection: HTTPConnection) -> Session | None:
    """The signed-in session of this request, if its cookie is present, genuine and current."""
    return sessions_of(connection).session(connection.headers)


def principal_from_session(request: HTTPConnection) -> str | None:
    """The bearer token of the dashboard session this request carries, for the API's authentication to
    use when the request has no ``Authorization`` header; None without a genuine, current session cookie.

    For a method that changes something (not GET, HEAD, OPTIONS) the request must also carry the
    session's CSRF token in ``X-CSRF-Token`` (the dashboard's scripts send it from the page); without it
    the cookie is ignored, so a forged cross-site form or fetch acts with no credentials at all.
    """
    sessions = sessions_of(request)
    token = sessions.token(request.headers)
    if token is None:
        return None
    method = str(request.scope.get("method", "GET")).upper()
    if method not in _SAFE_METHODS and not sessions.csrf_ok(request.headers):
        return None
    return token


def _secure(connection: HTTPConnection) -> bool:
    public = _settings(connection).public_url or ""
    return connection.url.scheme == "https" or public.startswith("https://")


def set_cookie(connection: HTTPConnection, session: Session) -> str:
    """The ``Set-Cookie`` value for ``session``."""
    key = session_key(connection)
    if key is None:
        raise RuntimeError("no session key: sign-in is unavailable")
    max_age = max(0, session.expires_at - int(time.time()))
    parts = [f"{COOKIE}={encode_session(session, key)}", "Path=/", f"Max-Age={max_age}", "HttpOnly"]
    parts.append("SameSite=Strict")
    if _secure(connection):
        parts.append("Secure")
    return "; ".join(parts)


def clear_cookie(connection: HTTPConnection) -> str:
    parts = [f"{COOKIE}=", "Path=/", "Max-Age=0", "HttpOnly", "SameSite=Strict"]
    if _secure(connection):
        parts.append("Secure")
    return "; ".join(parts)
