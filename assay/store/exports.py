"""The exports of finished evaluations (MLflow, OCI) in Postgres: one row per export with its status,
attempts, error and what it created remotely, claimed with a lease so one exporter works on it at a time,
and mirrored into the job's results in the same transaction as every status change."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

ExportStatus = Literal["pending", "running", "done", "failed", "abandoned"]


@dataclass(frozen=True, slots=True)
class ExportRow:
    evaluation_id: str
    name: str
    status: ExportStatus
    attempts: int
    last_error: str | None
    result: dict[str, Any]
    card: dict[str, Any]
    finished_at: datetime
    next_attempt_at: datetime
    updated_at: datetime


def _row(values: Mapping[str, Any]) -> ExportRow:
    return ExportRow(
        evaluation_id=values["evaluation_id"],
        name=values["name"],
        status=values["status"],
        attempts=values["attempts"],
        last_error=values["last_error"],
        result=values["result"],
        card=values["card"],
        finished_at=values["finished_at"],
        next_attempt_at=values["next_attempt_at"],
        updated_at=values["updated_at"],
    )


def _merged(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, one level deep for nested objects (``artifacts`` keeps the adapter's keys)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


# The row as one claim left it: same attempt of the same finish, still running under that claim.
_CLAIMED = "evaluation_id = %s AND name = %s AND status = 'running' AND attempts = %s AND finished_at = %s"


def _claim_key(claimed: ExportRow) -> list[Any]:
    return [claimed.evaluation_id, claimed.name, claimed.attempts, claimed.finished_at]


Summarize = Callable[[Sequence[ExportRow]], Mapping[str, Any]]
"""Turns an evaluation's export rows into the fields its ``results`` show (under the job's lock)."""


class ExportRepository:
    """Exports across tenants: the aggregate handler and the sweep act on them by evaluation id."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def plan(
        self,
        evaluation_id: str,
        names: Sequence[str],
        finished_at: datetime,
        card: Mapping[str, Any],
        summarize: Summarize,
    ) -> list[ExportRow]:
        """Make sure a row exists for each of ``names`` for this finish of the job, carrying its ``card``; a row
        left from an earlier finish (the job was retried since) starts over with the new card, keeping what it
        created (run ids are reused). Returns every export row of the evaluation."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT results FROM evaluations WHERE id = %s FOR UPDATE", [evaluation_id])
            job = await cur.fetchone()
            if job is None:
                return []
            changed = 0
            for name in names:
                done = await conn.execute(
                    "INSERT INTO exports (evaluation_id, name, finished_at, card) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (evaluation_id, name) DO UPDATE SET status = 'pending', attempts = 0,"
                    " last_error = NULL, finished_at = EXCLUDED.finished_at, card = EXCLUDED.card,"
                    " next_attempt_at = now(), lease_until = NULL, updated_at = now()"
                    " WHERE exports.finished_at < EXCLUDED.finished_at",  # forward only: a stale plan changes nothing
                    [evaluation_id, name, finished_at, Jsonb(dict(card))],
                )
                changed += done.rowcount
            rows = await self._rows(cur, evaluation_id)
            if changed:
                await self._mirror(conn, evaluation_id, job["results"], summarize(rows), {})
            return rows

    async def claim(
        self, evaluation_id: str, name: str, now: datetime, lease_seconds: float
    ) -> ExportRow | None:
        """Take the export for one attempt when it is due (or its last claim expired); None: not ours now."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "UPDATE exports SET status = 'running', attempts = attempts + 1, lease_until = %s,"
                " updated_at = now() WHERE evaluation_id = %s AND name = %s AND ("
                " (status IN ('pending', 'failed') AND next_attempt_at <= greatest(%s, now()))"
                " OR (status = 'running' AND lease_until < %s)) RETURNING *",
                [now + timedelta(seconds=lease_seconds), evaluation_id, name, now, now],
            )
            found = await cur.fetchone()
            return _row(found) if found is not None else None

    async def remember(self, claimed: ExportRow, result: Mapping[str, Any]) -> None:
        """Record something the export just created (a run id) before doing more: a retry reuses it."""
        async with self._pool.connection() as conn:
            await conn.execute(
                f"UPDATE exports SET result = result || %s, updated_at = now() WHERE {_CLAIMED}",
                [Jsonb(dict(result)), *_claim_key(claimed)],
            )

    async def settle(
        self,
        claimed: ExportRow,
        *,
        status: ExportStatus,
        error: str | None,
        next_attempt_at: datetime | None,
        result: Mapping[str, Any],
        summarize: Summarize,
        benchmark_results: Mapping[int, Mapping[str, Any]] | None = None,
        experiment_id: str | None = None,
    ) -> None:
        """End an attempt and show it in the job, atomically: the row's status, error and result; the job's
        ``results`` (through ``summarize``); ``benchmark_results`` merged into those runs' results. Nothing
        happens when the claim is no longer this attempt's (its lease expired and another worker took it, or
        the job finished again since): a superseded attempt must not overwrite what its successor records."""
        evaluation_id = claimed.evaluation_id
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT results FROM evaluations WHERE id = %s FOR UPDATE", [evaluation_id])
            job = await cur.fetchone()
            if job is None:
                return  # hard-deleted meanwhile: its exports went with it
            updated = await conn.execute(
                "UPDATE exports SET status = %s, last_error = %s, result = result || %s, lease_until = NULL,"
                f" next_attempt_at = coalesce(%s, next_attempt_at), updated_at = now() WHERE {_CLAIMED}",
                [status, error, Jsonb(dict(result)), next_attempt_at, *_claim_key(claimed)],
            )
            if not updated.rowcount:
                return
            rows = await self._rows(cur, evaluation_id)
            await self._mirror(conn, evaluation_id, job["results"], summarize(rows), benchmark_results or {})
            if experiment_id is not None:
                await conn.execute(
                    "UPDATE evaluations SET experiment_id = %s WHERE id = %s", [experiment_id, evaluation_id]
                )

    async def rows(self, evaluation_id: str) -> list[ExportRow]:
        async with self._pool.connection() as conn:
            return await self._rows(conn.cursor(row_factory=dict_row), evaluation_id)

    async def due(self, now: datetime, limit: int = 100) -> list[str]:
        """Evaluations with an export to (re)try now: pending or failed and due, or running past its lease."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT evaluation_id FROM exports"
                " WHERE (status IN ('pending', 'failed') AND next_attempt_at <= greatest(%s, now()))"
                " OR (status = 'running' AND lease_until < %s)"
                " GROUP BY evaluation_id ORDER BY min(next_attempt_at) LIMIT %s",
                [now, now, limit],
            )
            return [row[0] for row in await cur.fetchall()]

    @staticmethod
    async def _rows(cur: Any, evaluation_id: str) -> list[ExportRow]:
        await cur.execute("SELECT * FROM exports WHERE evaluation_id = %s ORDER BY name", [evaluation_id])
        return [_row(r) for r in await cur.fetchall()]

    @staticmethod
    async def _mirror(
        conn: Any,
        evaluation_id: str,
        results: Mapping[str, Any],
        fields: Mapping[str, Any],
        benchmark_results: Mapping[int, Mapping[str, Any]],
    ) -> None:
        # Under the job's row lock, as every change to the job is: nothing written meanwhile is lost.
        await conn.execute(
            "UPDATE evaluations SET results = %s, updated_at = now(), version = version + 1 WHERE id = %s",
            [Jsonb({**results, **fields}), evaluation_id],
        )
        if not benchmark_results:
            return
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT idx, result FROM benchmark_runs WHERE evaluation_id = %s AND idx = ANY(%s)",
            [evaluation_id, list(benchmark_results)],
        )
        for run in await cur.fetchall():
            await conn.execute(
                "UPDATE benchmark_runs SET result = %s, updated_at = now() WHERE evaluation_id = %s AND idx = %s",
                [Jsonb(_merged(run["result"], benchmark_results[run["idx"]])), evaluation_id, run["idx"]],
            )


__all__ = ["ExportRepository", "ExportRow", "ExportStatus", "Summarize"]
