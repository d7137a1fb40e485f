"""The outbox delivers at least once with backoff and leases; the inbox makes a redelivery a no-op;
an Idempotency-Key holds under concurrent submissions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg

from assay.core.events import OutboxEvent
from assay.store import Database, migrate
from assay.store.evaluations import insert_events

T = TypeVar("T")


def run(database_url: str, scenario: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        await migrate(database_url)
        database = await Database.open(database_url, max_size=12)
        try:
            return await scenario(database)
        finally:
            await database.close()

    return asyncio.run(main())


async def write(database: Database, *events: OutboxEvent) -> None:
    async with database.pool.connection() as conn:
        await insert_events(conn, events)


def event(n: int) -> OutboxEvent:
    return OutboxEvent(type="dev.assay.test.v1", source="/assay/t/test", data={"n": n}, partition_key="job")


def test_events_are_delivered_in_order_once_and_marked(database_url: str) -> None:
    async def scenario(database: Database) -> tuple[list[int], Any, Any]:
        await write(database, *(event(n) for n in range(5)))
        got: list[int] = []

        async def deliver(item: OutboxEvent) -> None:
            got.append(item.data["n"])

        first = await database.outbox.deliver_pending(deliver)
        second = await database.outbox.deliver_pending(deliver)
        return got, first, second

    got, first, second = run(database_url, scenario)
    assert got == [0, 1, 2, 3, 4]
    assert first.delivered == 5 and second.delivered == 0


def test_a_failing_delivery_stays_with_backoff_and_succeeds_later(database_url: str) -> None:
    async def scenario(database: Database) -> tuple[int, list[tuple[str, str, int, Any]], int]:
        await write(database, event(1))
        attempts = 0

        async def flaky(item: OutboxEvent) -> None:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise ConnectionError("broker away")

        failed = (await database.outbox.deliver_pending(flaky)).failed
        pending = await database.outbox.pending()
        # Not offered again before its backoff ends...
        assert (await database.outbox.deliver_pending(flaky)).delivered == 0
        async with database.pool.connection() as conn:
            await conn.execute("UPDATE outbox SET next_attempt_at = now()")
        delivered = (await database.outbox.deliver_pending(flaky)).delivered
        return failed, pending, delivered

    failed, pending, delivered = run(database_url, scenario)
    assert failed == 1 and len(pending) == 1 and pending[0][2] == 1  # one attempt recorded
    assert delivered == 1
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT published_at IS NOT NULL, last_error FROM outbox").fetchone()
    assert row == (True, None)


def test_concurrent_publishers_never_deliver_the_same_row_twice(database_url: str) -> None:
    async def scenario(database: Database) -> list[int]:
        await write(database, *(event(n) for n in range(30)))
        got: list[int] = []

        async def slow(item: OutboxEvent) -> None:
            await asyncio.sleep(0.01)
            got.append(item.data["n"])

        await asyncio.gather(*(database.outbox.deliver_pending(slow) for _ in range(4)))
        return got

    got = run(database_url, scenario)
    assert sorted(got) == list(range(30))


def test_the_inbox_turns_a_redelivered_event_into_a_no_op(database_url: str) -> None:
    async def scenario(database: Database) -> list[bool | None]:
        await database.pool.open()
        async with database.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO evaluations (id, tenant, name, request, plan, message)"
                " VALUES ('job', 't', 'n', '{}', '{\"benchmarks\": []}', '{}')"
            )
        seen: list[bool | None] = []

        @asynccontextmanager
        async def once(source: str, event_id: str) -> AsyncIterator[None]:
            async with database.evaluations.locked("job", inbox=("aggregate", source, event_id)) as unit:
                seen.append(None if unit is None else unit.duplicate)
                yield

        for source, event_id in [("/a", "1"), ("/a", "1"), ("/b", "1"), ("/a", "2"), ("/a", "1")]:
            async with once(source, event_id):
                pass
        return seen

    assert run(database_url, scenario) == [False, True, False, False, True]


def test_events_delivered_from_memory_are_marked_published_together(database_url: str) -> None:
    """``Publisher.deliver_soon``: each event goes out at once; the published marks of deliveries that finish
    close together are written in one statement, and ``drain`` waits until they are."""
    from assay.events.publisher import Publisher
    from assay.store import OutboxRepository

    class CountingOutbox(OutboxRepository):
        statements = 0

        async def mark_published(self, ids: Any) -> None:
            CountingOutbox.statements += 1
            await super().mark_published(ids)

    async def scenario(database: Database) -> tuple[list[int], list[tuple[str, str, int, Any]]]:
        events = [event(n) for n in range(12)]
        await write(database, *events)
        got: list[int] = []

        async def deliver(item: OutboxEvent) -> None:
            got.append(item.data["n"])

        publisher = Publisher(CountingOutbox(database.pool), deliver)
        for n in range(0, 12, 2):  # six commits of two events each, as six evaluations' changes
            publisher.deliver_soon(events[n : n + 2])
        await publisher.drain()
        return got, await database.outbox.pending()

    got, pending = run(database_url, scenario)
    assert sorted(got) == list(range(12))
    assert pending == []  # every one marked
    assert 1 <= CountingOutbox.statements < 6
