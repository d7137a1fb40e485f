"""Catalogue rows as submit plans with them: ``get_many`` finds every visible row by id in one statement."""

from __future__ import annotations

import asyncio

from psycopg.types.json import Jsonb

from assay.core import Tenant
from assay.store import Database, migrate
from assay.store.catalogue import CatalogueRecord, CatalogueRepository


def test_get_many_finds_each_visible_row_and_a_tenants_own_row_wins(database_url: str) -> None:
    async def scenario() -> tuple[dict[str, CatalogueRecord], dict[str, CatalogueRecord]]:
        await migrate(database_url)
        database = await Database.open(database_url)
        try:
            async with database.pool.connection() as conn:
                rows = [
                    (None, "shared", "system"),  # a system row ...
                    ("team-a", "shared", "alice"),  # ... shadowed by team-a's own row of the same id
                    (None, "system-only", "system"),
                    ("team-a", "mine", "alice"),
                    ("team-b", "theirs", "bob"),  # another tenant's: never visible to team-a
                ]
                for tenant, row_id, owner in rows:
                    await conn.execute(
                        "INSERT INTO providers (tenant, id, owner, spec) VALUES (%s, %s, %s, %s)",
                        [tenant, row_id, owner, Jsonb({"id": row_id, "name": f"{row_id} of {owner}"})],
                    )
            team_a = CatalogueRepository(database.pool, Tenant("team-a"), "providers")
            wanted = ["shared", "system-only", "mine", "theirs", "missing", "mine"]
            return await team_a.get_many(wanted), await team_a.get_many([])
        finally:
            await database.close()

    found, none = asyncio.run(scenario())
    assert sorted(found) == ["mine", "shared", "system-only"]
    assert found["shared"].spec["name"] == "shared of alice"  # the tenant's row, not the system one
    assert found["system-only"].system and not found["mine"].system
    assert none == {}
