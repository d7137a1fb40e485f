"""The connection pool, versioned migrations, and the entry point to tenant-scoped repositories."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from assay.core import Tenant
from assay.core.jsontext import dumps, loads
from assay.store.catalogue import CatalogueMemory, CatalogueRepository, SystemCatalogueWriter
from assay.store.evaluations import EvaluationRepository, RecentJobs
from assay.store.outbox import OutboxRepository

log = logging.getLogger(__name__)

# Any constant unique to Assay: every replica that starts takes this lock before migrating.
_MIGRATION_LOCK = 0x4153_5341_5900_0001


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The SQL files under ``assay/store/migrations``, in version order (``NNNN_name.sql``)."""
    found: list[Migration] = []
    for entry in resources.files("assay.store").joinpath("migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer Assay than this one."""


async def migrate(url: str) -> list[int]:
    """Apply pending migrations, each in its own transaction, under an advisory lock.

    Safe when several replicas start at once: the lock serialises them and the second finds
    nothing left to do. Returns the versions this call applied.
    """
    known = migrations()
    applied_now: list[int] = []
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", [_MIGRATION_LOCK])
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            newest = max((m.version for m in known), default=0)
            if done and max(done) > newest:
                raise SchemaTooNew(
                    f"the database schema is at version {max(done)}, newer than this Assay knows ({newest})"
                )
            for migration in known:
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        [migration.version, migration.name],
                    )
                applied_now.append(migration.version)
                log.info("applied migration %04d_%s", migration.version, migration.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", [_MIGRATION_LOCK])
    return applied_now


class TenantStore:
    """Everything a request may touch, already bound to its tenant."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        tenant: Tenant,
        recent: RecentJobs | None = None,
        catalogue: CatalogueMemory | None = None,
    ) -> None:
        self.tenant = tenant
        self.providers = CatalogueRepository(pool, tenant, "providers", catalogue)
        self.collections = CatalogueRepository(pool, tenant, "collections", catalogue)
        self.evaluations = EvaluationRepository(pool, tenant, recent)


class _Pool(AsyncConnectionPool):
    """The pool, failing fast while the database is known to be down.

    Once a wait for a connection timed out, the database counts as down until a connection is had again:
    meanwhile a request waits ``outage_wait`` seconds, not the full ``timeout``, before it is answered 503.
    When it is back, idle connections (broken by the outage) are checked before they are handed out again.
    """

    outage_wait: float = 1.0
    down_since: float | None = None

    async def getconn(self, timeout: float | None = None) -> AsyncConnection[Any]:
        wait = self.timeout if timeout is None else timeout
        if self.down_since is not None:
            wait = min(wait, self.outage_wait)
        try:
            conn = await super().getconn(wait)
        except PoolTimeout:
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.error("the database is unreachable; requests are answered 503 until it is back")
            raise
        if self.down_since is not None:
            log.warning("the database is back after %.1f s", time.monotonic() - self.down_since)
            self.down_since = None
            self._checking = asyncio.get_running_loop().create_task(self.check())
        return conn


async def _configure(conn: AsyncConnection[Any]) -> None:
    """Each pooled connection writes and reads JSON (a job's request, plan and results, its runs, events' data)
    with :mod:`assay.core.jsontext`: psycopg's defaults, ``json.dumps`` and ``json.loads``, were about a third of
    the hub's JSON time. The values are the same (see there)."""
    set_json_dumps(dumps, conn)
    set_json_loads(loads, conn)


class Database:
    """The pool. Tenant data is reachable only through :meth:`scoped`, which demands a tenant."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.system_catalogue = SystemCatalogueWriter(pool)
        self.outbox = OutboxRepository(pool)
        # Event handlers and the sweep act on evaluations by id, across tenants (the event names it).
        self.recent_jobs = RecentJobs()
        # What submits last read of the catalogue, with its revision (checked where a job is created).
        self.catalogue_memory = CatalogueMemory()
        self.evaluations = EvaluationRepository(pool, None, self.recent_jobs)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
        outage_wait: float = 1.0,
        statement_timeout: float = 0.0,
        lock_timeout: float = 0.0,
    ) -> Database:
        """``statement_timeout`` and ``lock_timeout`` (seconds, 0: none) bound what one statement may take:
        a frozen database or a held row lock costs a request that long, then a 503 (retryable).

        Each connection plans a prepared statement once (``plan_cache_mode = force_generic_plan``). PostgreSQL's
        default plans a prepared statement's first five executions on a connection for their values, then
        settles on its generic plan, which is what the hub's statements all end on (they find rows by key): a
        fresh hub's four connections planned about 250 times in their first sixty evaluations, and a function
        started from zero plans most of what it runs. The one statement whose best plan depends on its values,
        a page of the job list, sets the default back for its transaction (:meth:`EvaluationRepository.list`)."""
        settings = {"plan_cache_mode": "force_generic_plan"}
        for name, seconds in (("statement_timeout", statement_timeout), ("lock_timeout", lock_timeout)):
            if seconds > 0:
                settings[name] = str(int(seconds * 1000))
        # After the URL's own options (a search_path, say), which a keyword argument would replace.
        given = conninfo_to_dict(url).get("options")
        ours = " ".join(f"-c {name}={value}" for name, value in settings.items())
        kwargs: dict[str, Any] = {"autocommit": True, "options": f"{given} {ours}" if given else ours}
        pool = _Pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            name="assay",
            kwargs=kwargs,
            configure=_configure,
        )
        pool.outage_wait = outage_wait
        await pool.open(wait=True, timeout=timeout)
        return cls(pool)

    @property
    def down_for(self) -> float | None:
        """Seconds since the database was found unreachable; None while it answers."""
        since = getattr(self.pool, "down_since", None)
        return None if since is None else time.monotonic() - since

    async def close(self) -> None:
        await self.pool.close()

    def scoped(self, tenant: Tenant) -> TenantStore:
        return TenantStore(self.pool, tenant, self.recent_jobs, self.catalogue_memory)

    async def ping(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1")


__all__ = ["Database", "Migration", "SchemaTooNew", "TenantStore", "migrate", "migrations"]
