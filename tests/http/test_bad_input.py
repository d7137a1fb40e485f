"""Bad input of every kind gets a clear 4xx naming the problem, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.http.test_collections import collection_body
from tests.http.test_providers import provider_body

P = "/api/v1/evaluations/providers"
C = "/api/v1/evaluations/collections"


def assert_nothing_created(client: TestClient) -> None:
    assert client.get(P).json()["total_count"] == 1
    assert client.get(C).json()["total_count"] == 1


@pytest.mark.parametrize("path", [P, C])
def test_broken_json(client: TestClient, path: str) -> None:
    response = client.post(path, content=b'{"name": "x",', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert body["message_code"] == "invalid_json_request"
    assert set(body) == {"message_code", "message", "trace", "detail", "errors"}
    assert response.headers["x-global-transaction-id"] == body["trace"]
    assert_nothing_created(client)


def test_wrong_types_are_all_listed(client: TestClient) -> None:
    body = provider_body(name=5, tags="not-a-list")
    body["benchmarks"][0]["num_few_shot"] = "many"
    response = client.post(P, json=body)
    assert response.status_code == 400
    paths = {e["path"] for e in response.json()["errors"]}
    assert paths == {"name", "tags", "benchmarks[0].num_few_shot"}
    assert_nothing_created(client)


def test_unknown_fields_are_named(client: TestClient) -> None:
    response = client.post(C, json=collection_body(pass_critera={"threshold": 0.5}))
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "pass_critera", "code": "unknown_field", "message": "unknown field 'pass_critera'"}
    ]
    body = collection_body()
    body["benchmarks"][0]["wieght"] = 3
    nested = client.post(C, json=body)
    assert [e["path"] for e in nested.json()["errors"]] == ["benchmarks[0].wieght"]
    assert_nothing_created(client)


def test_body_that_is_not_an_object(client: TestClient) -> None:
    for payload in ([1, 2], "text", 3):
        response = client.post(P, json=payload)
        assert response.status_code == 400
        assert response.json()["message_code"] == "request_validation_failed"
    assert_nothing_created(client)


def test_huge_body_is_refused(make_client: Callable[..., TestClient]) -> None:
    small = make_client(max_body_bytes=4096)
    big = provider_body(description="x" * 1000, tags=[f"t{i}" for i in range(1000)])
    response = small.post(P, content=json.dumps(big), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["message_code"] == "request_body_too_large"

    def chunks():  # no Content-Length: the limit applies while streaming too
        for _ in range(10):
            yield b" " * 1000

    streamed = small.post(P, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert small.get(P).json()["total_count"] == 1


@pytest.mark.parametrize(
    "name",
    ["x'; DROP TABLE providers; --", 'a" OR 1=1 --', "%' OR '%'='", "\\x00", "$$; select pg_sleep(5); $$"],
)
def test_sql_metacharacters_are_just_text(client: TestClient, name: str) -> None:
    created = client.post(
        P, json=provider_body(name=name, tags=[name.replace(",", "").replace("|", "") or "t"])
    )
    assert created.status_code == 201, created.text
    found = client.get(P, params={"name": name.replace(",", "").replace("|", "")})
    assert found.status_code == 200
    assert client.get(P, params={"tags": "' OR 1=1 --"}).json()["total_count"] == 0
    assert client.get(f"{P}/{name}").status_code == 404
    assert client.get(P).json()["total_count"] == 2


def test_query_parameters_are_checked(make_client: Callable[..., TestClient]) -> None:
    client = make_client(list_max_limit=100)
    unknown = client.get(P, params={"colour": "blue"})
    assert unknown.status_code == 400
    assert unknown.json()["message_code"] == "query_bad_parameter"
    for params in ({"limit": "-1"}, {"limit": "0"}, {"limit": "abc"}, {"limit": "101"}, {"offset": "-5"}):
        response = client.get(P, params=params)
        assert response.status_code == 400, params
        assert response.json()["message_code"] == "query_parameter_invalid"
    assert client.get(P, params={"benchmarks": "maybe"}).status_code == 400
    assert client.get(P, params={"scope": "everything"}).status_code == 400
    both = client.get(P, params={"scope": "system", "owner": "system"})
    assert both.json()["message_code"] == "query_parameter_mismatch"
    assert client.get(C, params={"sort": "id; drop"}).status_code == 400


def test_pagination_links_advance_and_stop(client: TestClient) -> None:
    for i in range(4):
        assert client.post(P, json=provider_body(name=f"p{i}")).status_code == 201
    seen: list[str] = []
    href = f"{P}?limit=2"
    while href:
        page = client.get(href).json()
        assert page["total_count"] == 5 and page["limit"] == 2
        seen += [p["name"] for p in page["items"]]
        href = page.get("next", {}).get("href")
    assert seen == ["Demo framework", "p0", "p1", "p2", "p3"]


def test_unknown_route_and_method(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["message_code"] == "resource_not_found"
    wrong = client.post("/api/v1/health")
    assert wrong.status_code == 405 and wrong.json()["message_code"] == "method_not_allowed"


def test_bodiless_requests_with_json_content_type(client: TestClient) -> None:
    """eval-hub-sdk sends Content-Type: application/json on every request, GET and DELETE included."""
    headers = {"Content-Type": "application/json"}
    assert client.get(P, headers=headers).status_code == 200
    pid = client.post(P, json=provider_body()).json()["resource"]["id"]
    assert client.delete(f"{P}/{pid}", headers=headers).status_code == 204
