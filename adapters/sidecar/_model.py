"""The model proxy: forwards an adapter's model calls upstream (path and query kept) with a response cache,
a per-launch concurrency cap, retries, model-credential refs resolved, and per-benchmark accounting.

Caching rules: only POSTs are looked up and stored; only 200 answers to non-streaming requests are stored;
a request with ``"stream": true`` passes through; ``Cache-Control: no-cache`` skips the lookup (the fresh
answer is stored). Every answer says ``X-Assay-Cache: hit``, ``miss`` or ``bypass``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from starlette.requests import Request
from starlette.responses import Response

from adapters.retry import Backoff, retry_after_seconds
from adapters.sidecar._accounting import Accounting, Usage, usage_from_body, usage_from_sse_line
from adapters.sidecar._cache import CachedResponse, ResponseCache, cache_key
from adapters.sidecar._config import ModelSettings
from adapters.sidecar._forwarding import error_response, request_headers, response_headers, stream_back
from adapters.sidecar._jobs import ModelRoute

__all__ = ["BENCHMARK_INDEX_HEADER", "CACHE_HEADER", "ModelProxy"]

logger = logging.getLogger(__name__)

CACHE_HEADER = "X-Assay-Cache"
# Lets a group launch say which of its benchmarks a request belongs to (see _accounting).
BENCHMARK_INDEX_HEADER = "X-Assay-Benchmark-Index"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRY_AFTER_CAP_SECONDS = 300.0
_REF_TOKEN = re.compile(r"^Bearer\s+(?P<key>[A-Za-z0-9._-]+):ref\s*$")
_REF_KEY = re.compile(r"^(api-key|.+_api-key|.+_sa_token)$")
# Connection-level failures where the request did not produce an answer: safe to send again.
_RETRY_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)


class _RefError(ValueError):
    """A ``<key>:ref`` bearer token that names no usable secret file."""


class ModelProxy:
    def __init__(
        self,
        settings: ModelSettings,
        client: httpx.AsyncClient,
        accounting: Accounting,
        cache: ResponseCache | None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._accounting = accounting
        self._cache = cache
        self._caps: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._backoff = Backoff(initial=settings.retry_initial, maximum=settings.retry_max)

    def _cap(self, route: ModelRoute) -> asyncio.Semaphore:
        key = (route.job_id, route.launch_index)
        cap = self._caps.get(key)
        if cap is None:
            cap = self._caps[key] = asyncio.Semaphore(self._settings.max_concurrency)
        return cap

    def _usage(self, request: Request, route: ModelRoute) -> Usage:
        claimed = request.headers.get(BENCHMARK_INDEX_HEADER, "")
        if (
            claimed.isascii()
            and claimed.isdigit()
            and len(claimed) <= 9
            and int(claimed) in route.benchmark_indices
        ):
            return self._accounting.of(route.job_id, int(claimed))
        usage = self._accounting.of(route.job_id, route.launch_index)
        usage.benchmark_indices.update(route.benchmark_indices)
        return usage

    async def handle(self, request: Request, route: ModelRoute, path_and_query: str) -> Response:
        """One model call: the credential reference resolved, the cache asked, the upstream called with
        retries under the route's concurrency cap, the answer streamed back or read, counted and cached."""
        usage = self._usage(request, route)
        usage.requests += 1
        headers = request_headers(request, drop={BENCHMARK_INDEX_HEADER.lower(), "content-length"})
        try:
            upstream = self._resolve_ref(headers, route.upstream)
        except _RefError as exc:
            usage.errors += 1
            return error_response(400, "invalid_model_credentials", str(exc))
        body = await request.body()
        streaming = _asks_for_stream(body)
        cacheable = self._cache is not None and request.method == "POST" and not streaming
        look_up = cacheable and "no-cache" not in request.headers.get("cache-control", "").lower()
        key = cache_key(
            model_name=route.model_name,
            upstream=upstream,
            method=request.method,
            path_and_query=path_and_query,
            body=body,
        )
        if look_up and (hit := await self._cached(key, usage)) is not None:
            return hit
        cache_state = "miss" if look_up else "bypass"
        cap = self._cap(route)
        sent = await self._send(request, route, cap, upstream + path_and_query, headers, body, usage)
        if isinstance(sent, Response):
            return sent
        # From here the cap is held until the answer has been read or streamed.
        answer = sent
        if not 200 <= answer.status_code < 300:
            usage.errors += 1
        if streaming or answer.headers.get("content-type", "").startswith("text/event-stream"):
            return _stream(answer, cap, usage, cache_state)
        try:
            content = await answer.aread()
        except httpx.HTTPError as exc:
            usage.errors += 1
            return error_response(
                502,
                "model_unreachable",
                f"{request.method} {answer.request.url}: reading the answer: {exc!r}",
            )
        finally:
            await answer.aclose()
            cap.release()
        usage.add_tokens(usage_from_body(content), cached=False)
        content_type = answer.headers.get("content-type", "application/json")
        if cacheable and answer.status_code == 200 and self._cache is not None:
            await self._cache.put(key, CachedResponse(200, content_type, content))
        # aread() decoded the body, so the upstream's encoding and length no longer apply.
        passed = response_headers(answer, drop=("content-length", "content-encoding"))
        result = Response(content, status_code=answer.status_code)
        result.raw_headers = [
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in passed),
            (b"content-length", str(len(content)).encode()),
            (CACHE_HEADER.lower().encode(), cache_state.encode()),
        ]
        return result

    async def _cached(self, key: str, usage: Usage) -> Response | None:
        """The cached answer to this call, counted as a hit, if there is one."""
        assert self._cache is not None
        hit = await self._cache.get(key)
        if hit is None:
            return None
        usage.cache_hits += 1
        usage.add_tokens(usage_from_body(hit.body), cached=True)
        return Response(
            hit.body, status_code=hit.status, headers={"content-type": hit.content_type, CACHE_HEADER: "hit"}
        )

    async def _send(
        self,
        request: Request,
        route: ModelRoute,
        cap: asyncio.Semaphore,
        url: str,
        headers: dict[str, str],
        body: bytes,
        usage: Usage,
    ) -> httpx.Response | Response:
        """The upstream's answer (streamed, with ``cap`` held), retried on connection errors and on
        429/5xx with backoff and the upstream's ``Retry-After``; or the error response to give the adapter."""
        timeout = httpx.Timeout(route.timeout, connect=min(10.0, route.timeout))
        attempt = 0
        while True:
            await cap.acquire()
            usage.upstream_requests += 1
            outgoing = self._client.build_request(
                request.method, url, headers=headers, content=body, timeout=timeout
            )
            delay: float | None = None
            try:
                answer = await self._client.send(outgoing, stream=True)
            except _RETRY_ERRORS as exc:
                cap.release()
                if attempt >= self._settings.max_retries:
                    usage.errors += 1
                    return error_response(502, "model_unreachable", f"{request.method} {url}: {exc!r}")
                detail = repr(exc)
            except httpx.HTTPError as exc:
                cap.release()
                usage.errors += 1
                status = 504 if isinstance(exc, httpx.TimeoutException) else 502
                return error_response(status, "model_unreachable", f"{request.method} {url}: {exc!r}")
            else:
                if answer.status_code not in _RETRY_STATUSES or attempt >= self._settings.max_retries:
                    return answer
                delay = retry_after_seconds(answer.headers.get("retry-after"), cap=_RETRY_AFTER_CAP_SECONDS)
                detail = f"status {answer.status_code}"
                await answer.aclose()
                cap.release()
            attempt += 1
            usage.retries += 1
            delay = self._backoff.delay(attempt, retry_after=delay)
            logger.info(
                "model call %s %s failed (%s); retry %d in %.2fs", request.method, url, detail, attempt, delay
            )
            await asyncio.sleep(delay)

    def _resolve_ref(self, headers: dict[str, str], upstream: str) -> str:
        """Swap ``Bearer <key>:ref`` for the secret in ``<auth_secret_mount_path>/<key>`` (docs/compatibility.md);
        a sibling ``<prefix>_url`` file overrides the upstream. Returns the upstream to use."""
        name = next((k for k in headers if k.lower() == "authorization"), None)
        match = _REF_TOKEN.match(headers[name]) if name is not None else None
        if name is None or match is None:
            return upstream
        key = match.group("key")
        if not _REF_KEY.match(key):
            raise _RefError(
                f"Authorization ref {key!r}: only 'api-key', '*_api-key' and '*_sa_token' refs exist"
            )
        mount = self._settings.auth_secret_mount_path
        if mount is None:
            raise _RefError(f"Authorization ref {key!r}: model.auth_secret_mount_path is not configured")
        secret = _read_secret(mount / key)
        if secret is None:
            raise _RefError(f"Authorization ref {key!r}: no secret file {mount / key}")
        headers[name] = f"Bearer {secret}"
        prefix = key.rsplit("_", 1)[0] if "_" in key else None
        override = _read_secret(mount / f"{prefix}_url") if prefix else None
        return override.rstrip("/") if override else upstream


def _stream(answer: httpx.Response, cap: asyncio.Semaphore, usage: Usage, cache_state: str) -> Response:
    """Stream the answer back as it comes (tokens counted from its events); the cap is released at its end."""

    async def release() -> None:
        cap.release()

    return stream_back(
        answer,
        on_done=release,
        chunks=_counting_stream(answer, usage),
        rewrite_headers=lambda hs: [
            *((k, v) for k, v in hs if k.lower() not in ("content-length", "content-encoding")),
            (CACHE_HEADER, cache_state),
        ],
    )


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _asks_for_stream(body: bytes) -> bool:
    if b'"stream"' not in body:
        return False
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(parsed, dict) and parsed.get("stream") is True


async def _counting_stream(answer: httpx.Response, usage: Usage) -> AsyncIterator[bytes]:
    """The decoded stream, passed through as it comes, with the ``usage`` chunk's tokens counted."""
    pending = b""
    async for chunk in answer.aiter_bytes():
        yield chunk
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            usage.add_tokens(usage_from_sse_line(line.strip()), cached=False)
    usage.add_tokens(usage_from_sse_line(pending.strip()), cached=False)
