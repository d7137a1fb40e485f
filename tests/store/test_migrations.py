"""Versioned migrations: applied once, safe when several replicas start together, refused when newer."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from assay.store import SchemaTooNew, migrate, migrations


def test_replicas_starting_together_apply_each_migration_once(database_url: str) -> None:
    async def start_replicas() -> list[list[int]]:
        return await asyncio.gather(*(migrate(database_url) for _ in range(5)))

    applied = asyncio.run(start_replicas())
    versions = [m.version for m in migrations()]
    assert sorted(v for run in applied for v in run) == versions  # exactly one replica applied each
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == versions
    assert asyncio.run(migrate(database_url)) == []  # a restart has nothing to do


def test_a_newer_schema_is_refused(database_url: str) -> None:
    asyncio.run(migrate(database_url))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')")
    with pytest.raises(SchemaTooNew, match="9999"):
        asyncio.run(migrate(database_url))
