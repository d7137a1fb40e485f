"""Providers and collections (EvalHub v1): list, get, create, replace, patch, delete, clone."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from assay.api import (
    CloneRequest,
    Collection,
    CollectionPage,
    CollectionSpec,
    Provider,
    ProviderPage,
    ProviderSpec,
)
from assay.core import apply_patch, check_collection, parse_model
from assay.core.catalogue import CheckedCollection
from assay.errors import FieldError, Forbidden
from assay.http.context import (
    Caller,
    CallerDep,
    Paging,
    boolean,
    groups,
    page_links,
    paging,
    scope_and_owner,
    settings_of,
    sort_order,
    strict_query,
    timestamp,
)
from assay.store import CatalogueQuery, CatalogueRecord, TenantStore

router = APIRouter(prefix="/api/v1/evaluations", tags=["catalogue"])

PROVIDER_PATCHABLE = ("name", "title", "description", "tags", "runtime", "benchmarks", "agent", "custom")
COLLECTION_PATCHABLE = (
    "name",
    "category",
    "description",
    "tags",
    "custom",
    "pass_criteria",
    "benchmarks",
    "agent",
)
_EXCLUDE = {"id", "resource"}


def _resource(record: CatalogueRecord) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "id": record.id,
        "owner": record.owner,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
    }
    if record.tenant is not None:
        resource["tenant"] = record.tenant
    return {k: v for k, v in resource.items() if v is not None}


def _document(record: CatalogueRecord, **overrides: Any) -> dict[str, Any]:
    doc = {"resource": _resource(record), **record.spec, **overrides}
    if record.derived_from:
        doc["derived_from"] = record.derived_from
    return doc


def _stored(spec: ProviderSpec | CollectionSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude_none=True, exclude=_EXCLUDE)


def _no_host_commands(spec: ProviderSpec, who: Caller, request: Request) -> ProviderSpec:
    """A tenant's provider may not run a command on the hub host (``runtime.local``) unless the operator
    trusts that tenant with it (``ASSAY_LOCAL_COMMAND_TENANTS``); the system catalogue's providers may."""
    runtime = spec.runtime
    trusted = who.tenant.name in settings_of(request).local_command_tenants
    if runtime is not None and runtime.local is not None and not trusted:
        raise Forbidden(
            f"Tenant {who.tenant.name!r} may not define runtime.local.command: it would run on the hub's "
            "host. Use runtime.k8s, a provider from the system catalogue, or ask the operator to add the "
            "tenant to ASSAY_LOCAL_COMMAND_TENANTS",
            message_code="local_command_not_allowed",
            errors=[
                FieldError("runtime.local.command", "forbidden", "tenants may not run commands on the hub")
            ],
        )
    return spec


def _created(response: Response, kind: str, resource_id: str) -> None:
    response.headers["Location"] = f"{router.prefix}/{kind}/{resource_id}"


# --- providers --------------------------------------------------------------------------------------


@router.get(
    "/providers",
    response_model=ProviderPage,
    response_model_exclude_none=True,
    dependencies=[
        Depends(strict_query("limit", "offset", "benchmarks", "name", "tags", "owner", "scope", "sort"))
    ],
)
async def list_providers(request: Request, who: CallerDep) -> dict[str, Any]:
    with_benchmarks = boolean(request, "benchmarks", True)
    page, query = _list_query(request)
    records, total = await who.store.providers.list(query)
    items = [_document(r) if with_benchmarks else _document(r, benchmarks=[]) for r in records]
    return _page(request, page, total, items)


def _list_query(request: Request) -> tuple[Paging, CatalogueQuery]:
    """Paging, filters and order of a provider or collection list request."""
    page = paging(request, settings_of(request).catalogue_default_limit)
    scope, owner = scope_and_owner(request)
    query = CatalogueQuery(
        name=groups(request, "name"),
        category=groups(request, "category"),
        tags=groups(request, "tags"),
        owner=owner,
        scope=scope,
        sort=sort_order(request),
        limit=page.limit,
        offset=page.offset,
    )
    return page, query


