"""Evaluation policies from YAML files, beside the system catalogue: ``<config_dir>/policies/<tenant>/*.yaml``,
one policy per file with its ``id``, in the same shape as an API body (``docs/triggers.md``).

A tenant's folder is its policies as code (a ConfigMap per tenant namespace, or a Git repository). Each file
is validated exactly like ``POST /policies``, then checked against what the tenant can run; a file that
fails is skipped and reported, the others still load. The file-defined rows are replaced in one transaction
on every (re)load and are read-only through the API.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from assay.api import CollectionSpec, ProviderSpec
from assay.api.policies import PolicySpec
from assay.core import Tenant
from assay.errors import InvalidIdentity, InvalidRequest, NotFound
from assay.store import Database, TenantStore
from assay.store.policies import PolicyFile, replace_policy_files
from assay.store.system_catalogue import invalid_file, read_resource_file, yaml_files
from assay.triggers.matching import check_policy

log = logging.getLogger(__name__)

POLICIES = "policies"


async def policy_document(store: TenantStore, spec: PolicySpec, runtime: str) -> dict[str, Any]:
    """The stored document of ``spec``, after checking that the collection or benchmarks it runs exist for
    the store's tenant and can run on this hub (400 naming the fields otherwise)."""
    collection: CollectionSpec | None = None
    provider_ids = {b.provider_id for b in spec.action.benchmarks or []}
    if spec.action.collection is not None:
        try:
            found = await store.collections.get(spec.action.collection.id)
        except NotFound:
            found = None
        if found is not None:
            collection = CollectionSpec.model_validate(found.spec)
            provider_ids = {b.provider_id for b in collection.benchmarks}
    records = await store.providers.get_many(sorted(provider_ids))
    providers = {pid: ProviderSpec.model_validate(r.spec) for pid, r in records.items()}
    check_policy(spec, providers=providers, collection=collection, runtime=runtime)
    return spec.model_dump(mode="json", exclude_none=True, exclude={"id", "resource"})


async def load_policy_files(
    database: Database, root: Path, runtime: str
) -> tuple[list[PolicyFile], list[str]]:
    """Every valid policy file under ``root/policies`` and a line per file skipped, naming why."""
    policies: list[PolicyFile] = []
    problems: list[str] = []
    folder = root / POLICIES
    tenants = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    for directory in tenants:
        try:
            tenant = Tenant(directory.name)
        except InvalidIdentity:
            problems.append(f"{POLICIES}/{directory.name}/: not a tenant name (an RFC 1123 DNS label)")
            continue
        seen: set[str] = set()
        store = database.scoped(tenant)
        for path in yaml_files(directory):
            name = f"{POLICIES}/{directory.name}/{path.name}"
            found: list[str] = []
            data = read_resource_file(path, found)
            problems += [f"{POLICIES}/{directory.name}/{line}" for line in found]
            if data is None:
                continue
            try:
                spec = PolicySpec.model_validate(data)
                document = await policy_document(store, spec, runtime)
            except (ValidationError, InvalidRequest) as exc:
                problems.append(f"{POLICIES}/{directory.name}/{invalid_file(path, exc)}")
                continue
            if spec.id is None:
                problems.append(f"{name}: id: a policy file must give the policy's id")
                continue
            policy_id = str(spec.id)
            if policy_id in seen:
                problems.append(
                    f"{name}: policy id {policy_id!r} is defined twice for tenant {tenant.name!r}"
                )
                continue
            seen.add(policy_id)
            policies.append(PolicyFile(tenant=tenant.name, id=policy_id, file=name, spec=document))
    return policies, problems


async def sync_policy_files(database: Database, root: Path, runtime: str) -> list[str]:
    """Make the file-defined policies those of ``root/policies``; returns (and logs) what was skipped."""
    policies, problems = await load_policy_files(database, root, runtime)
    refused = await replace_policy_files(database.pool, policies)
    problems += [
        f"{p.file}: tenant {p.tenant!r} already has a policy {p.id!r} made through the API" for p in refused
    ]
    for problem in problems:
        log.error("policy file skipped: %s", problem)
    if policies or problems:
        log.info("policy files loaded from %s: %d policies", root / POLICIES, len(policies) - len(refused))
    return problems


__all__ = ["load_policy_files", "policy_document", "sync_policy_files"]
