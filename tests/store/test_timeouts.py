"""Statement and lock timeouts on the hub's connections: a held row lock or a frozen statement costs a change
that long, then a retryable error (503), instead of holding the request for as long as the holder likes."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from assay.store import Database


def test_a_held_job_lock_and_a_long_statement_end_in_a_retryable_error(database_url: str) -> None:
    async def scenario() -> None:
        database = await Database.open(database_url, statement_timeout=1.0, lock_timeout=0.3)
        try:
            async with database.pool.connection() as conn:
                await conn.execute("CREATE TABLE held (id text PRIMARY KEY)")
                await conn.execute("INSERT INTO held VALUES ('job')")
            with psycopg.connect(database_url) as holder:  # another client holds the row lock
                holder.execute("SELECT * FROM held WHERE id = 'job' FOR UPDATE")
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    async with database.pool.connection() as conn:
                        await conn.execute("SELECT * FROM held WHERE id = 'job' FOR UPDATE")
                holder.rollback()
            with pytest.raises(psycopg.errors.QueryCanceled):
                async with database.pool.connection() as conn:
                    await conn.execute("SELECT pg_sleep(5)")
            # Both are OperationalErrors: the edge answers 503 and the broker or the sidecar retries.
            assert issubclass(psycopg.errors.LockNotAvailable, psycopg.OperationalError)
            assert issubclass(psycopg.errors.QueryCanceled, psycopg.OperationalError)
        finally:
            await database.close()

    asyncio.run(scenario())
