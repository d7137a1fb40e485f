"""Collections through the HTTP API: reference and scoring validation, PATCH both ways, clones."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

BASE = "/api/v1/evaluations/collections"


def collection_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "My suite",
        "category": "reasoning",
        "description": "mine",
        "pass_criteria": {"threshold": 0.6},
        "benchmarks": [
            {"id": "bench_a", "provider_id": "demo", "weight": 2, "parameters": {"num_examples": 10}},
            {"id": "latency", "provider_id": "demo", "weight": 1},
        ],
    }
    body.update(overrides)
    return body


def errors_of(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.text
    return [(e["path"], e["code"]) for e in response.json()["errors"]]


def test_create_fills_urls_and_round_trips(client: TestClient) -> None:
    created = client.post(BASE, json=collection_body())
    assert created.status_code == 201, created.text
    cid = created.json()["resource"]["id"]
    got = client.get(f"{BASE}/{cid}").json()
    assert got["benchmarks"][0]["parameters"] == {"num_examples": 10}
    assert got["benchmarks"][1]["weight"] == 1
    assert got["custom"] == {} and got["tags"] == []
    ids = [c["resource"]["id"] for c in client.get(BASE).json()["items"]]
    assert ids == ["demo-suite", cid]


def test_every_bad_reference_is_reported_at_once(client: TestClient) -> None:
    body = collection_body(
        benchmarks=[
            {"id": "bench_a", "provider_id": "nope"},
            {"id": "missing", "provider_id": "demo"},
            {"id": "bench_a", "provider_id": "demo", "primary_score": {"metric": "bleu"}},
            {"id": "latency", "provider_id": "demo", "primary_score": {"metric": "no_scale_metric"}},
        ],
        pass_criteria={"threshold": 40},
    )
    assert errors_of(client.post(BASE, json=body)) == [
        ("benchmarks[0].provider_id", "resource_does_not_exist"),
        ("benchmarks[1].id", "resource_does_not_exist"),
        ("benchmarks[2].primary_score.metric", "metric_not_reported"),
        ("pass_criteria.threshold", "out_of_range"),
    ]
    assert client.get(BASE).json()["total_count"] == 1  # only the system one


def test_a_metric_without_a_scale_is_accepted_with_a_warning(client: TestClient) -> None:
    """A weighted metric with no scale is not refused: the response warns that it stays out of the
    composite; a well-known proportion (accuracy) gets [0, 1] by default and draws no warning."""
    unscaled = {"id": "latency", "provider_id": "demo", "primary_score": {"metric": "no_scale_metric"}}
    created = client.post(BASE, json=collection_body(benchmarks=[unscaled]))
    assert created.status_code == 201, created.text
    assert [(w["path"], w["code"]) for w in created.json()["warnings"]] == [
        ("benchmarks[0].primary_score.scale", "scale_unknown")
    ]
    cid = created.json()["resource"]["id"]
    assert "warnings" not in client.get(f"{BASE}/{cid}").json()
    default = {"id": "bench_a", "provider_id": "demo", "primary_score": {"metric": "accuracy"}}
    plain = client.post(BASE, json=collection_body(benchmarks=[default]))
    assert plain.status_code == 201, plain.text
    assert "warnings" not in plain.json()


def test_scale_and_weights_rules(client: TestClient) -> None:
    # A metric without a scale is fine once it carries one, or is left out of the composite.
    scaled = {
        "id": "latency",
        "provider_id": "demo",
        "primary_score": {"metric": "no_scale_metric", "scale": {"min": 0, "max": 10}},
    }
    excluded = {
        "id": "latency",
        "provider_id": "demo",
        "weight": 0,
        "primary_score": {"metric": "no_scale_metric"},
    }
    assert client.post(BASE, json=collection_body(benchmarks=[scaled, {**excluded}])).status_code == 201
    zero = [{"id": "bench_a", "provider_id": "demo", "weight": 0}]
    assert errors_of(client.post(BASE, json=collection_body(benchmarks=zero))) == [
        ("benchmarks", "all_weights_zero")
    ]
    negative = [{"id": "bench_a", "provider_id": "demo", "weight": -1}]
    assert errors_of(client.post(BASE, json=collection_body(benchmarks=negative))) == [
        ("benchmarks[0].weight", "min")
    ]
    inverted = [
        {
            "id": "bench_a",
            "provider_id": "demo",
            "primary_score": {"metric": "accuracy", "scale": {"min": 1, "max": 0}},
        }
    ]
    assert errors_of(client.post(BASE, json=collection_body(benchmarks=inverted))) == [
        ("benchmarks[0].primary_score.scale", "invalid")
    ]


def test_tenant_providers_are_referenceable(client: TestClient) -> None:
    provider = {
        "id": "mine",
        "name": "Mine",
        "benchmarks": [
            {
                "id": "x",
                "name": "X",
                "category": "c",
                "metrics": ["m"],
                "primary_score": {"metric": "m", "scale": {"min": 0, "max": 1}},
            }
        ],
    }
    assert client.post("/api/v1/evaluations/providers", json=provider).status_code == 201
    body = collection_body(
        benchmarks=[{"id": "x", "provider_id": "mine"}, {"id": "bench_b", "provider_id": "demo"}]
    )
    assert client.post(BASE, json=body).status_code == 201
    other = client.post(BASE, json=body, headers={"X-Tenant": "other"})
    assert errors_of(other) == [("benchmarks[0].provider_id", "resource_does_not_exist")]


def test_patch_both_ways_revalidates(client: TestClient) -> None:
    cid = client.post(BASE, json=collection_body()).json()["resource"]["id"]
    before = client.get(f"{BASE}/{cid}").json()

    # EvalHub 1.0.2 accepted both of these (verified); they are invalid.
    assert errors_of(client.patch(f"{BASE}/{cid}", json={"category": ""})) == [("category", "min_length")]
    assert errors_of(
        client.patch(f"{BASE}/{cid}", json=[{"op": "replace", "path": "/benchmarks", "value": []}])
    ) == [("benchmarks", "min_items")]
    unknown = client.patch(
        f"{BASE}/{cid}",
        json=[{"op": "add", "path": "/benchmarks/-", "value": {"id": "zzz", "provider_id": "demo"}}],
    )
    assert errors_of(unknown) == [("benchmarks[2].id", "resource_does_not_exist")]
    assert client.get(f"{BASE}/{cid}").json() == before

    merged = client.patch(f"{BASE}/{cid}", json={"pass_criteria": {"threshold": 0.8}, "tags": ["gate"]})
    assert merged.status_code == 200, merged.text
    assert merged.json()["pass_criteria"] == {"threshold": 0.8}
    arrayed = client.patch(
        f"{BASE}/{cid}", json=[{"op": "replace", "path": "/benchmarks/0/weight", "value": 5}]
    )
    assert arrayed.status_code == 200, arrayed.text
    assert arrayed.json()["benchmarks"][0]["weight"] == 5
    assert arrayed.json()["tags"] == ["gate"]


def test_system_collection_is_read_only_but_clonable(client: TestClient) -> None:
    for response in (
        client.put(f"{BASE}/demo-suite", json=collection_body()),
        client.patch(f"{BASE}/demo-suite", json={"name": "x"}),
        client.delete(f"{BASE}/demo-suite"),
    ):
        assert response.status_code == 400
        assert response.json()["message_code"] == "read_only_collection"
    clone = client.post(f"{BASE}/demo-suite/clones", json={"name": "Mine"})
    assert clone.status_code == 201, clone.text
    copy = clone.json()
    assert (copy["name"], copy["derived_from"], copy["resource"]["tenant"]) == (
        "Mine",
        "demo-suite",
        "default",
    )
    assert copy["benchmarks"] == client.get(f"{BASE}/demo-suite").json()["benchmarks"]
    assert clone.headers["location"] == f"{BASE}/{copy['resource']['id']}"
    assert client.patch(f"{BASE}/{copy['resource']['id']}", json={"name": "Mine 2"}).status_code == 200
    assert client.post(f"{BASE}/demo-suite/clones").status_code == 201  # an empty body works too


def test_benchmark_id_alias_and_filters(client: TestClient) -> None:
    body = collection_body(
        category="safety",
        tags=["gate", "nightly"],
        benchmarks=[{"benchmark_id": "bench_a", "provider_id": "demo"}],
    )
    created = client.post(BASE, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["benchmarks"][0]["id"] == "bench_a"

    def ids(query: str) -> list[str]:
        return [c["name"] for c in client.get(f"{BASE}?{query}").json()["items"]]

    assert ids("category=safety") == ["My suite"]
    assert ids("category=safety|general") == ["Demo suite", "My suite"]
    assert ids("tags=gate,nightly") == ["My suite"]
    assert ids("owner=system") == ["Demo suite"]
