"""The dashboard's session cookie and the bridge the API's authentication uses (no browser needed)."""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from assay.settings import Settings
from assay.ui import SessionCookies, principal_from_session
from assay.ui.session import COOKIE, Session, decode_session, encode_session, load_session_key
from tests.ui.conftest import Hub

KEY = b"k" * 32


def session(**overrides: Any) -> Session:
    values: dict[str, Any] = {
        "token": "tok-1",
        "tenant": "team-a",
        "csrf": "c" * 43,
        "expires_at": int(time.time()) + 60,
    }
    values.update(overrides)
    return Session(**values)


def request(settings: Settings, method: str, headers: dict[str, str]) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(settings=settings))
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": method, "path": "/api/v1/x", "headers": raw, "app": app})


def test_a_cookie_is_read_back_only_when_genuine_and_current() -> None:
    now = time.time()
    cookie = encode_session(session(), KEY)
    assert decode_session(cookie, KEY, now) == session(expires_at=session().expires_at)
    assert decode_session(cookie, b"x" * 32, now) is None  # another hub's key
    payload, mac = cookie.removeprefix("v1.").split(".")
    forged = encode_session(session(tenant="team-b"), KEY).removeprefix("v1.").split(".")[0]
    assert decode_session(f"v1.{forged}.{mac}", KEY, now) is None  # another tenant under the old signature
    assert decode_session(f"v1.{payload}.{mac[:-2]}", KEY, now) is None
    assert decode_session(encode_session(session(expires_at=int(now) - 1), KEY), KEY, now) is None
    assert decode_session("garbage", KEY, now) is None
    assert decode_session(f"v1.{payload}\xb3.{mac}", KEY, now) is None  # not ASCII: no cookie of ours
    assert decode_session(f"v1.{payload}.{mac[:-1]}\xb3", KEY, now) is None


def test_the_bridge_gives_the_token_and_asks_for_csrf_on_changes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ui_session_key="s" * 32, database_url="postgresql://unused/db")
    cookie = encode_session(session(), b"s" * 32)
    jar = {"Cookie": f"other=1; {COOKIE}={cookie}"}
    assert principal_from_session(request(settings, "GET", jar)) == "tok-1"
    assert principal_from_session(request(settings, "POST", jar)) is None
    assert principal_from_session(request(settings, "DELETE", {**jar, "X-CSRF-Token": "wrong"})) is None
    assert principal_from_session(request(settings, "POST", {**jar, "X-CSRF-Token": "c" * 43})) == "tok-1"
    assert principal_from_session(request(settings, "GET", {})) is None
    bridge = SessionCookies(settings)
    headers = {"cookie": f"{COOKIE}={cookie}", "x-csrf-token": "c" * 43}
    assert bridge.token(headers) == "tok-1" and bridge.csrf_ok(headers)
    assert not bridge.csrf_ok({"cookie": f"{COOKIE}={cookie}"})
    assert not bridge.csrf_ok({"x-csrf-token": "c" * 43})


def test_the_key_is_generated_once_in_local_mode_and_required_in_a_cluster(tmp_path: Path) -> None:
    local = Settings(data_dir=tmp_path, database_url="postgresql://unused/db")
    first = load_session_key(local)
    assert first is not None and len(first) == 64
    assert load_session_key(local) == first
    assert stat.S_IMODE((tmp_path / "ui-session.key").stat().st_mode) == 0o600
    cluster = Settings(data_dir=tmp_path, mode="cluster", database_url="postgresql://unused/db")
    assert load_session_key(cluster) is None
    with pytest.raises(ValueError, match="at least 32 bytes"):
        load_session_key(
            Settings(data_dir=tmp_path, ui_session_key="short", database_url="postgresql://unused/db")
        )


def test_sign_in_over_http_refuses_other_sites_and_the_api_refuses_forged_cookies(
    hub: Hub, issue_token: Callable[..., dict[str, str]]
) -> None:
    token = issue_token("dan", {"default": "viewer"})["Authorization"].removeprefix("Bearer ")
    url = hub.server.url
    form = {"token": token, "tenant": "default", "next": "/ui/catalogue"}
    with httpx.Client(base_url=url, follow_redirects=False) as browserless:
        refused = browserless.post("/ui/sign-in", data=form, headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
        signed = browserless.post("/ui/sign-in", data=form, headers={"Origin": url})
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/catalogue"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        value = cookie.split(";")[0].split("=", 1)[1]
        jobs = "/api/v1/evaluations/jobs"
        assert browserless.get(jobs, headers={"Cookie": f"{COOKIE}={value}"}).status_code == 200
        payload, mac = value.removeprefix("v1.").split(".")
        forged = f"v1.{payload}x.{mac}"
        assert browserless.get(jobs, headers={"Cookie": f"{COOKIE}={forged}"}).status_code == 401
        # A byte past ASCII (read as Latin-1) in either half was a 500 on every route, before authentication.
        for odd in (f"v1.{payload}\xb3.{mac}", f"v1.{payload}.{mac}\xb3"):
            cookie_header = f"{COOKIE}={odd}".encode("latin-1")
            assert browserless.get(jobs, headers={"Cookie": cookie_header}).status_code == 401
        # An open redirect is not on offer: only dashboard paths are followed after signing in.
        away = browserless.post(
            "/ui/sign-in", data={**form, "next": "//evil.example/ui"}, headers={"Origin": url}
        )
        assert away.headers["location"] == "/ui/"
        # A token or tenant that cannot travel in a header (past ASCII, a line break) was a 500 of the sign-in.
        for field, odd in (
            ("token", "\u00b3"),
            ("token", f"{token}\r\nX-Tenant: team-b"),
            ("tenant", "d\u00e9faut"),
        ):
            refused = browserless.post("/ui/sign-in", data={**form, field: odd}, headers={"Origin": url})
            assert refused.status_code == 400 and "set-cookie" not in refused.headers, refused.text
        # A static file name the file system refuses (too long) is simply not there.
        assert browserless.get("/ui/static/" + "a" * 5000).status_code == 404
