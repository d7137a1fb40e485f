"""Dead letters: CloudEvents the Knative broker could not deliver, kept in Postgres for operators.

Recorded by the dead-letter sink route (``assay.http.deadletters``), one row per event ``(source, id)``:
a redelivery changes nothing, and the same event dead-lettered from a second subscriber only adds that
subscriber to ``destinations``. Listed per tenant, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered CloudEvent as received: its identity, Knative's error extensions, the rest."""

    source: str
    id: str
    type: str
    attributes: dict[str, Any]
    subject: str | None = None
    tenant: str | None = None
    evaluation_id: str | None = None
    error_dest: str | None = None
    error_code: int | None = None
    error_data: str | None = None
    data: Any = None
    data_base64: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """A stored dead letter: what was received first, every destination it failed at, and when."""

    letter: DeadLetter
    destinations: tuple[str, ...]
    received_at: datetime


def _record(row: dict[str, Any]) -> DeadLetterRecord:
    letter = DeadLetter(
        source=row["source"],
        id=row["id"],
        type=row["type"],
        attributes=row["attributes"],
        subject=row["subject"],
        tenant=row["tenant"],
        evaluation_id=row["evaluation_id"],
        error_dest=row["error_dest"],
        error_code=row["error_code"],
        error_data=row["error_data"],
        data=row["data"],
        data_base64=row["data_base64"],
    )
    return DeadLetterRecord(letter, tuple(row["destinations"]), row["received_at"])


_COLUMNS = (
    "source, id, type, subject, tenant, evaluation_id, error_dest, error_code, error_data,"
    " destinations, attributes, data, data_base64, received_at"
)


class DeadLetterRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def record(self, letter: DeadLetter) -> tuple[DeadLetterRecord, bool]:
        """Store ``letter`` unless ``(source, id)`` is known; returns the stored row and whether it is new.

        A known event gains ``letter.error_dest`` in ``destinations`` when that subscriber is new to it;
        otherwise nothing is written. The commit is durable: it may be the only trace of a lost event.
        """
        destinations = [letter.error_dest] if letter.error_dest else []
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "INSERT INTO dead_letters (source, id, type, subject, tenant, evaluation_id, error_dest,"
                " error_code, error_data, destinations, attributes, data, data_base64)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (source, id) DO UPDATE"
                " SET destinations = dead_letters.destinations || EXCLUDED.error_dest"
                " WHERE EXCLUDED.error_dest IS NOT NULL"
                " AND NOT (EXCLUDED.error_dest = ANY (dead_letters.destinations))"
                f" RETURNING {_COLUMNS}, (xmax = 0) AS inserted",
                [
                    letter.source,
                    letter.id,
                    letter.type,
                    letter.subject,
                    letter.tenant,
                    letter.evaluation_id,
                    letter.error_dest,
                    letter.error_code,
                    letter.error_data,
                    destinations,
                    Jsonb(letter.attributes),
                    Jsonb(letter.data) if letter.data is not None else None,
                    letter.data_base64,
                ],
            )
            row = await cur.fetchone()
            if row is None:  # a duplicate from a known destination: nothing was written
                await cur.execute(
                    f"SELECT {_COLUMNS} FROM dead_letters WHERE source = %s AND id = %s",
                    [letter.source, letter.id],
                )
                row = await cur.fetchone()
                assert row is not None  # the conflict says it exists, and nothing deletes dead letters
                return _record(row), False
            return _record(row), bool(row["inserted"])

    async def list(
        self,
        tenant: str,
        *,
        evaluation_id: str | None = None,
        event_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[DeadLetterRecord], int]:
        """The tenant's dead letters, newest first (optionally of one evaluation or one type), and their count."""
        # Only the filters given (not "%s IS NULL OR ..."): the pool plans statements generically (Database.open),
        # and a generic plan of an optional filter cannot use the evaluation's index.
        where = " WHERE tenant = %s"
        params = [tenant]
        for column, value in (("evaluation_id", evaluation_id), ("type", event_type)):
            if value is not None:
                where += f" AND {column} = %s"
                params.append(value)
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM dead_letters{where} ORDER BY received_at DESC, seq DESC"
                " LIMIT %s OFFSET %s",
                [*params, limit, offset],
            )
            rows = await cur.fetchall()
            await cur.execute(f"SELECT count(*) AS total FROM dead_letters{where}", params)
            counted = await cur.fetchone()
        total = int(counted["total"]) if counted is not None else 0
        return [_record(r) for r in rows], total


__all__ = ["DeadLetter", "DeadLetterRecord", "DeadLetterRepository"]
