"""Evaluation policies, EvalHub-style CRUD (``/api/v1/evaluations/policies``): what a trigger evaluates, checked
against the tenant's catalogue on every write."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from assay.api.policies import Policy, PolicyPage, PolicySpec
from assay.core import apply_patch, parse_model
from assay.http.context import (
    Caller,
    CallerDep,
    boolean,
    database_of,
    groups,
    page_links,
    paging,
    settings_of,
    strict_query,
    timestamp,
)
from assay.store import TenantStore
from assay.store.policies import PolicyRecord, PolicyRepository
from assay.triggers import policy_document

router = APIRouter(prefix="/api/v1/evaluations", tags=["policies"])

POLICY_PATCHABLE = ("name", "description", "tags", "enabled", "rule", "action", "baseline", "gate")


def _document(record: PolicyRecord) -> dict[str, Any]:
    resource = {
        "id": record.id,
        "tenant": record.tenant,
        "owner": record.owner,
        "file": record.file,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
    }
    return {"resource": {k: v for k, v in resource.items() if v is not None}, **record.spec}


def _repository(who: Caller, request: Request) -> PolicyRepository:
    return PolicyRepository(database_of(request).pool, who.tenant)


async def _checked(store: TenantStore, request: Request, spec: PolicySpec) -> dict[str, Any]:
    return await policy_document(store, spec, settings_of(request).runtime)


@router.get(
    "/policies",
    response_model=PolicyPage,
    response_model_exclude_none=True,
    dependencies=[Depends(strict_query("limit", "offset", "name", "enabled"))],
)
async def list_policies(request: Request, who: CallerDep) -> dict[str, Any]:
    page = paging(request, settings_of(request).catalogue_default_limit)
    enabled = boolean(request, "enabled", True) if "enabled" in request.query_params else None
    records, total = await _repository(who, request).list(
        name=groups(request, "name"), enabled=enabled, limit=page.limit, offset=page.offset
    )
    return {
        **page_links(request, page, total),
        "limit": page.limit,
        "total_count": total,
        "items": [_document(r) for r in records],
    }


@router.post("/policies", status_code=201, response_model=Policy, response_model_exclude_none=True)
async def create_policy(
    spec: PolicySpec, request: Request, response: Response, who: CallerDep
) -> dict[str, Any]:
    document = await _checked(who.store, request, spec)
    policy_id = spec.id or str(uuid.uuid4())
    record = await _repository(who, request).create(policy_id, who.user, document)
    response.headers["Location"] = f"{router.prefix}/policies/{policy_id}"
    return _document(record)


@router.get("/policies/{policy_id}", response_model=Policy, response_model_exclude_none=True)
async def get_policy(policy_id: str, request: Request, who: CallerDep) -> dict[str, Any]:
    return _document(await _repository(who, request).get(policy_id))


@router.put("/policies/{policy_id}", response_model=Policy, response_model_exclude_none=True)
async def replace_policy(
    policy_id: str, spec: PolicySpec, request: Request, who: CallerDep
) -> dict[str, Any]:
    async def replace(_: PolicyRecord) -> dict[str, Any]:
        return await _checked(who.store, request, spec)

    return _document(await _repository(who, request).update(policy_id, replace))


@router.patch("/policies/{policy_id}", response_model=Policy, response_model_exclude_none=True)
async def patch_policy(
    policy_id: str,
    request: Request,
    who: CallerDep,
    patch: Annotated[Any, Body(media_type="application/json")],
) -> dict[str, Any]:
    async def patched(current: PolicyRecord) -> dict[str, Any]:
        document = apply_patch(current.spec, patch, POLICY_PATCHABLE)
        return await _checked(who.store, request, parse_model(PolicySpec, document, what="patched policy"))

    return _document(await _repository(who, request).update(policy_id, patched))


@router.delete("/policies/{policy_id}", status_code=204, response_class=Response)
async def delete_policy(policy_id: str, request: Request, who: CallerDep) -> None:
    await _repository(who, request).delete(policy_id)


__all__ = ["router"]
