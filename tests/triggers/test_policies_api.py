"""The policies API follows the EvalHub catalogue style: create (201, Location), list (first/next,
total_count), get, replace, patch (merge or JSON Patch, re-validated), delete; tenant-scoped; every
invalid field named."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.triggers.test_webhooks import POLICIES, policy


def paths(response: Any) -> list[str]:
    return sorted(e["path"] for e in response.json()["errors"])


def test_policy_crud_round_trip(client: TestClient) -> None:
    created = client.post(POLICIES, json=policy())
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{POLICIES}/acme-models"
    document = created.json()
    assert document["resource"]["id"] == "acme-models" and document["resource"]["tenant"] == "default"
    assert document["baseline"] == {"kind": "previous_version"}
    assert document["gate"] == {"max_drop": 0.0, "relative": False, "sigma": 2.0, "require_thresholds": True}
    assert client.post(POLICIES, json=policy()).json()["message_code"] == "policy_id_not_unique"

    second = client.post(POLICIES, json=policy(id=None, name="second"))
    assert second.status_code == 201
    page = client.get(POLICIES, params={"limit": 1}).json()
    assert page["total_count"] == 2 and len(page["items"]) == 1 and "offset=1" in page["next"]["href"]
    assert client.get(POLICIES, params={"name": "second"}).json()["total_count"] == 1
    assert client.get(POLICIES, params={"bogus": "1"}).json()["message_code"] == "query_bad_parameter"

    patched = client.patch(f"{POLICIES}/acme-models", json={"enabled": False, "gate": {"max_drop": 0.02}})
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert patched.json()["gate"]["max_drop"] == 0.02
    assert client.get(POLICIES, params={"enabled": "false"}).json()["total_count"] == 1
    json_patch = client.patch(
        f"{POLICIES}/acme-models",
        json=[{"op": "replace", "path": "/baseline", "value": {"kind": "alias", "alias": "champion"}}],
    )
    assert json_patch.status_code == 200 and json_patch.json()["baseline"]["alias"] == "champion"
    refused = client.patch(f"{POLICIES}/acme-models", json={"resource": {"id": "x"}})
    assert refused.status_code == 400 and refused.json()["message_code"] == "unallowed_patch"

    replaced = client.put(f"{POLICIES}/acme-models", json=policy(name="replaced"))
    assert replaced.status_code == 200 and replaced.json()["name"] == "replaced"
    assert client.get(f"{POLICIES}/acme-models", headers={"X-Tenant": "team-b"}).status_code == 404
    assert client.delete(f"{POLICIES}/acme-models").status_code == 204
    assert client.get(f"{POLICIES}/acme-models").status_code == 404
    assert client.delete(f"{POLICIES}/acme-models").status_code == 404


def test_invalid_policies_name_every_bad_field(client: TestClient) -> None:
    bad_rule = client.post(
        POLICIES,
        json=policy(rule={"sources": ["svn"], "model_name_regex": "(", "tagz": {}}, gate={"max_drop": -1}),
    )
    assert bad_rule.status_code == 400
    assert paths(bad_rule) == ["gate.max_drop", "rule.model_name_regex", "rule.sources[0]", "rule.tagz"]

    missing_collection = client.post(POLICIES, json=policy(action={"collection": {"id": "nope"}}))
    assert missing_collection.status_code == 400 and paths(missing_collection) == ["action.collection.id"]

    unknown_benchmark = client.post(
        POLICIES,
        json=policy(
            action={
                "benchmarks": [{"id": "nope", "provider_id": "demo", "parameters": {"x": "{tags}"}}],
                "endpoint": {"template": "ftp://{model}"},
            }
        ),
    )
    assert unknown_benchmark.status_code == 400
    assert paths(unknown_benchmark) == ["action.endpoint.template"]
    placeholder = client.post(
        POLICIES,
        json=policy(
            action={"benchmarks": [{"id": "bench_a", "provider_id": "demo", "parameters": {"x": "{tags}"}}]}
        ),
    )
    assert placeholder.status_code == 400 and paths(placeholder) == ["action.benchmarks[0].parameters.x"]
    benchmark = client.post(
        POLICIES, json=policy(action={"benchmarks": [{"id": "nope", "provider_id": "demo"}]})
    )
    assert benchmark.status_code == 400 and paths(benchmark) == ["action.benchmarks[0].id"]
    no_endpoint = client.post(
        POLICIES, json=policy(action={"collection": {"id": "demo-suite"}, "endpoint": {"metadata_keys": []}})
    )
    assert no_endpoint.status_code == 201  # an endpoint from the registry's metadata is enough to create it

    composite = client.post(
        POLICIES, json=policy(action={"collection": {"id": "demo-suite"}, "pass_criteria": {"threshold": 40}})
    )
    assert composite.status_code == 400 and "normalised composite scale" in composite.json()["message"]

    baseline = client.post(POLICIES, json=policy(id="b", baseline={"kind": "alias"}))
    assert baseline.status_code == 400 and paths(baseline) == ["baseline"]
    assert client.get(POLICIES).json()["total_count"] == 1
