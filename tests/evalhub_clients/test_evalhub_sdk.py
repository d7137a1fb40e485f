"""The unmodified eval-hub-sdk 1.0.6 client and `evalhub` CLI against Assay over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from evalhub import SyncEvalHubClient  # type: ignore[import-untyped]

from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.http.test_collections import collection_body
from tests.http.test_providers import provider_body


@pytest.fixture()
def sdk(live_hub: LiveServer) -> SyncEvalHubClient:
    return SyncEvalHubClient(base_url=live_hub.url, auth_token=ADMIN_TOKEN)


def test_health(sdk: SyncEvalHubClient) -> None:
    assert sdk.health()["status"] == "healthy"


def test_providers_crud(sdk: SyncEvalHubClient) -> None:
    created = sdk.providers.create(provider_body())
    pid = created.resource.id
    assert created.name == "My framework"
    assert [p.resource.id for p in sdk.providers.list()] == ["demo", pid]
    assert sdk.providers.get(pid).benchmarks[0].id == "qa"

    updated = sdk.providers.update(pid, provider_body(name="Updated"))
    assert updated.name == "Updated"
    patched = sdk.providers.patch(pid, {"description": "patched by the SDK"})
    assert patched.description == "patched by the SDK"
    assert patched.name == "Updated"

    sdk.providers.delete(pid)
    assert [p.resource.id for p in sdk.providers.list()] == ["demo"]
    # The SDK's benchmark listing walks every provider.
    assert {b.id for b in sdk.benchmarks.list()} == {"bench_a", "bench_b", "latency"}


def test_collections_crud(sdk: SyncEvalHubClient) -> None:
    created = sdk.collections.create(collection_body())
    cid = created.resource.id
    assert created.benchmarks[0].weight == 2
    assert {c.resource.id for c in sdk.collections.list()} == {"demo-suite", cid}
    assert sdk.collections.get(cid).category == "reasoning"

    updated = sdk.collections.update(cid, collection_body(name="Updated"))
    assert updated.name == "Updated"
    patched = sdk.collections.patch(cid, {"pass_criteria": {"threshold": 0.75}})
    assert patched.pass_criteria is not None and patched.pass_criteria.threshold == 0.75

    sdk.collections.delete(cid)
    assert [c.resource.id for c in sdk.collections.list()] == ["demo-suite"]


def test_tenant_scoping_through_the_sdk(live_hub: LiveServer) -> None:
    team_a = SyncEvalHubClient(base_url=live_hub.url, auth_token=ADMIN_TOKEN, tenant="team-a")
    team_b = SyncEvalHubClient(base_url=live_hub.url, auth_token=ADMIN_TOKEN, tenant="team-b")
    pid = team_a.providers.create(provider_body()).resource.id
    assert pid in {p.resource.id for p in team_a.providers.list()}
    assert pid not in {p.resource.id for p in team_b.providers.list()}


def _evalhub(live_hub: LiveServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EVALHUB_BASE_URL": live_hub.url,
        "EVALHUB_TOKEN": ADMIN_TOKEN,
        "EVALHUB_CONFIG": str(tmp_path / "evalhub.yaml"),
    }
    cli = Path(sys.executable).with_name("evalhub")
    return subprocess.run([str(cli), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def _json_in(stdout: str) -> list[dict[str, object]]:
    """The JSON list the CLI prints, after any banner line (`Collection created: ...`)."""
    start = 0 if stdout.startswith("[") else stdout.index("\n[") + 1
    document, _ = json.JSONDecoder().raw_decode(stdout[start:])
    return list(document)


def test_evalhub_cli(live_hub: LiveServer, tmp_path: Path) -> None:
    health = _evalhub(live_hub, tmp_path, "health")
    assert health.returncode == 0, health.stdout + health.stderr

    spec = tmp_path / "collection.yaml"
    spec.write_text(yaml.safe_dump(collection_body(name="From the CLI")))
    created = _evalhub(live_hub, tmp_path, "collections", "create", "--file", str(spec), "--format", "json")
    assert created.returncode == 0, created.stdout + created.stderr
    assert created.stdout.startswith("Collection created: ")  # then the JSON document
    cid = _json_in(created.stdout)[0]["resource"]["id"]

    patch = tmp_path / "patch.yaml"
    patch.write_text(yaml.safe_dump({"description": "patched from the CLI"}))
    patched = _evalhub(
        live_hub, tmp_path, "collections", "patch", cid, "--file", str(patch), "--format", "json"
    )
    assert patched.returncode == 0, patched.stdout + patched.stderr
    assert _json_in(patched.stdout)[0]["description"] == "patched from the CLI"

    provider = tmp_path / "provider.yaml"
    provider.write_text(yaml.safe_dump(provider_body(name="CLI provider")))
    made = _evalhub(live_hub, tmp_path, "providers", "create", "--file", str(provider), "--format", "json")
    assert made.returncode == 0, made.stdout + made.stderr

    listed = _evalhub(live_hub, tmp_path, "providers", "list", "--format", "json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert {p["name"] for p in _json_in(listed.stdout)} == {"Demo framework", "CLI provider"}

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(collection_body(benchmarks=[{"id": "nope", "provider_id": "demo"}])))
    refused = _evalhub(live_hub, tmp_path, "collections", "create", "--file", str(bad))
    assert refused.returncode != 0
    assert "benchmark 'nope' does not exist" in refused.stdout + refused.stderr
