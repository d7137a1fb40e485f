"""Evaluation policies in Postgres, always bound to a tenant: :class:`PolicyRepository` is the policies CRUD
(one tenant's rows, EvalHub list order); :func:`replace_policy_files` syncs the policies of the config
directory. What the triggers remember about model versions is in :mod:`assay.store.trigger_claims`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from assay.core import Tenant
from assay.errors import InvalidRequest, NotFound, ReadOnly

_COLUMNS = "id, tenant, owner, file, spec, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    id: str
    tenant: str
    owner: str | None
    file: str | None  # from a YAML file under the config directory (read-only), else None
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _read_only(record: PolicyRecord) -> ReadOnly:
    return ReadOnly(
        f"policy {record.id!r} is defined in the config file {record.file!r} and cannot be changed through "
        "the API; change the file",
        message_code="read_only_policy",
    )


class PolicyRepository:
    """One tenant's policies."""

    def __init__(self, pool: AsyncConnectionPool, tenant: Tenant) -> None:
        self._pool = pool
        self._tenant = tenant

    async def list(
        self, *, name: Sequence[Sequence[str]] = (), enabled: bool | None = None, limit: int, offset: int
    ) -> tuple[list[PolicyRecord], int]:
        where = ["tenant = %s"]
        params: list[Any] = [self._tenant.name]
        for group in name:
            where.append("spec->>'name' = ANY(%s)")
            params.append(list(group))
        if enabled is not None:
            where.append("coalesce((spec->>'enabled')::boolean, true) = %s")
            params.append(enabled)
        clause = " AND ".join(where)
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(f"SELECT count(*) AS n FROM policies WHERE {clause}", params)
            total = int((await cur.fetchone() or {"n": 0})["n"])
            await cur.execute(
                f"SELECT {_COLUMNS} FROM policies WHERE {clause} ORDER BY created_at, seq LIMIT %s OFFSET %s",
                [*params, limit, offset],
            )
            rows = await cur.fetchall()
        return [PolicyRecord(**row) for row in rows], total

    async def enabled(self) -> Sequence[PolicyRecord]:
        records, _ = await self.list(enabled=True, limit=10_000, offset=0)
        return records

    async def get(self, policy_id: str) -> PolicyRecord:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM policies WHERE tenant = %s AND id = %s",
                [self._tenant.name, policy_id],
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"policy {policy_id!r} does not exist")
        return PolicyRecord(**row)

    async def create(self, policy_id: str, owner: str | None, spec: dict[str, Any]) -> PolicyRecord:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            try:
                await cur.execute(
                    f"INSERT INTO policies (tenant, id, owner, spec) VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}",
                    [self._tenant.name, policy_id, owner, Jsonb(spec)],
                )
            except errors.UniqueViolation:
                raise InvalidRequest(
                    f"a policy with id {policy_id!r} already exists", message_code="policy_id_not_unique"
                ) from None
            row = await cur.fetchone()
        assert row is not None
        return PolicyRecord(**row)

    async def update(
        self, policy_id: str, change: Callable[[PolicyRecord], Awaitable[dict[str, Any]]]
    ) -> PolicyRecord:
        """Replace the policy with ``await change(current)`` under a row lock."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM policies WHERE tenant = %s AND id = %s FOR UPDATE",
                [self._tenant.name, policy_id],
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound(f"policy {policy_id!r} does not exist")
            if row["file"] is not None:
                raise _read_only(PolicyRecord(**row))
            spec = await change(PolicyRecord(**row))
            await cur.execute(
                "UPDATE policies SET spec = %s, updated_at = clock_timestamp() WHERE tenant = %s AND id = %s"
                f" RETURNING {_COLUMNS}",
                [Jsonb(spec), self._tenant.name, policy_id],
            )
            updated = await cur.fetchone()
        assert updated is not None
        return PolicyRecord(**updated)

    async def delete(self, policy_id: str) -> None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM policies WHERE tenant = %s AND id = %s AND file IS NULL",
                [self._tenant.name, policy_id],
            )
        if not cur.rowcount:
            raise _read_only(await self.get(policy_id))  # NotFound when there is none at all


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """A policy read from ``<config_dir>/<file>``, validated like an API body."""

    tenant: str
    id: str
    file: str
    spec: dict[str, Any]


async def replace_policy_files(pool: AsyncConnectionPool, policies: Sequence[PolicyFile]) -> list[PolicyFile]:
    """Make the file-defined policies exactly ``policies``, in one transaction: new ones are inserted, changed
    ones updated (``updated_at`` moves only when the document changed), those whose file is gone deleted.
    Returns the ones refused because the tenant already has a policy with that id made through the API."""
    refused: list[PolicyFile] = []
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM policies p WHERE file IS NOT NULL AND NOT EXISTS ("
            " SELECT 1 FROM unnest(%s::text[], %s::text[]) AS k(tenant, id) WHERE k.tenant = p.tenant AND k.id = p.id)",
            [[p.tenant for p in policies], [p.id for p in policies]],
        )
        for policy in policies:
            cur = await conn.execute(
                "INSERT INTO policies (tenant, id, owner, file, spec) VALUES (%s, %s, NULL, %s, %s)"
                " ON CONFLICT (tenant, id) DO UPDATE SET file = EXCLUDED.file, spec = EXCLUDED.spec,"
                " updated_at = CASE WHEN policies.spec = EXCLUDED.spec THEN policies.updated_at"
                " ELSE clock_timestamp() END"
                " WHERE policies.file IS NOT NULL RETURNING id",
                [policy.tenant, policy.id, policy.file, Jsonb(policy.spec)],
            )
            if await cur.fetchone() is None:
                refused.append(policy)
    return refused


__all__ = ["PolicyFile", "PolicyRecord", "PolicyRepository", "replace_policy_files"]
