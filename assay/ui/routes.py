"""The dashboard's pages, its sign-in, and its static files.

Every page is a small HTML shell holding no data: its ES module reads everything through the public REST
API (``/api/v1``) with the browser's credentials (the session cookie, or whatever the caller's proxy adds),
so the API's authentication, roles and tenant scoping decide what a person sees, exactly as for any client.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
from pathlib import Path
from string import Template
from typing import cast
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from assay import __version__
from assay.settings import Settings
from assay.ui.session import (
    clear_cookie,
    new_session,
    read_session,
    session_key,
    set_cookie,
)

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".md": "text/markdown", ".svg": "image/svg+xml"}


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _tenant(request: Request) -> str:
    """The tenant the page's API calls name: the session's, else the caller's ``X-Tenant``, else the
    hub's default in local mode (cluster mode: none, and the API says it needs one)."""
    session = read_session(request)
    if session is not None and session.tenant:
        return session.tenant
    sent = (request.headers.get("x-tenant") or "").strip()
    if sent:
        return sent
    settings = _settings(request)
    return settings.default_tenant if settings.mode == "local" else ""


def _page(request: Request, page: str, title: str) -> HTMLResponse:
    session = read_session(request)
    signed_in = session is not None
    if signed_in:
        account = _template("signed_in.html").substitute(csrf=html.escape(session.csrf if session else ""))
    else:
        account = f'<a href="/ui/sign-in?{urlencode({"next": _here(request)})}">Sign in</a>'
    body = _template("page.html").substitute(
        title=html.escape(title),
        page=html.escape(page),
        tenant=html.escape(_tenant(request)),
        csrf=html.escape(session.csrf if session else ""),
        version=html.escape(__version__),
        account=account,
    )
    return HTMLResponse(body, headers=_HEADERS)


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def evaluations_page(request: Request) -> HTMLResponse:
    return _page(request, "evaluations", "Evaluations")


@router.get("/evaluations/{job_id}", response_class=HTMLResponse)
async def evaluation_page(job_id: str, request: Request) -> HTMLResponse:
    return _page(request, "evaluation", "Evaluation")


@router.get("/compare", response_class=HTMLResponse)
async def compare_page(request: Request) -> HTMLResponse:
    return _page(request, "compare", "Compare evaluations")


@router.get("/policies", response_class=HTMLResponse)
async def policies_page(request: Request) -> HTMLResponse:
    return _page(request, "policies", "Policies")


@router.get("/policies/{policy_id}", response_class=HTMLResponse)
async def policy_page(policy_id: str, request: Request) -> HTMLResponse:
    return _page(request, "policy", "Policy history")


@router.get("/catalogue", response_class=HTMLResponse)
async def catalogue_page(request: Request) -> HTMLResponse:
    return _page(request, "catalogue", "Catalogue")


# --- sign-in ------------------------------------------------------------------------------------------


def _next(raw: str | None) -> str:
    """Where to go after signing in: a dashboard path of this origin only (no open redirect)."""
    if raw and raw.startswith("/ui") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/ui/"


def _same_origin(request: Request) -> bool:
    """A form post from a page of this site (browsers send ``Origin`` on every POST): its host is the one
    the request was sent to, or the hub's public URL's. The scheme is not compared: behind a proxy that
    ends TLS the hub sees http while the page was https."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site post: those always carry Origin
    host = urlsplit(origin).netloc
    public = _settings(request).public_url
    return bool(host) and (
        host == request.headers.get("host", request.url.netloc)
        or (public is not None and host == urlsplit(public).netloc)
    )


def _sign_in_form(request: Request, *, next_path: str, tenant: str, error: str, status: int) -> HTMLResponse:
    available = session_key(request) is not None
    body = _template("sign_in.html").substitute(
        next=html.escape(next_path),
        tenant=html.escape(tenant),
        version=html.escape(__version__),
        error=f'<p class="error" role="alert" id="sign-in-error">{html.escape(error)}</p>' if error else "",
        disabled="" if available else "disabled",
        unavailable=""
        if available
        else '<p class="error" role="alert">Sign-in is off on this hub (no ASSAY_UI_SESSION_KEY): send '
        "<code>Authorization: Bearer &lt;token&gt;</code> with every request instead.</p>",
    )
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> HTMLResponse:
    return _sign_in_form(
        request,
        next_path=_next(request.query_params.get("next")),
        tenant=_tenant(request),
        error="",
        status=200,
    )


async def _check_token(request: Request, token: str, tenant: str) -> int:
    """The API's own answer to this token and tenant (listing evaluations: what the dashboard's first page
    does), asked in-process so that sign-in accepts exactly what the API accepts."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if tenant:
        headers["X-Tenant"] = tenant
    import httpx  # here, not at import: httpx loads its command line (rich, click) and only sign-in needs it

    base = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        answer = await client.get("/api/v1/evaluations/jobs", params={"limit": "1"}, headers=headers)
    return answer.status_code


def _form(body: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in parsed.items() if v}


@router.post("/sign-in", response_model=None)
async def sign_in(request: Request) -> Response:
    form = _form(await request.body())
    next_path = _next(form.get("next"))
    token = form.get("token", "").strip()
    tenant = form.get("tenant", "").strip() or _tenant(request)

    def refuse(message: str, status: int) -> HTMLResponse:
        return _sign_in_form(request, next_path=next_path, tenant=tenant, error=message, status=status)

    if not _same_origin(request):
        return refuse("Sign-in must come from this hub's own page.", 403)
    if session_key(request) is None:
        return refuse("Sign-in is off on this hub.", 400)
    if len(token) > 4096 or len(tenant) > 63:
        return refuse("The token or tenant is too long.", 400)
    if not ((given := token + tenant).isascii() and given.isprintable()):
        # A bearer token and a tenant name are printable ASCII; anything else cannot travel in a header.
        return refuse("The token and tenant are printable ASCII text.", 400)
    status = await _check_token(request, token, tenant)
    if status in (401, 403):
        return refuse(
            "That token was not accepted for this tenant." if token else "This hub needs a token.", 401
        )
    if status >= 400:
        return refuse(f"The hub refused the sign-in (HTTP {status}); check the tenant.", 400)
    response = RedirectResponse(next_path, status_code=303)
    response.headers["Set-Cookie"] = set_cookie(request, new_session(request, token, tenant))
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/sign-out", response_model=None)
async def sign_out(request: Request) -> Response:
    form = _form(await request.body())
    session = read_session(request)
    if not _same_origin(request) or (session is not None and form.get("csrf") != session.csrf):
        return Response("The sign-out did not come from this hub's page.", status_code=403)
    response = RedirectResponse("/ui/sign-in", status_code=303)
    response.headers["Set-Cookie"] = clear_cookie(request)
    return response


# --- static files -------------------------------------------------------------------------------------


@router.get("/static/{path:path}", response_model=None)
async def static(path: str, request: Request) -> Response:
    try:
        target = (STATIC / path).resolve()
        found = target.is_relative_to(STATIC) and target.is_file()
    except OSError:  # a name the file system refuses (too long): no such file
        found = False
    if not found:
        return Response("Not found", status_code=404, media_type="text/plain")
    stat = target.stat()
    etag = '"' + hashlib.sha256(f"{stat.st_mtime_ns}:{stat.st_size}:{path}".encode()).hexdigest()[:20] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    kind = _TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return Response(target.read_bytes(), media_type=kind, headers=headers)
