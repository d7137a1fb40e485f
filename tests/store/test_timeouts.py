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


def test_while_the_database_is_down_it_is_known_down_and_then_back(database_url: str, pg_server: str) -> None:
    """After a wait for a connection timed out, the database counts as down (requests then wait only the
    short ``outage_wait``, and health says for how long); the first connection had again clears it."""
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(database_url)["dbname"]

    def allow(on: bool) -> None:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {"true" if on else "false"}')
            if not on:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
                )

    async def scenario() -> None:
        database = await Database.open(database_url, timeout=1.0, outage_wait=0.2)
        try:
            assert database.down_for is None
            allow(False)
            try:
                for _ in range(20):  # broken idle connections fail first; then the pool cannot get a new one
                    with pytest.raises(psycopg.OperationalError):
                        await database.ping()
                    if database.down_for is not None:
                        break
                assert database.down_for is not None
            finally:
                allow(True)
            for _ in range(200):
                try:
                    await database.ping()
                    break
                except psycopg.OperationalError:
                    await asyncio.sleep(0.05)
            assert database.down_for is None
        finally:
            await database.close()

    asyncio.run(scenario())


def test_options_in_the_database_url_are_kept_beside_the_hubs(database_url: str) -> None:
    """``options`` given in DATABASE_URL (a search_path, say) hold on every pooled connection, and so do the hub's
    own settings, which a keyword argument alone would have put in their place."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    url = make_conninfo(
        **{**conninfo_to_dict(database_url), "options": "-c search_path=assay_elsewhere,public"}
    )

    async def scenario() -> None:
        database = await Database.open(url, statement_timeout=2.0)
        try:
            async with database.pool.connection() as conn:
                cursor = await conn.execute(
                    "SELECT current_setting('search_path'), current_setting('statement_timeout'),"
                    " current_setting('plan_cache_mode')"
                )
                assert await cursor.fetchone() == ("assay_elsewhere,public", "2s", "force_generic_plan")
        finally:
            await database.close()

    asyncio.run(scenario())
