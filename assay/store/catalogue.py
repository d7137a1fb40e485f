"""Providers and collections in Postgres: one repository shape for both tables, always tenant-bound.

A tenant sees its own rows plus the system rows (``tenant IS NULL``, loaded from YAML) and can
change only its own. There is no way to build a repository without a :class:`Tenant`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from psycopg import AsyncConnection, errors, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from assay.core import Tenant
from assay.errors import InvalidRequest, NotFound, ReadOnly

T = TypeVar("T")
Table = Literal["providers", "collections"]
Sort = Literal["created_at", "-created_at", "name", "-name"]
Groups = tuple[tuple[str, ...], ...]
"""A list filter: AND of groups, each an OR of values (``a|b,c`` -> ((a, b), (c,)))."""

_ORDER = {
    "created_at": sql.SQL("created_at ASC, seq ASC"),
    "-created_at": sql.SQL("created_at DESC, seq DESC"),
    "name": sql.SQL("spec->>'name' ASC, created_at ASC, seq ASC"),
    "-name": sql.SQL("spec->>'name' DESC, created_at DESC, seq DESC"),
}
_COLUMNS = sql.SQL("id, tenant, owner, spec, derived_from, created_at, updated_at")


@dataclass(frozen=True, slots=True)
class CatalogueRecord:
    id: str
    tenant: str | None
    owner: str | None
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    derived_from: str | None = None

    @property
    def system(self) -> bool:
        return self.tenant is None


@dataclass(frozen=True, slots=True)
class CatalogueQuery:
    """What a list request asks for; every value travels as a bound parameter."""

    name: Groups = ()
    category: Groups = ()
    tags: Groups = ()
    owner: Groups = ()
    scope: Literal["system", "tenant"] | None = None
    ids: tuple[str, ...] | None = None
    sort: Sort = "created_at"
    limit: int = 50
    offset: int = 0


@dataclass(slots=True)
class _Where:
    parts: list[sql.Composable] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.parts.append(sql.SQL(clause))
        self.params.extend(params)

    def sql(self) -> sql.Composable:
        return sql.SQL(" AND ").join(self.parts)


def _record(row: dict[str, Any]) -> CatalogueRecord:
    return CatalogueRecord(**row)


@dataclass(frozen=True, slots=True)
class CatalogueView:
    """The rows a tenant sees with some ids (its own row winning over a system row with the same id), and the
    catalogue's revision they were read at (``catalogue_revision``, moved by every write of either table)."""

    revision: int
    records: Mapping[str, CatalogueRecord]
    _parsed: dict[tuple[str, object], Any] = field(default_factory=dict, compare=False, repr=False)

    def parsed(self, resource_id: str, parse: Callable[[dict[str, Any]], T]) -> T:
        """``parse`` of the record's spec, once per view and parser: a remembered view serves every submit that
        names the same ids until the catalogue changes, and validating a provider of forty benchmarks costs about
        0.2 ms. What it returns is shared by those submits, so it must be read, never changed."""
        key = (resource_id, parse)
        if key not in self._parsed:
            self._parsed[key] = parse(self.records[resource_id].spec)
        return cast(T, self._parsed[key])


class CatalogueChanged(Exception):
    """The catalogue moved after the revision a statement named (``catalogue_unchanged``, SQLSTATE AS001): what
    was decided from a remembered view must be decided again from a fresh read."""

    SQLSTATE = "AS001"


class CatalogueMemory:
    """The views this process last read for submits, by (table, tenant, ids), the 256 most recent. Any of them may
    be behind the database (another process may have changed the catalogue since): whoever plans from one names
    its revision to the statement that commits the plan, which refuses if the catalogue moved (see
    :meth:`CatalogueRepository.view`)."""

    def __init__(self, size: int = 256) -> None:
        self._views: OrderedDict[tuple[str, str, tuple[str, ...]], CatalogueView] = OrderedDict()
        self._size = size

    def get(self, key: tuple[str, str, tuple[str, ...]]) -> CatalogueView | None:
        view = self._views.get(key)
        if view is not None:
            self._views.move_to_end(key)
        return view

    def put(self, key: tuple[str, str, tuple[str, ...]], view: CatalogueView) -> None:
        self._views[key] = view
        self._views.move_to_end(key)
        while len(self._views) > self._size:
            self._views.popitem(last=False)

    def clear(self) -> None:
        """Forget every view: the catalogue changed (this process changed it, or a statement said so)."""
        self._views.clear()


