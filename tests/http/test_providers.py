"""Providers through the HTTP API: CRUD, both runtime spellings, PATCH both ways, system read-only."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

BASE = "/api/v1/evaluations/providers"


def provider_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "My framework",
        "description": "custom adapter",
        "tags": ["custom"],
        "runtime": {"k8s": {"image": "quay.io/me/adapter:1", "cpu_request": "500m", "memory_limit": "2Gi"}},
        "benchmarks": [
            {
                "id": "qa",
                "name": "QA",
                "category": "knowledge",
                "metrics": ["acc"],
                "primary_score": {"metric": "acc", "scale": {"min": 0, "max": 1}},
                "pass_criteria": {"threshold": 0.6},
            }
        ],
    }
    body.update(overrides)
    return body


def test_create_get_list_replace_delete(client: TestClient) -> None:
    created = client.post(BASE, json=provider_body())
    assert created.status_code == 201, created.text
    provider = created.json()
    pid = provider["resource"]["id"]
    assert created.headers["location"] == f"{BASE}/{pid}"
    assert provider["resource"]["tenant"] == "default"
    assert provider["runtime"]["k8s"]["cpu_request"] == "500m"

    assert client.get(f"{BASE}/{pid}").json()["name"] == "My framework"
    listed = client.get(BASE).json()
    assert [p["resource"]["id"] for p in listed["items"]] == ["demo", pid]  # creation order
    assert listed["total_count"] == 2

    replaced = client.put(f"{BASE}/{pid}", json=provider_body(name="Renamed", tags=[]))
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["name"] == "Renamed"
    assert replaced.json()["tags"] == []

    assert client.delete(f"{BASE}/{pid}").status_code == 204
    assert client.get(f"{BASE}/{pid}").status_code == 404
    assert client.delete(f"{BASE}/{pid}").status_code == 404


def test_go_style_runtime_keys_are_accepted_and_emitted_in_snake_case(client: TestClient) -> None:
    body = provider_body(
        runtime={
            "k8s": {
                "Image": "quay.io/me/a:1",
                "Entrypoint": ["python", "main.py"],
                "CPURequest": "1",
                "MemoryRequest": "1Gi",
                "CPULimit": "2",
                "MemoryLimit": "4Gi",
                "Env": [{"Name": "FOO", "Value": "bar"}],
                "ImagePullPolicy": "IfNotPresent",
            },
            "local": {"command": "python main.py", "env": [{"Name": "X", "Value": "1"}]},
        }
    )
    created = client.post(BASE, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["runtime"] == {
        "k8s": {
            "image": "quay.io/me/a:1",
            "entrypoint": ["python", "main.py"],
            "cpu_request": "1",
            "memory_request": "1Gi",
            "cpu_limit": "2",
            "memory_limit": "4Gi",
            "env": [{"name": "FOO", "value": "bar"}],
            "image_pull_policy": "if_not_present",
        },
        "local": {"command": "python main.py", "env": [{"name": "X", "value": "1"}]},
    }


def test_unknown_runtime_key_is_named(client: TestClient) -> None:
    response = client.post(BASE, json=provider_body(runtime={"k8s": {"image": "x", "cpu_requests": "1"}}))
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["runtime.k8s.cpu_requests"]


def test_sdk_cli_style_nulls_are_absent(client: TestClient) -> None:
    """`evalhub providers create` dumps its model with nulls for every unset optional field."""
    body = provider_body(description=None, runtime=None)
    body["benchmarks"][0].update({"url": None, "description": None, "agent": None, "num_few_shot": 0})
    response = client.post(BASE, json=body)
    assert response.status_code == 201, response.text
    out = response.json()
    assert "description" not in out and "runtime" not in out
    assert "null" not in response.text


def test_client_chosen_id_and_duplicates(client: TestClient) -> None:
    assert client.post(BASE, json=provider_body(id="mine")).status_code == 201
    again = client.post(BASE, json=provider_body(id="mine"))
    assert again.status_code == 400
    assert again.json()["message_code"] == "provider_id_not_unique"
    shadow = client.post(BASE, json=provider_body(id="demo"))
    assert shadow.status_code == 400
    assert shadow.json()["message_code"] == "provider_id_not_unique"


def test_patch_with_merge_object_and_with_json_patch_array(client: TestClient) -> None:
    pid = client.post(BASE, json=provider_body()).json()["resource"]["id"]

    merged = client.patch(f"{BASE}/{pid}", json={"description": "merged", "tags": ["a", "b"]})
    assert merged.status_code == 200, merged.text
    assert merged.json()["description"] == "merged"
    assert merged.json()["tags"] == ["a", "b"]
    assert merged.json()["benchmarks"][0]["id"] == "qa"  # untouched fields stay

    removed = client.patch(f"{BASE}/{pid}", json={"description": None})
    assert "description" not in removed.json()

    patched = client.patch(
        f"{BASE}/{pid}",
        json=[
            {"op": "replace", "path": "/name", "value": "Patched"},
            {"op": "add", "path": "/tags/-", "value": "c"},
            {"op": "replace", "path": "/benchmarks/0/pass_criteria/threshold", "value": 0.7},
        ],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["tags"], body["benchmarks"][0]["pass_criteria"]["threshold"]) == (
        "Patched",
        ["a", "b", "c"],
        0.7,
    )


def test_patch_is_revalidated_and_restricted(client: TestClient) -> None:
    pid = client.post(BASE, json=provider_body()).json()["resource"]["id"]
    before = client.get(f"{BASE}/{pid}").json()

    emptied = client.patch(f"{BASE}/{pid}", json={"benchmarks": []})
    assert emptied.status_code == 400
    assert emptied.json()["errors"][0]["path"] == "benchmarks"

    nameless = client.patch(f"{BASE}/{pid}", json=[{"op": "remove", "path": "/name"}])
    assert nameless.status_code == 400
    assert nameless.json()["errors"][0] == {"path": "name", "code": "required", "message": "Field required"}

    resource = client.patch(f"{BASE}/{pid}", json={"resource": {"id": "x"}})
    assert resource.status_code == 400
    assert resource.json()["message_code"] == "unallowed_patch"

    move = client.patch(f"{BASE}/{pid}", json=[{"op": "move", "from": "/title", "path": "/name"}])
    assert move.status_code == 400
    assert move.json()["message_code"] == "invalid_patch_operation"

    missing = client.patch(
        f"{BASE}/{pid}", json=[{"op": "replace", "path": "/benchmarks/5/name", "value": "x"}]
    )
    assert missing.status_code == 400
    assert missing.json()["message_code"] == "invalid_patch_operation"

    assert client.get(f"{BASE}/{pid}").json() == before  # nothing changed


def test_system_provider_is_read_only(client: TestClient) -> None:
    for response in (
        client.put(f"{BASE}/demo", json=provider_body()),
        client.patch(f"{BASE}/demo", json={"description": "x"}),
        client.delete(f"{BASE}/demo"),
    ):
        assert response.status_code == 400
        assert response.json()["message_code"] == "read_only_provider"
    system = client.get(f"{BASE}/demo").json()
    assert system["resource"]["owner"] == "system"
    assert "tenant" not in system["resource"]
    assert system["description"] == "A tiny provider the tests use."


def test_list_filters_and_benchmarks_flag(client: TestClient) -> None:
    client.post(BASE, json=provider_body(name="alpha", tags=["x", "y"]))
    client.post(BASE, json=provider_body(name="beta", tags=["y"]))

    def names(query: str) -> list[str]:
        response = client.get(f"{BASE}?{query}")
        assert response.status_code == 200, response.text
        return [p["name"] for p in response.json()["items"]]

    assert names("tags=y") == ["alpha", "beta"]
    assert names("tags=x,y") == ["alpha"]
    assert names("tags=x|test") == ["Demo framework", "alpha"]
    assert names("name=beta|alpha") == ["alpha", "beta"]
    assert names("scope=system") == ["Demo framework"]
    assert names("scope=tenant&sort=-name") == ["beta", "alpha"]
    without = client.get(f"{BASE}?benchmarks=false").json()["items"]
    assert all(p["benchmarks"] == [] for p in without)
