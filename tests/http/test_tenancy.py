"""Tenant isolation: a tenant neither sees nor changes another's resources; identity headers."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.http.test_collections import collection_body
from tests.http.test_providers import provider_body

P = "/api/v1/evaluations/providers"
C = "/api/v1/evaluations/collections"
A = {"X-Tenant": "team-a", "X-User": "alice"}
B = {"X-Tenant": "team-b", "X-User": "bob"}


def test_tenants_are_isolated(client: TestClient) -> None:
    """An administrator of both tenants (the test token) still sees each tenant's own rows only."""
    pid = client.post(P, json=provider_body(), headers=A).json()["resource"]["id"]
    cid = client.post(C, json=collection_body(), headers=A).json()["resource"]["id"]
    owned = client.get(f"{P}/{pid}", headers=A).json()["resource"]
    assert (owned["tenant"], owned["owner"]) == ("team-a", "test-admin")  # the token's subject, not X-User

    for path in (f"{P}/{pid}", f"{C}/{cid}"):
        assert client.get(path, headers=B).status_code == 404
        assert client.delete(path, headers=B).status_code == 404
        assert client.patch(path, json={"name": "stolen"}, headers=B).status_code == 404
    assert client.put(f"{P}/{pid}", json=provider_body(name="stolen"), headers=B).status_code == 404
    assert client.put(f"{C}/{cid}", json=collection_body(name="stolen"), headers=B).status_code == 404
    assert client.post(f"{C}/{cid}/clones", headers=B).status_code == 404

    # B sees only the system rows; A's are untouched.
    assert [p["resource"]["id"] for p in client.get(P, headers=B).json()["items"]] == ["demo"]
    assert [c["resource"]["id"] for c in client.get(C, headers=B).json()["items"]] == ["demo-suite"]
    assert client.get(f"{P}/{pid}", headers=A).json()["name"] == "My framework"
    assert client.get(f"{C}/{cid}", headers=A).json()["name"] == "My suite"
    # The local default tenant is a tenant like any other.
    assert client.get(f"{P}/{pid}").status_code == 404


def test_same_client_id_in_two_tenants(client: TestClient) -> None:
    assert client.post(P, json=provider_body(id="shared"), headers=A).status_code == 201
    assert client.post(P, json=provider_body(id="shared", name="B's"), headers=B).status_code == 201
    assert client.get(f"{P}/shared", headers=A).json()["name"] == "My framework"
    assert client.get(f"{P}/shared", headers=B).json()["name"] == "B's"


def test_cluster_mode_requires_a_tenant(make_client: Callable[..., TestClient]) -> None:
    cluster = make_client(mode="cluster")
    missing = cluster.get(P)
    assert missing.status_code == 400
    assert missing.json()["message_code"] == "missing_tenant_header"
    assert cluster.get(P, headers=A).status_code == 200
    assert cluster.get("/api/v1/health").status_code == 200  # health needs no identity


def test_malformed_and_unknown_tenants(make_client: Callable[..., TestClient]) -> None:
    hub = make_client(tenants="team-a,team-b")
    for bad in ("Team A", "x" * 64, "a;drop table providers", "../etc"):
        response = hub.post(P, json=provider_body(), headers={"X-Tenant": bad})
        assert response.status_code == 400
        assert response.json()["message_code"] == "invalid_tenant_header"
    unknown = hub.post(P, json=provider_body(), headers={"X-Tenant": "team-c"})
    assert unknown.status_code == 403
    assert unknown.json()["message_code"] == "unknown_tenant"
    assert hub.get(P, headers=A).json()["total_count"] == 1  # nothing was created
