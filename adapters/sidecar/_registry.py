"""The OCI registry proxy (``/v2/...``): the adapter pushes and pulls through the sidecar without
credentials; the sidecar authenticates to the registry with the docker config it was given.

Authentication follows the distribution spec: the registry's ``WWW-Authenticate`` challenge says Basic
(credentials sent as they are) or Bearer (a token fetched from ``realm`` for ``service`` and ``scope``, with
Basic credentials, or as a refresh-token grant when the docker config holds an ``identitytoken``). Tokens are
cached per scope. A request with a body is never sent twice: the challenge is learned first with ``GET /v2/``
so the body streams up once, authenticated.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import Response

from adapters.sidecar._config import OCISettings
from adapters.sidecar._forwarding import error_response, forward_streaming, request_headers, stream_back

__all__ = ["RegistryProxy"]

logger = logging.getLogger(__name__)

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPOSITORY = re.compile(r"^/v2/(?P<name>.+?)/(blobs|manifests|tags|referrers)(/|$)")
_TOKEN_MARGIN_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class _Credentials:
    username: str | None = None
    password: str | None = None
    identity_token: str | None = None

    def basic(self) -> str | None:
        if self.username is None or self.password is None:
            return None
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


@dataclass(frozen=True, slots=True)
class _Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]


def _parse_challenge(header: str) -> _Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() not in ("basic", "bearer"):
        return None
    return _Challenge(scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest)))


def _host_of(key: str) -> str:
    """A docker config ``auths`` key (``host``, ``https://host/v1/``) reduced to its host[:port]."""
    return urlsplit(key if "://" in key else f"//{key}").netloc


class RegistryProxy:
    def __init__(self, settings: OCISettings, host: str, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self.host = host
        self._origin = f"{'http' if settings.plain_http else 'https'}://{host}"
        self._client = client
        self._challenge: _Challenge | None = None
        self._tokens: dict[str, tuple[float, str]] = {}  # scope -> (expires at, token)

    def _credentials(self) -> _Credentials:
        # Read on use: a mounted Secret may be updated while the pod runs.
        path = self._settings.docker_config_path
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _Credentials()
        except (OSError, ValueError) as exc:
            logger.error("docker config %s is unreadable: %s", path, exc)
            return _Credentials()
        for key, entry in (config.get("auths") or {}).items():
            if _host_of(key) != self.host or not isinstance(entry, dict):
                continue
            if entry.get("identitytoken"):
                return _Credentials(identity_token=str(entry["identitytoken"]))
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return _Credentials(user, password)
            if entry.get("username") is not None:
                return _Credentials(str(entry["username"]), str(entry.get("password", "")))
        return _Credentials()

    async def handle(self, request: Request, path_and_query: str) -> Response:
        path = path_and_query.split("?", 1)[0]
        scope = _scope_for(path, request.method)
        has_body = request.method not in ("GET", "HEAD", "DELETE", "OPTIONS")
        if self._challenge is None and has_body:
            await self._learn_challenge()
        authorization = await self._authorization(scope)
        headers = request_headers(request, drop={"authorization"})
        if authorization:
            headers["Authorization"] = authorization
        url = self._origin + path_and_query
        base = str(request.base_url).rstrip("/")

        def rewrite(hs: list[tuple[str, str]]) -> list[tuple[str, str]]:
            return self._rewrite_location(hs, base)

        if has_body:
            return await forward_streaming(self._client, request, url, headers, rewrite_headers=rewrite)
        # Body-less requests can be repeated: answer a challenge by authenticating and asking again.
        try:
            answer = await self._send(request.method, url, headers)
            challenge = _parse_challenge(answer.headers.get("www-authenticate", ""))
            if answer.status_code == 401 and challenge is not None:
                await answer.aclose()
                self._challenge = challenge
                authorization = await self._authorization(challenge.params.get("scope") or scope, force=True)
                if authorization:
                    headers["Authorization"] = authorization
                answer = await self._send(request.method, url, headers)
        except httpx.HTTPError as exc:
            return error_response(502, "registry_unreachable", f"{request.method} {url}: {exc!r}")
        return stream_back(answer, rewrite_headers=rewrite)

    async def _send(self, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
        return await self._client.send(self._client.build_request(method, url, headers=headers), stream=True)

    def _rewrite_location(self, headers: list[tuple[str, str]], sidecar: str) -> list[tuple[str, str]]:
        """Absolute upload locations point at the registry; send the adapter back to the sidecar instead."""
        return [
            (
                k,
                sidecar + v[len(self._origin) :]
                if k.lower() == "location" and v.startswith(self._origin)
                else v,
            )
            for k, v in headers
        ]

    async def _learn_challenge(self) -> None:
        try:
            answer = await self._client.get(f"{self._origin}/v2/")
        except httpx.HTTPError as exc:
            logger.warning("registry %s: GET /v2/ failed: %r", self.host, exc)
            return
        if answer.status_code == 401:
            self._challenge = _parse_challenge(answer.headers.get("www-authenticate", ""))

    async def _authorization(self, scope: str | None, *, force: bool = False) -> str | None:
        challenge = self._challenge
        credentials = self._credentials()
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return credentials.basic()
        cache_key = scope or ""
        cached = self._tokens.get(cache_key)
        if cached is not None and not force and cached[0] > time.monotonic():
            return f"Bearer {cached[1]}"
        token = await self._fetch_token(challenge, scope, credentials)
        return f"Bearer {token}" if token else None

    async def _fetch_token(
        self, challenge: _Challenge, scope: str | None, credentials: _Credentials
    ) -> str | None:
        realm = challenge.params.get("realm")
        if not realm:
            logger.error("registry %s: Bearer challenge without realm", self.host)
            return None
        service = challenge.params.get("service")
        try:
            if credentials.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token}
                form["client_id"] = "assay-sidecar"
                if service:
                    form["service"] = service
                if scope:
                    form["scope"] = scope
                answer = await self._client.post(realm, data=form)
            else:
                params = {k: v for k, v in (("service", service), ("scope", scope)) if v}
                basic = credentials.basic()
                answer = await self._client.get(
                    realm, params=params, headers={"Authorization": basic} if basic else {}
                )
            answer.raise_for_status()
            data = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.error("registry %s: token request to %s failed: %r", self.host, realm, exc)
            return None
        token = data.get("token") or data.get("access_token")
        if not isinstance(token, str):
            logger.error("registry %s: token answer from %s has no token", self.host, realm)
            return None
        lifetime = float(data.get("expires_in") or 60)
        self._tokens[scope or ""] = (time.monotonic() + max(0.0, lifetime - _TOKEN_MARGIN_SECONDS), token)
        return token


def _scope_for(path: str, method: str) -> str | None:
    match = _REPOSITORY.match(path)
    if match is None:
        return None
    actions = "pull" if method in ("GET", "HEAD") else "pull,push"
    return f"repository:{match.group('name')}:{actions}"
