"""The Kubeflow Model Registry poll: it emits no events, so the sweep asks its REST API
(``/api/model_registry/v1alpha3``) for model versions changed since the last look, and feeds each new or
changed version through the policies like any other registry event.

What was seen is remembered in Postgres: the newest ``lastUpdateTimeSinceEpoch`` per registry (the
cursor), and per version the change it was last handled at (``model_versions.registry_updated``), so a
version is handled once per change however often the sweep runs. Archived versions are noted, never
evaluated.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assay.core import Tenant
from assay.lifecycle import Lifecycle
from assay.settings import KubeflowRegistry
from assay.store.trigger_claims import TriggerRepository, VersionKey
from assay.triggers.deliveries import ingest
from assay.triggers.versions import ModelVersionEvent

if TYPE_CHECKING:
    import httpx  # imported where a registry is polled: httpx loads its command line too (rich, click)

log = logging.getLogger(__name__)

API = "/api/model_registry/v1alpha3"
_PAGE = 100


def _properties(custom: dict[str, Any] | None) -> dict[str, str]:
    """Custom properties as tags: string, int, double and bool values (``MetadataStringValue`` ...)."""
    tags: dict[str, str] = {}
    for key, value in (custom or {}).items():
        if not isinstance(value, dict):
            continue
        for field in ("string_value", "int_value", "double_value", "bool_value"):
            if field in value and value[field] is not None:
                raw = value[field]
                tags[key] = str(raw).lower() if isinstance(raw, bool) else str(raw)
                break
    return tags


def _changed_at(item: dict[str, Any]) -> int:
    for field in ("lastUpdateTimeSinceEpoch", "createTimeSinceEpoch"):
        try:
            return int(item.get(field) or 0)
        except (TypeError, ValueError):
            continue
    return 0


async def _changed_versions(client: httpx.AsyncClient, cursor: int | None) -> list[dict[str, Any]]:
    """Versions changed at or after ``cursor`` (ms since epoch), oldest first. Equal stamps are looked at
    again: two versions may share a millisecond, and the per-version marker makes that harmless."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"pageSize": _PAGE, "orderBy": "LAST_UPDATE_TIME", "sortOrder": "DESC"}
        if token:
            params["nextPageToken"] = token
        response = await client.get(f"{API}/model_versions", params=params)
        response.raise_for_status()
        page = response.json()
        items = page.get("items") or []
        older = False
        for item in items:
            if cursor is not None and _changed_at(item) < cursor:
                older = True
                break
            found.append(item)
        token = page.get("nextPageToken") or None
        if older or not token or not items:
            break
    return list(reversed(found))


async def poll_registry(ctx: Lifecycle, registry: KubeflowRegistry) -> dict[str, int]:
    """Look at one registry once; returns how many versions were handled and evaluations started."""
    import httpx

    tenant = Tenant(registry.tenant)
    name = registry.name or registry.url.rstrip("/")
    triggers = TriggerRepository(ctx.database.pool, tenant)
    stored = await triggers.poll_cursor(name)
    cursor = int(stored) if stored is not None else None
    headers = {"Accept": "application/json"}
    if registry.token_file is not None:
        headers["Authorization"] = "Bearer " + Path(registry.token_file).read_text(encoding="utf-8").strip()
    counts = {"registry_versions": 0, "registry_evaluations": 0}
    newest = cursor or 0
    async with httpx.AsyncClient(base_url=registry.url.rstrip("/"), headers=headers, timeout=30.0) as client:
        models: dict[str, str] = {}
        for item in await _changed_versions(client, cursor):
            changed = _changed_at(item)
            newest = max(newest, changed)
            model_id = str(item.get("registeredModelId", ""))
            if model_id not in models:
                response = await client.get(f"{API}/registered_models/{model_id}")
                response.raise_for_status()
                models[model_id] = str(response.json()["name"])
            key = VersionKey("kubeflow", name, models[model_id], str(item["name"]))
            seen = await triggers.seen_version(key)
            if seen is not None and seen.registry_updated == str(changed):
                continue  # handled at this change already
            if item.get("state") == "ARCHIVED":
                if seen is not None:
                    await triggers.merge_version(
                        key,
                        seen.version_sort,
                        tags={},
                        aliases=(),
                        stage="ARCHIVED",
                        endpoint=None,
                        uri=None,
                        registry_updated=str(changed),
                    )
                continue
            artifacts = await client.get(f"{API}/model_versions/{item['id']}/artifacts")
            artifacts.raise_for_status()
            uri = next(
                (
                    a.get("uri")
                    for a in artifacts.json().get("items") or []
                    if a.get("artifactType", "model-artifact") == "model-artifact" and a.get("uri")
                ),
                None,
            )
            event = ModelVersionEvent(
                source="kubeflow",
                registry=name,
                delivery_id=f"{item['id']}@{changed}",
                event="model_version.created" if seen is None else "model_version.updated",
                name=key.model_name,
                version=key.version,
                uri=uri,
                tags=_properties(item.get("customProperties")),
                stage=str(item.get("state") or "LIVE"),
                registry_updated=str(changed),
                kind="created" if seen is None else "updated",
            )
            outcome = await ingest(ctx, tenant, "kubeflow", event.delivery_id, event)
            counts["registry_versions"] += 1
            counts["registry_evaluations"] += sum(1 for e in outcome.evaluations if e.get("created"))
    if newest and newest != cursor:
        await triggers.set_poll_cursor(name, str(newest))
    return counts


async def poll_kubeflow(ctx: Lifecycle) -> dict[str, int]:
    """The sweep step: poll every configured registry; one that cannot be reached waits for the next sweep."""
    totals = {"registry_versions": 0, "registry_evaluations": 0}
    if not ctx.settings.kubeflow_registries:
        return totals
    import httpx

    for registry in ctx.settings.kubeflow_registries:
        try:
            counts = await poll_registry(ctx, registry)
        except (httpx.HTTPError, KeyError, ValueError, OSError) as exc:
            log.warning("polling the Kubeflow Model Registry at %s failed: %s", registry.url, exc)
            continue
        for name, value in counts.items():
            totals[name] += value
    return totals


__all__ = ["API", "poll_kubeflow", "poll_registry"]
