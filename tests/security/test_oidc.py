"""OIDC: JWTs from a real issuer on loopback (discovery document and JWKS served over HTTP), verified by
PyJWT, with tenant roles from a roles file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import LiveServer

P = "/api/v1/evaluations/providers"


class Issuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}
        self.url = ""

    def app(self) -> Starlette:
        async def discovery(_: Any) -> JSONResponse:
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

        async def keys(_: Any) -> JSONResponse:
            return JSONResponse(self.jwks)

        return Starlette(routes=[Route("/.well-known/openid-configuration", discovery), Route("/jwks", keys)])

    def token(self, subject: str, *, key: Any = None, **claims: Any) -> dict[str, str]:
        now = int(time.time())
        body = {"iss": self.url, "aud": "assay", "sub": subject, "iat": now, "exp": now + 300, **claims}
        signed = jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": "k1"})
        return {"Authorization": f"Bearer {signed}", "X-Tenant": "team-a"}


@pytest.fixture()
def issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    with LiveServer(issuer.app()) as server:  # type: ignore[arg-type]
        issuer.url = server.url
        yield issuer


@pytest.fixture()
def oidc_hub(make_client: Callable[..., TestClient], issuer: Issuer, tmp_path: Path) -> TestClient:
    roles = tmp_path / "roles.yaml"
    roles.write_text("team-a:\n  editor: [alice]\n  viewer: ['group:auditors']\n")
    return make_client(auth_mode="oidc", oidc_issuer=issuer.url, oidc_audience="assay", auth_roles_file=roles)


def test_oidc_tokens_and_roles(oidc_hub: TestClient, issuer: Issuer) -> None:
    alice = issuer.token("alice")
    assert oidc_hub.get(P, headers=alice).status_code == 200
    created = oidc_hub.post(
        "/api/v1/evaluations/collections",
        headers=alice,
        json={"name": "c", "category": "x", "benchmarks": [{"id": "bench_a", "provider_id": "demo"}]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["resource"]["owner"] == "alice"
    auditor = issuer.token("carol", groups=["auditors"])
    assert oidc_hub.get(P, headers=auditor).status_code == 200
    assert (
        oidc_hub.delete(
            f"/api/v1/evaluations/collections/{created.json()['resource']['id']}", headers=auditor
        ).status_code
        == 403
    )
    stranger = issuer.token("mallory")
    assert oidc_hub.get(P, headers=stranger).status_code == 403
    assert oidc_hub.get(P, headers={**alice, "X-Tenant": "team-b"}).status_code == 403


@pytest.mark.parametrize(
    "tamper",
    [
        {"exp": 1},  # expired
        {"aud": "someone-else"},
        {"iss": "https://evil.example"},
    ],
)
def test_bad_jwts_are_refused(oidc_hub: TestClient, issuer: Issuer, tamper: dict[str, Any]) -> None:
    answer = oidc_hub.get(P, headers=issuer.token("alice", **tamper))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_token_signed_by_another_key_is_refused(oidc_hub: TestClient, issuer: Issuer) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert oidc_hub.get(P, headers=issuer.token("alice", key=other)).status_code == 401