def _prefer_tenant(records: Sequence[CatalogueRecord]) -> dict[str, CatalogueRecord]:
    found: dict[str, CatalogueRecord] = {}
    for record in records:  # a tenant's own row wins over a system row with the same id
        if record.id not in found or found[record.id].system:
            found[record.id] = record
    return found


class CatalogueRepository:
    def __init__(
        self, pool: AsyncConnectionPool, tenant: Tenant, table: Table, memory: CatalogueMemory | None = None
    ) -> None:
        self._pool = pool
        self._tenant = tenant
        self._table_name = table
        self._table = sql.Identifier(table)
        self._memory = memory
        self.kind = table.removesuffix("s")

    def _visible(self) -> _Where:
        where = _Where()
        where.add("(tenant = %s OR tenant IS NULL)", self._tenant.name)
        return where

    async def list(self, query: CatalogueQuery) -> tuple[list[CatalogueRecord], int]:
        where = self._visible()
        for column, groups in (
            ("spec->>'name'", query.name),
            ("spec->>'category'", query.category),
            ("owner", query.owner),
        ):
            for group in groups:
                where.add(f"{column} = ANY(%s)", list(group))
        for group in query.tags:
            where.add("spec->'tags' ?| %s", list(group))
        if query.scope == "system":
            where.add("tenant IS NULL")
        elif query.scope == "tenant":
            where.add("tenant IS NOT NULL")
        if query.ids is not None:
            where.add("id = ANY(%s)", list(query.ids))
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                sql.SQL("SELECT count(*) AS n FROM {} WHERE {}").format(self._table, where.sql()),
                where.params,
            )
            total = int((await cur.fetchone() or {"n": 0})["n"])
            await cur.execute(
                sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %s OFFSET %s").format(
                    _COLUMNS, self._table, where.sql(), _ORDER[query.sort]
                ),
                [*where.params, query.limit, query.offset],
            )
            rows = await cur.fetchall()
        return [_record(r) for r in rows], total

    async def get(self, resource_id: str) -> CatalogueRecord:
        """The tenant's row with this id, else the system row; :class:`NotFound` when neither exists."""
        async with self._pool.connection() as conn:
            record = await self._fetch(conn, resource_id, lock=False)
        if record is None:
            raise NotFound(f"{self.kind} {resource_id!r} does not exist")
        return record

    async def get_many(self, ids: Sequence[str]) -> dict[str, CatalogueRecord]:
        """The visible rows with these ids, read now (:meth:`view`'s one statement, no count, no page); a copy, so
        what the caller does with it never reaches the memory the read also fills."""
        return dict((await self.view(ids, remembered=False)).records)

    async def view(self, ids: Sequence[str], *, remembered: bool) -> CatalogueView:
        """The visible rows with these ids and the revision they were read at, in one statement. With
        ``remembered``, the view this process last read for the same tenant and ids, if it has one: it may be
        behind the database, so what is decided from it must be committed by a statement that checks its revision
        (``catalogue_unchanged``; :meth:`~assay.store.evaluations.EvaluationRepository.create` does)."""
        key = (self._table_name, self._tenant.name, tuple(sorted(set(ids))))
        if remembered and self._memory is not None:
            known = self._memory.get(key)
            if known is not None:
                return known
        where = self._visible()
        where.add("id = ANY(%s)", list(key[2]))
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                sql.SQL(
                    "SELECT r.revision, c.* FROM catalogue_revision r LEFT JOIN LATERAL (SELECT {} FROM {} WHERE {}) c"
                    " ON true"
                ).format(_COLUMNS, self._table, where.sql()),
                where.params,
            )
            rows = await cur.fetchall()
        revision = int(rows[0].pop("revision"))
        for row in rows[1:]:
            del row["revision"]
        view = CatalogueView(revision, _prefer_tenant([_record(r) for r in rows if r["id"] is not None]))
        if self._memory is not None:
            self._memory.put(key, view)
        return view

    def _changed(self) -> None:
        if self._memory is not None:
            self._memory.clear()  # not needed for correctness (the revision is checked), but a view is certainly old

    async def _fetch(
        self, conn: AsyncConnection[Any], resource_id: str, *, lock: bool
    ) -> CatalogueRecord | None:
        where = self._visible()
        where.add("id = %s", resource_id)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY tenant NULLS LAST LIMIT 1 {}").format(
                _COLUMNS, self._table, where.sql(), sql.SQL("FOR UPDATE" if lock else "")
            ),
            where.params,
        )
        row = await cur.fetchone()
        return _record(row) if row else None

    async def create(
        self, resource_id: str, owner: str | None, spec: dict[str, Any], *, derived_from: str | None = None
    ) -> CatalogueRecord:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            try:
                await cur.execute(
                    sql.SQL(
                        "INSERT INTO {t} (tenant, id, owner, spec, derived_from)"
                        " SELECT %s, %s, %s, %s, %s"
                        " WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE id = %s AND tenant IS NULL)"
                        " RETURNING {cols}"
                    ).format(t=self._table, cols=_COLUMNS),
                    [self._tenant.name, resource_id, owner, Jsonb(spec), derived_from, resource_id],
                )
                row = await cur.fetchone()
            except errors.UniqueViolation:
                row = None
        if row is None:
            raise InvalidRequest(
                f"a {self.kind} with id {resource_id!r} already exists",
                message_code=f"{self.kind}_id_not_unique",
            )
        self._changed()
        return _record(row)

    async def update(
        self, resource_id: str, change: Callable[[CatalogueRecord], Awaitable[dict[str, Any]]]
    ) -> CatalogueRecord:
        """Replace the tenant's row with ``await change(current)``, holding a row lock meanwhile."""
        async with self._pool.connection() as conn, conn.transaction():
            current = await self._fetch(conn, resource_id, lock=True)
            if current is None:
                raise NotFound(f"{self.kind} {resource_id!r} does not exist")
            if current.system:
                raise self._read_only(resource_id)
            spec = await change(current)
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                sql.SQL(
                    "UPDATE {} SET spec = %s, updated_at = clock_timestamp()"
                    " WHERE tenant = %s AND id = %s RETURNING {}"
                ).format(self._table, _COLUMNS),
                [Jsonb(spec), self._tenant.name, resource_id],
            )
            row = await cur.fetchone()
        assert row is not None  # locked above
        self._changed()
        return _record(row)

    async def delete(self, resource_id: str) -> None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL("DELETE FROM {} WHERE tenant = %s AND id = %s").format(self._table),
                [self._tenant.name, resource_id],
            )
            if cur.rowcount:
                self._changed()
                return
            existing = await self._fetch(conn, resource_id, lock=False)
        if existing is not None and existing.system:
            raise self._read_only(resource_id)
        raise NotFound(f"{self.kind} {resource_id!r} does not exist")

    def _read_only(self, resource_id: str) -> ReadOnly:
        return ReadOnly(
            f"{self.kind} {resource_id!r} is a system {self.kind} and cannot be changed; clone it instead"
            if self.kind == "collection"
            else f"{self.kind} {resource_id!r} is a system {self.kind} and cannot be changed",
            message_code=f"read_only_{self.kind}",
        )


