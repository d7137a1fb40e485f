"""Policies as YAML files (``<config_dir>/policies/<tenant>/*.yaml``): validated like API bodies, loaded per
tenant, read-only through the API, followed when the files change, and acted on like any other policy."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from assay.core.events import MODEL_VERSION_CREATED
from assay.store import Database
from assay.triggers import sync_policy_files
from tests.conftest import FIXTURES, LiveServer
from tests.lifecycle.test_local_lifecycle import exact_match_provider
from tests.support.waiting import wait_for
from tests.triggers.hub import answers, policy
from tests.triggers.senders import SECRETS, registry_cloudevent


def _write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def _config(tmp_path: Path) -> Path:
    root = tmp_path / "config"
    shutil.copytree(FIXTURES / "catalogue", root)
    _write(root / "providers" / "exact.yaml", exact_match_provider())  # a system provider the files can use
    _write(root / "policies" / "default" / "acme.yaml", policy(["cloudevents"]))
    broken = policy(["cloudevents", "carrier-pigeon"], id="broken")
    _write(root / "policies" / "default" / "broken.yaml", broken)
    missing = policy(["cloudevents"], id="missing")
    missing["action"] = {"collection": {"id": "no-such-collection"}}
    _write(root / "policies" / "default" / "missing.yaml", missing)
    _write(root / "policies" / "team-b" / "own.yaml", policy(["mlflow"], id="team-b-only"))
    _write(
        root / "policies" / "team-b" / "no-id.yaml",
        {k: v for k, v in policy(["mlflow"]).items() if k != "id"},
    )
    _write(root / "policies" / "Not_A_Tenant" / "x.yaml", policy(["mlflow"], id="x"))
    return root


def _sync(server: LiveServer, root: Path) -> list[str]:
    async def run() -> list[str]:
        url = server.settings.database_url  # type: ignore[attr-defined]
        database = await Database.open(url)
        try:
            return await sync_policy_files(database, root, "local")
        finally:
            await database.close()

    return asyncio.run(run())


def test_policy_files_load_per_tenant_read_only_and_followed(
    start_hub: Callable[..., LiveServer], tmp_path: Path
) -> None:
    root = _config(tmp_path)
    server = start_hub(config_dir=root, config_reload=True, webhook_secrets={"default": SECRETS})
    hub = server.client(timeout=30)

    listed = hub.get("/api/v1/evaluations/policies").json()
    assert [p["resource"]["id"] for p in listed["items"]] == ["acme-qa"]  # the bad files are skipped
    loaded = listed["items"][0]
    assert loaded["resource"]["file"] == "policies/default/acme.yaml"
    assert loaded["rule"]["sources"] == ["cloudevents"]
    other = hub.get("/api/v1/evaluations/policies", headers={"X-Tenant": "team-b"}).json()
    assert [p["resource"]["id"] for p in other["items"]] == ["team-b-only"]  # each tenant its own folder

    # Every skipped file is reported with the field or reason; loading again changes nothing.
    problems = _sync(server, root)
    assert any(p.startswith("policies/default/broken.yaml: rule.sources[1]") for p in problems), problems
    assert any(p.startswith("policies/default/missing.yaml: action.collection.id") for p in problems), (
        problems
    )
    assert any(p.startswith("policies/Not_A_Tenant/") for p in problems), problems
    assert any(p.startswith("policies/team-b/no-id.yaml: ") for p in problems), problems
    again = hub.get("/api/v1/evaluations/policies/acme-qa").json()
    assert again["resource"]["updated_at"] == loaded["resource"]["updated_at"]

    # Read-only through the API, with the file named; the id is taken.
    for answer in (
        hub.put("/api/v1/evaluations/policies/acme-qa", json=policy(["mlflow"])),
        hub.patch("/api/v1/evaluations/policies/acme-qa", json={"enabled": False}),
        hub.delete("/api/v1/evaluations/policies/acme-qa"),
    ):
        assert answer.status_code == 400, answer.text
        assert answer.json()["message_code"] == "read_only_policy"
        assert "policies/default/acme.yaml" in answer.json()["message"]
    taken = hub.post("/api/v1/evaluations/policies", json=policy(["mlflow"]))
    assert taken.status_code == 400 and taken.json()["message_code"] == "policy_id_not_unique"

    # It acts like any policy: a registry event for a matching version starts one evaluation.
    data = {
        "registry": "https://registry.example",
        "model_name": "acme-chat",
        "version": "1",
        "tags": {"answers": str(answers(tmp_path / "a.jsonl", 9))},
    }
    body, headers = registry_cloudevent(MODEL_VERSION_CREATED, data, event_id="file-policy-1")
    started = hub.post("/api/v1/events", content=body, headers=headers)
    assert started.status_code == 202, started.text
    job_id = started.json()["job_ids"][0]
    assert hub.get(f"/api/v1/evaluations/jobs/{job_id}").status_code == 200

    # A file made through the API first keeps the API's row; the file is refused, not merged.
    api_made = policy(["mlflow"], id="api-made", name="made through the API")
    assert hub.post("/api/v1/evaluations/policies", json=api_made).status_code == 201
    _write(root / "policies" / "default" / "api-made.yaml", policy(["cloudevents"], id="api-made"))
    problems = _sync(server, root)
    assert any("already has a policy 'api-made' made through the API" in p for p in problems), problems
    kept = hub.get("/api/v1/evaluations/policies/api-made").json()
    assert kept["name"] == "made through the API" and "file" not in kept["resource"]

    # The hub follows the files: an edit is picked up, a removed file removes its policy.
    _write(root / "policies" / "default" / "acme.yaml", policy(["cloudevents"], enabled=False))
    wait_for(lambda: hub.get("/api/v1/evaluations/policies/acme-qa").json()["enabled"] is False, timeout=30)
    (root / "policies" / "default" / "acme.yaml").unlink()
    wait_for(lambda: hub.get("/api/v1/evaluations/policies/acme-qa").status_code == 404, timeout=30)
    assert hub.get("/api/v1/evaluations/policies/api-made").status_code == 200
