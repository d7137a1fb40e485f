"""The transactional outbox: events written with the change they announce, delivered afterwards.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so concurrent publishers (replicas, the sweep)
never deliver the same row at the same time; a failed delivery is retried with capped backoff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from assay.core.events import OutboxEvent


@dataclass(frozen=True, slots=True)
class OutboxStats:
    delivered: int
    failed: int


def _event(row: dict[str, Any]) -> OutboxEvent:
    return OutboxEvent(
        id=row["id"],
        type=row["type"],
        source=row["source"],
        subject=row["subject"],
        partition_key=row["partition_key"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        data=row["data"],
        traceparent=row.get("traceparent"),
        tracestate=row.get("tracestate"),
    )


# A claimed row is not offered again for this long; if its deliverer died, it is redelivered after.
_LEASE_SECONDS = 60.0

# mark_published's one statement (params: the ids).
_MARK_PUBLISHED = (
    "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true))"
    " UPDATE outbox SET published_at = now(), attempts = attempts + 1"
    " FROM relaxed WHERE id = ANY(%s) AND published_at IS NULL"
)


class OutboxRepository:
    def __init__(self, pool: AsyncConnectionPool, *, backoff_max_seconds: float = 300.0) -> None:
        self._pool = pool
        self._backoff_max = backoff_max_seconds

    async def deliver_pending(
        self,
        deliver: Callable[[OutboxEvent], Awaitable[None]],
        *,
        ids: Sequence[str] | None = None,
        older_than_seconds: float = 0.0,
        limit: int = 100,
    ) -> OutboxStats:
        """Deliver up to ``limit`` undelivered events (only ``ids`` if given), oldest first.

        Each row is claimed with a lease, delivered, then marked; a failed delivery is retried with
        capped exponential backoff, and a deliverer that dies leaves the row to be redelivered once
        its lease ends. Delivery is therefore at least once, and handlers are idempotent.
        """
        delivered = failed = 0
        wanted = list(ids) if ids is not None else None
        if wanted is not None:
            limit = min(limit, len(wanted))  # no extra claim that can only come back empty
        for _ in range(limit):
            # Claim with a lease in one statement and let the connection go before delivering: a
            # handler needs connections of its own, and many deliveries may run at once.
            async with self._pool.connection() as conn:
                cur = conn.cursor(row_factory=dict_row)
                # The ids' filter only when given (the pool plans generically, Database.open: an optional
                # filter's generic plan would walk every undelivered event instead of looking the ids up).
                await cur.execute(
                    "UPDATE outbox SET attempts = attempts + 1,"
                    " next_attempt_at = now() + make_interval(secs => %s)"
                    " WHERE id = (SELECT id FROM outbox WHERE published_at IS NULL AND next_attempt_at <= now()"
                    " AND created_at <= now() - make_interval(secs => %s)"
                    + (" AND id = ANY(%s::text[])" if wanted is not None else "")
                    + " ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *",
                    [_LEASE_SECONDS, older_than_seconds, *([wanted] if wanted is not None else [])],
                )
                row = await cur.fetchone()
            if row is None:
                break
            try:
                await deliver(_event(row))
            except Exception as exc:  # any failure: keep the row, try again later
                failed += 1
                delay = min(self._backoff_max, 0.5 * 2 ** min(row["attempts"] - 1, 20))
                async with self._pool.connection() as conn:
                    await conn.execute(
                        "UPDATE outbox SET last_error = %s, next_attempt_at = now() + make_interval(secs => %s)"
                        " WHERE id = %s",
                        [f"{type(exc).__name__}: {exc}"[:2000], delay, row["id"]],
                    )
                continue
            delivered += 1
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE outbox SET published_at = now(), last_error = NULL WHERE id = %s", [row["id"]]
                )
        return OutboxStats(delivered, failed)

    async def mark_published(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        # Not durable: a mark lost in a machine crash means one more (idempotent) delivery. One statement, its
        # own transaction, whose commit the joined row makes asynchronous (set_config(..., true) is SET LOCAL;
        # a volatile WITH runs once, and before any row is written, since every written row joins it).
        async with self._pool.connection() as conn:
            await conn.execute(_MARK_PUBLISHED, [list(ids)], prepare=True)

    async def pending(self) -> list[tuple[str, str, int, datetime]]:
        """(id, type, attempts, created_at) of every undelivered event, for operators and tests."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, type, attempts, created_at FROM outbox WHERE published_at IS NULL ORDER BY seq"
            )
            return [(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]

    async def has_pending_for(self, evaluation_id: str) -> bool:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM outbox WHERE published_at IS NULL AND partition_key = %s LIMIT 1",
                [evaluation_id],
            )
            return await cur.fetchone() is not None

    async def prune(self, older_than_days: float = 7.0) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "DELETE FROM outbox WHERE published_at < now() - %s * interval '1 day'", [older_than_days]
            )
            cur2 = await conn.execute(
                "DELETE FROM inbox WHERE processed_at < now() - %s * interval '1 day'", [older_than_days]
            )
            return cur.rowcount + cur2.rowcount


__all__ = ["OutboxRepository", "OutboxStats"]