class SystemCatalogueWriter:
    """Replaces the system rows (``tenant IS NULL``) with what the YAML files say, in one transaction."""

    _LOCK = 0x4153_5341_5900_0002

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def fingerprint(self) -> str | None:
        """The fingerprint of the files the system rows were last loaded from."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT fingerprint FROM system_catalogue_state WHERE singleton")
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def replace(
        self,
        providers: Sequence[tuple[str, dict[str, Any]]],
        collections: Sequence[tuple[str, dict[str, Any]]],
        fingerprint: str,
    ) -> dict[str, int]:
        """Upsert changed rows, delete rows whose file is gone; unchanged rows keep their timestamps."""
        counts: dict[str, int] = {}
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", [self._LOCK])
            for table, items in (("providers", providers), ("collections", collections)):
                ident = sql.Identifier(table)
                for resource_id, spec in items:
                    await conn.execute(
                        sql.SQL(
                            "INSERT INTO {t} AS cur (tenant, id, owner, spec) VALUES (NULL, %s, 'system', %s)"
                            " ON CONFLICT ((COALESCE(tenant, '')), id) DO UPDATE"
                            " SET spec = EXCLUDED.spec, updated_at = clock_timestamp()"
                            " WHERE cur.spec IS DISTINCT FROM EXCLUDED.spec"
                        ).format(t=ident),
                        [resource_id, Jsonb(spec)],
                    )
                await conn.execute(
                    sql.SQL("DELETE FROM {} WHERE tenant IS NULL AND NOT (id = ANY(%s))").format(ident),
                    [[resource_id for resource_id, _ in items]],
                )
                counts[table] = len(items)
            await conn.execute(
                "INSERT INTO system_catalogue_state (singleton, fingerprint) VALUES (true, %s)"
                " ON CONFLICT (singleton) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, loaded_at = now()",
                [fingerprint],
            )
        return counts


__all__ = [
    "CatalogueQuery",
    "CatalogueRecord",
    "CatalogueRepository",
    "Groups",
    "Sort",
    "SystemCatalogueWriter",
]
