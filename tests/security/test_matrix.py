"""The authorisation matrix: every route of the hub by (no token, bad token, other tenant, viewer, editor,
admin) → the status class a caller must get. The routes come from the routers the hub serves, so a new route
is in the matrix the moment it exists, and a route without an access rule fails here."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from assay.auth import rule_of
from assay.http import ops as ops_routes
from assay.http import routers

TENANT = "team-a"
CALLERS = ("none", "bad", "other", "viewer", "editor", "admin")
REGISTRY_EVENT = (
    b'{"specversion": "1.0", "id": "e-1", "source": "mlflow", "type": "dev.assay.registry.model_version.created.v1",'
    b' "datacontenttype": "application/json", "data": {"name": "m", "version": "1"}}'
)
_SAMPLES = {"job_id": str(uuid.uuid4()), "benchmark_index": "0"}


def route_table() -> list[tuple[str, str]]:
    """(method, path template) of every route the local hub serves, the API docs included."""
    table: set[tuple[str, str]] = set()
    for router in (ops_routes.router, *routers("hub")):
        for route in router.routes:
            if isinstance(route, APIRoute):
                table.update((m, route.path) for m in route.methods if m != "HEAD")
    table.update({("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")})
    return sorted(table)


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _SAMPLES.get(m.group(1), f"missing-{m.group(1)}"), path)


def expected(method: str, path: str, who: str) -> str:
    """``open``: anything but 401/403; ``401``/``403``: exactly that."""
    rule = rule_of(method, path)
    if rule.kind == "public":
        return "open"
    if rule.kind == "session":
        return "any"  # the dashboard's pages answer for themselves (tests/ui)
    if rule.kind == "signed":
        return "refused"  # no forge signature: whoever sends it
    if who in ("none", "bad"):
        return "401"
    if rule.kind == "launch":
        return "401"  # no user token is a launch credential
    if rule.kind == "authenticated":
        return "open"
    if rule.kind == "sender":  # the broker, or an administrator of the whole hub
        return "open" if who == "admin" else "403"
    if who == "other":
        return "403"
    assert rule.permission is not None
    if rule.permission.resource in ("deadletters", "metrics"):
        return "open" if who == "admin" else "403"
    if who == "viewer" and rule.permission.verb not in ("get", "list"):
        return "403"
    return "open"


@pytest.fixture()
def callers(
    client: TestClient, issue_token: Callable[..., dict[str, str]]
) -> Iterator[dict[str, dict[str, str]]]:
    yield {
        "none": {"Authorization": ""},
        "bad": {"Authorization": "Bearer not-a-token"},
        "other": issue_token("olga", {"team-b": "admin"}),
        "viewer": issue_token("vera", {TENANT: "viewer"}),
        "editor": issue_token("eddie", {TENANT: "editor"}),
        "admin": issue_token("ada", {TENANT: "admin", "*": "admin"}),
    }


def test_every_route_has_an_access_rule() -> None:
    table = route_table()
    assert len(table) > 40
    for method, path in table:
        rule_of(method, path)  # raises NoRule for a route nobody placed


def test_the_matrix(client: TestClient, callers: dict[str, dict[str, str]]) -> None:
    failures: list[str] = []
    checked = 0
    for method, path in route_table():
        url = concrete(path)
        for who in CALLERS:
            want = expected(method, path, who)
            headers = {**callers[who], "X-Tenant": TENANT, "Content-Type": "application/json"}
            body: Any = b"{}" if method in ("POST", "PUT", "PATCH") else None
            if path == "/api/v1/events":  # a well-formed registry CloudEvent: only the sender is in question
                headers["Content-Type"] = "application/cloudevents+json"
                body = REGISTRY_EVENT
            answer = client.request(method, url, headers=headers, content=body)
            checked += 1
            got = answer.status_code
            if got >= 500:
                failures.append(f"{method} {path} as {who}: {got} {answer.text[:200]}")
            elif want == "open" and got in (401, 403):
                failures.append(f"{method} {path} as {who}: {got}, expected to pass the access check")
            elif want == "refused" and got not in (401, 403):
                failures.append(f"{method} {path} as {who}: {got}, expected 401 or 403")
            elif want in ("401", "403") and str(got) != want:
                failures.append(f"{method} {path} as {who}: {got}, expected {want}")
            if got == 401 and rule_of(method, path).kind != "session":  # pages sign people in instead
                assert answer.headers.get("www-authenticate", "").startswith("Bearer")
    assert not failures, "\n".join(failures)
    assert checked == len(route_table()) * len(CALLERS)
