"""What every route of the sidecar shares to pass a request on: header filtering, streaming a request body up
and a response body down, bearer tokens read from files, TLS options, and EvalHub-shaped error bodies."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

__all__ = [
    "TokenFile",
    "error_response",
    "forward_streaming",
    "request_headers",
    "response_headers",
    "stream_back",
    "tls_verify",
]

# RFC 9110 §7.6.1 connection-specific headers, plus Host (set from the upstream URL by httpx).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


def request_headers(request: Request, *, drop: Iterable[str] = ()) -> dict[str, str]:
    """The adapter's headers minus hop-by-hop ones and ``drop`` (lower-case names)."""
    dropped = _HOP_BY_HOP | {name.lower() for name in drop}
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        # Surrounding whitespace is not part of a field value (RFC 9110 §5.5), and httpx refuses to send it.
        value = value.strip()
        if name.lower() in dropped:
            continue
        if name.lower() == "authorization" and " " not in value:
            continue  # a scheme without credentials (lm-eval sends "Bearer " when it has no key): no credentials
        headers[name] = value
    return headers


def response_headers(upstream: httpx.Response, *, drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    dropped = _HOP_BY_HOP | {name.lower() for name in drop}
    return [(name, value) for name, value in upstream.headers.multi_items() if name.lower() not in dropped]


def error_response(status: int, message_code: str, message: str) -> JSONResponse:
    """EvalHub's error body (docs/compatibility.md), so adapters and their logs see one shape."""
    return JSONResponse({"message_code": message_code, "message": message, "trace": ""}, status_code=status)


def tls_verify(ca_cert_path: Path | None, insecure_skip_verify: bool) -> ssl.SSLContext | bool:
    if insecure_skip_verify:
        return False
    if ca_cert_path is not None:
        return ssl.create_default_context(cafile=str(ca_cert_path))
    return True


class TokenFile:
    """A bearer token read from a file (a projected, rotated Kubernetes token), re-read once it is older
    than ``ttl`` seconds. A missing or empty file gives ``None`` (nothing is added)."""

    def __init__(self, path: Path | None, ttl: float) -> None:
        self._path = path
        self._ttl = ttl
        self._value: str | None = None
        self._read_at = float("-inf")

    def get(self) -> str | None:
        if self._path is None:
            return None
        now = time.monotonic()
        if now - self._read_at >= self._ttl:
            try:
                self._value = self._path.read_text(encoding="utf-8").strip() or None
            except OSError:
                self._value = None
            self._read_at = now
        return self._value


async def forward_streaming(
    client: httpx.AsyncClient,
    request: Request,
    url: str,
    headers: dict[str, str],
    *,
    rewrite_headers: Callable[[list[tuple[str, str]]], list[tuple[str, str]]] | None = None,
    body: bytes | AsyncIterator[bytes] | None = None,
    timeout: httpx.Timeout | None = None,
    on_done: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """Send ``request`` to ``url`` with its body streamed up (or ``body`` when given) and stream the answer
    back unchanged (raw bytes, so compressed bodies and their Content-Length stay consistent)."""
    content: bytes | AsyncIterator[bytes] | None = body
    if content is None and request.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        content = request.stream()
    extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    upstream_request = client.build_request(request.method, url, headers=headers, content=content, **extra)
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.TimeoutException as exc:
        if on_done is not None:
            await on_done()
        return error_response(504, "upstream_timeout", f"{request.method} {url}: timed out ({exc!r})")
    except httpx.HTTPError as exc:
        if on_done is not None:
            await on_done()
        return error_response(502, "upstream_unreachable", f"{request.method} {url}: {exc!r}")
    return stream_back(upstream, rewrite_headers=rewrite_headers, on_done=on_done)


def stream_back(
    upstream: httpx.Response,
    *,
    rewrite_headers: Callable[[list[tuple[str, str]]], list[tuple[str, str]]] | None = None,
    on_done: Callable[[], Awaitable[None]] | None = None,
    chunks: AsyncIterator[bytes] | None = None,
) -> Response:
    """A streaming response over an open upstream response; closes it (and calls ``on_done``) at the end,
    also when the adapter goes away mid-stream."""
    headers = response_headers(upstream)
    if rewrite_headers is not None:
        headers = rewrite_headers(headers)

    closed = False

    async def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        await upstream.aclose()
        if on_done is not None:
            await on_done()

    async def body() -> AsyncIterator[bytes]:
        # The finally also runs when the adapter disconnects mid-stream (starlette then skips background).
        try:
            async for chunk in chunks if chunks is not None else upstream.aiter_raw():
                yield chunk
        finally:
            await close()

    response = StreamingResponse(body(), status_code=upstream.status_code, background=BackgroundTask(close))
    # Replace starlette's defaults with the upstream's headers, repeated ones (Set-Cookie, Link) included.
    response.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return response