def _page(request: Request, page: Paging, total: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {**page_links(request, page, total), "limit": page.limit, "total_count": total, "items": items}


@router.post("/providers", status_code=201, response_model=Provider, response_model_exclude_none=True)
async def create_provider(
    spec: ProviderSpec, request: Request, response: Response, who: CallerDep
) -> dict[str, Any]:
    _no_host_commands(spec, who, request)
    resource_id = spec.id or str(uuid.uuid4())
    record = await who.store.providers.create(resource_id, who.user, _stored(spec))
    _created(response, "providers", resource_id)
    return _document(record)


@router.get("/providers/{provider_id}", response_model=Provider, response_model_exclude_none=True)
async def get_provider(provider_id: str, who: CallerDep) -> dict[str, Any]:
    return _document(await who.store.providers.get(provider_id))


@router.put("/providers/{provider_id}", response_model=Provider, response_model_exclude_none=True)
async def replace_provider(
    provider_id: str, spec: ProviderSpec, request: Request, who: CallerDep
) -> dict[str, Any]:
    _no_host_commands(spec, who, request)

    async def replace(_: CatalogueRecord) -> dict[str, Any]:
        return _stored(spec)

    return _document(await who.store.providers.update(provider_id, replace))


@router.patch("/providers/{provider_id}", response_model=Provider, response_model_exclude_none=True)
async def patch_provider(
    provider_id: str,
    request: Request,
    who: CallerDep,
    patch: Annotated[Any, Body(media_type="application/json")],
) -> dict[str, Any]:
    async def patched(current: CatalogueRecord) -> dict[str, Any]:
        document = apply_patch(current.spec, patch, PROVIDER_PATCHABLE)
        spec = parse_model(ProviderSpec, document, what="patched provider")
        if current.spec.get("runtime", {}).get("local") != document.get("runtime", {}).get("local"):
            _no_host_commands(spec, who, request)  # an existing command may stay; a new one may not
        return _stored(spec)

    return _document(await who.store.providers.update(provider_id, patched))


@router.delete("/providers/{provider_id}", status_code=204, response_class=Response)
async def delete_provider(provider_id: str, who: CallerDep) -> None:
    await who.store.providers.delete(provider_id)


# --- collections ------------------------------------------------------------------------------------


async def _checked(store: TenantStore, spec: CollectionSpec) -> CheckedCollection:
    """``spec`` with its benchmark references validated against the providers the tenant sees."""
    found = await store.providers.get_many([b.provider_id for b in spec.benchmarks])
    providers = {pid: ProviderSpec.model_validate(r.spec) for pid, r in found.items()}
    return check_collection(spec, providers)


def _warned(document: dict[str, Any], checked: CheckedCollection | None) -> dict[str, Any]:
    """``document`` with the check's warnings (``{path, code, message}``), when there are any."""
    if checked is not None and checked.warnings:
        document["warnings"] = [
            {"path": w.path, "code": w.code, "message": w.message} for w in checked.warnings
        ]
    return document


@router.get(
    "/collections",
    response_model=CollectionPage,
    response_model_exclude_none=True,
    dependencies=[
        Depends(strict_query("limit", "offset", "name", "category", "tags", "owner", "scope", "sort"))
    ],
)
async def list_collections(request: Request, who: CallerDep) -> dict[str, Any]:
    page, query = _list_query(request)
    records, total = await who.store.collections.list(query)
    return _page(request, page, total, [_document(r) for r in records])


@router.post("/collections", status_code=201, response_model=Collection, response_model_exclude_none=True)
async def create_collection(spec: CollectionSpec, response: Response, who: CallerDep) -> dict[str, Any]:
    checked = await _checked(who.store, spec)
    resource_id = spec.id or str(uuid.uuid4())
    record = await who.store.collections.create(resource_id, who.user, _stored(checked.spec))
    _created(response, "collections", resource_id)
    return _warned(_document(record), checked)


@router.get("/collections/{collection_id}", response_model=Collection, response_model_exclude_none=True)
async def get_collection(collection_id: str, who: CallerDep) -> dict[str, Any]:
    return _document(await who.store.collections.get(collection_id))


@router.put("/collections/{collection_id}", response_model=Collection, response_model_exclude_none=True)
async def replace_collection(collection_id: str, spec: CollectionSpec, who: CallerDep) -> dict[str, Any]:
    checks: list[CheckedCollection] = []

    async def replace(_: CatalogueRecord) -> dict[str, Any]:
        checks.append(await _checked(who.store, spec))
        return _stored(checks[-1].spec)

    record = await who.store.collections.update(collection_id, replace)
    return _warned(_document(record), checks[-1] if checks else None)


@router.patch("/collections/{collection_id}", response_model=Collection, response_model_exclude_none=True)
async def patch_collection(
    collection_id: str, who: CallerDep, patch: Annotated[Any, Body(media_type="application/json")]
) -> dict[str, Any]:
    async def patched(current: CatalogueRecord) -> dict[str, Any]:
        document = apply_patch(current.spec, patch, COLLECTION_PATCHABLE)
        spec = parse_model(CollectionSpec, document, what="patched collection")
        checks.append(await _checked(who.store, spec))
        return _stored(checks[-1].spec)

    checks: list[CheckedCollection] = []
    record = await who.store.collections.update(collection_id, patched)
    return _warned(_document(record), checks[-1] if checks else None)


@router.delete("/collections/{collection_id}", status_code=204, response_class=Response)
async def delete_collection(collection_id: str, who: CallerDep) -> None:
    await who.store.collections.delete(collection_id)


@router.post(
    "/collections/{collection_id}/clones",
    status_code=201,
    response_model=Collection,
    response_model_exclude_none=True,
)
async def clone_collection(
    collection_id: str,
    response: Response,
    who: CallerDep,
    changes: Annotated[CloneRequest | None, Body()] = None,
) -> dict[str, Any]:
    source = await who.store.collections.get(collection_id)
    overrides = changes.model_dump(exclude_none=True, exclude={"id"}) if changes else {}
    spec = parse_model(CollectionSpec, {**source.spec, **overrides}, what="cloned collection")
    checked = await _checked(who.store, spec)
    resource_id = (changes.id if changes else None) or str(uuid.uuid4())
    record = await who.store.collections.create(
        resource_id, who.user, _stored(checked.spec), derived_from=source.id
    )
    _created(response, "collections", resource_id)
    return _warned(_document(record), checked)
