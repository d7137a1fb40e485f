"""Evaluation jobs and their benchmark runs in Postgres, each change serialised on the job's row (under its row
lock, or written only if the job is still at the version it was read at) and committed with the outbox events
that announce it, and de-duplicated through the inbox."""

from __future__ import annotations

import contextlib
import functools
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, TypeVar

from psycopg import AsyncConnection, AsyncCursor, Error, sql
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from assay.core import Tenant
from assay.core.events import OutboxEvent
from assay.core.plan import Plan
from assay.core.states import BenchmarkRun
from assay.errors import Conflict, NotFound
from assay.store.catalogue import CatalogueChanged, Groups

T = TypeVar("T")

_RUN_FIELDS = (
    "status",
    "attempt",
    "phase",
    "progress",
    "current_step",
    "total_steps",
    "completed_steps",
    "error_message",
    "warning_message",
    "started_at",
    "completed_at",
    "result",
)
_JSON_FIELDS = frozenset(
    {"error_message", "warning_message", "result", "message", "results", "request", "plan"}
)


@dataclass(frozen=True, slots=True)
class RunRow:
    """A benchmark run plus where the runtime put it."""

    run: BenchmarkRun
    dispatched_attempt: int = 0
    runtime_ref: str | None = None
    deadline_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EvaluationRecord:
    id: str
    tenant: str
    owner: str | None
    name: str
    request: dict[str, Any]
    plan: Plan
    state: str
    message: dict[str, Any]
    results: dict[str, Any]
    cancelled: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    runs: tuple[RunRow, ...] = ()
    version: int = 0

    def run(self, index: int) -> RunRow | None:
        return self.runs[index] if 0 <= index < len(self.runs) else None


_RECORD_FIELDS = frozenset(f.name for f in fields(EvaluationRecord))


@dataclass(frozen=True, slots=True)
class ListPosition:
    """A job's place in the list order (``created_at`` DESC, ``id`` DESC): what a page's cursor holds."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class EvaluationQuery:
    state: Groups = ()
    name: Groups = ()
    tags: Groups = ()
    owner: Groups = ()
    experiment_id: Groups = ()
    collection_id: Groups = ()
    limit: int = 50
    offset: int = 0
    after: ListPosition | None = None  # keyset paging: the jobs after this one (then ``offset`` is 0)


@dataclass(frozen=True, slots=True)
class EvaluationPage:
    records: list[EvaluationRecord]
    total: int  # every job the filters match, exact at the page's snapshot
    more: bool  # jobs follow the last one of this page

    @property
    def last(self) -> ListPosition | None:
        return ListPosition(self.records[-1].created_at, self.records[-1].id) if self.records else None


@dataclass(slots=True)
class LockedEvaluation:
    """One evaluation to change (under its row lock, or read at a version that the write checks): change it, emit
    events, ask for what runs once it is committed; all is written at commit."""

    record: EvaluationRecord
    duplicate: bool = False
    _runs: dict[int, RunRow] = field(default_factory=dict)
    _fields: dict[str, Any] = field(default_factory=dict)
    _events: list[OutboxEvent] = field(default_factory=list)
    _committed: list[Callable[[], None]] = field(default_factory=list)

    def on_commit(self, then: Callable[[], None]) -> None:
        """Run ``then`` once the change is committed (counting it in metrics): never for a change rolled back or
        computed again from a newer read."""
        self._committed.append(then)

    def committed(self) -> None:
        for then in self._committed:
            then()

    def put(self, run: BenchmarkRun) -> None:
        current = self._runs.get(run.index) or self.record.runs[run.index]
        self._runs[run.index] = replace(current, run=run)

    def put_row(self, row: RunRow) -> None:
        self._runs[row.run.index] = row

    def runs(self) -> list[BenchmarkRun]:
        """The runs as they will be after commit."""
        return [self._runs.get(row.run.index, row).run for row in self.record.runs]

    def rows(self) -> list[RunRow]:
        return [self._runs.get(row.run.index, row) for row in self.record.runs]

    def set(self, **fields: Any) -> None:
        self._fields.update(fields)

    def writes(self, inbox: tuple[str, str, str] | None = None) -> bool:
        """Whether committing this unit writes anything (a field, a run, an event, or the inbox row)."""
        return bool(self._fields or self._runs or self._events or inbox)

    def after(self, version: int, updated_at: datetime) -> EvaluationRecord | None:
        """The job as this change left it, once written at ``version`` (``updated_at`` the database's); None if
        the change set a column the record does not hold."""
        if not self._fields.keys() <= _RECORD_FIELDS:
            return None
        return replace(
            self.record, **self._fields, runs=tuple(self.rows()), version=version, updated_at=updated_at
        )

    def current(self, name: str) -> Any:
        return self._fields.get(name, getattr(self.record, name))

    def emit(self, event: OutboxEvent) -> None:
        self._events.append(event)

    @property
    def events(self) -> list[OutboxEvent]:
        return list(self._events)


# One round trip per job: its runs come along as a JSON array (timestamps as ISO strings).
_WITH_RUNS = sql.SQL(
    "e.*, coalesce((SELECT json_agg(to_jsonb(r) - 'evaluation_id' ORDER BY r.idx)"
    " FROM benchmark_runs r WHERE r.evaluation_id = e.id), '[]'::json) AS runs"
)
_TIMESTAMPS = ("started_at", "completed_at", "deadline_at")


def _row_to_run(row: dict[str, Any]) -> RunRow:
    for name in _TIMESTAMPS:
        if isinstance(row.get(name), str):
            row[name] = datetime.fromisoformat(row[name])
    run = BenchmarkRun(
        index=row["idx"],
        provider_id=row["provider_id"],
        benchmark_id=row["benchmark_id"],
        **{name: row[name] for name in _RUN_FIELDS},
    )
    return RunRow(
        run=run,
        dispatched_attempt=row["dispatched_attempt"],
        runtime_ref=row["runtime_ref"],
        deadline_at=row["deadline_at"],
    )


def _record(row: dict[str, Any]) -> EvaluationRecord:
    runs = [_row_to_run(r) for r in row["runs"]]
    return EvaluationRecord(
        id=row["id"],
        tenant=row["tenant"],
        owner=row["owner"],
        name=row["name"],
        request=row["request"],
        plan=Plan.model_validate(row["plan"]),
        state=row["state"],
        message=row["message"],
        results=row["results"],
        cancelled=row["cancelled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        runs=tuple(runs),
        version=row.get("version", 0),
    )


def _run_columns(row: RunRow) -> dict[str, Any]:
    values = {name: getattr(row.run, name) for name in _RUN_FIELDS}
    values.update(
        dispatched_attempt=row.dispatched_attempt, runtime_ref=row.runtime_ref, deadline_at=row.deadline_at
    )
    return values


def _adapt(name: str, value: Any) -> Any:
    return Jsonb(value) if name in _JSON_FIELDS and value is not None else value


_SELECT_ONE = "SELECT {runs} FROM evaluations e WHERE id = %s AND {scope}"
# The same and whether a handler already applied an event (params: handler, source, id, then _SELECT_ONE's).
_SELECT_ONE_SEEN = (
    "SELECT {runs}, EXISTS (SELECT 1 FROM inbox WHERE handler = %s AND source = %s AND id = %s) AS seen"
    " FROM evaluations e WHERE id = %s AND {scope}"
)


# The job with its runs only if its counter is not the one given (params: the id, the scope's, the version): a row
# whenever the job exists, every column NULL if it did not change.
_SELECT_CHANGED = (
    "SELECT j.* FROM (SELECT id, version FROM evaluations WHERE id = %s AND {scope}) v"
    " LEFT JOIN LATERAL (SELECT {runs} FROM evaluations e WHERE e.id = v.id AND e.version <> %s) j ON TRUE"
)


@functools.cache
def _rendered(template: str, by_tenant: bool) -> bytes:
    """``template`` with ``{scope}`` as the repository's scope (``tenant = %s`` or ``TRUE``) and ``{runs}``, if
    it has it, as the job's columns with its runs; templates are this module's constants, so the cache stays
    small."""
    scope = sql.SQL("tenant = %s" if by_tenant else "TRUE")
    return sql.SQL(template).format(scope=scope, runs=_WITH_RUNS).as_bytes(None)


def _assignments(columns: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in columns)


def _job_update_sql(fields: tuple[str, ...]) -> sql.Composable:
    sets = sql.SQL("{}, ").format(_assignments(fields)) if fields else sql.SQL("")
    return sql.SQL("UPDATE evaluations SET {}updated_at = now(), version = version + 1 WHERE id = %s").format(
        sets
    )


@functools.cache
def _job_update(fields: tuple[str, ...]) -> bytes:
    """The job's UPDATE of ``fields`` (none: only updated_at and version); params: the values, then the id."""
    return _job_update_sql(fields).as_bytes(None)


# record_spawn's one statement (params: job id, runtime ref, deadline, index, attempt).
_RECORD_SPAWN = (
    "WITH job AS (SELECT id, set_config('synchronous_commit', 'off', true) FROM evaluations WHERE id = %s FOR UPDATE)"
    " UPDATE benchmark_runs SET runtime_ref = %s, deadline_at = %s,"
    " dispatched_attempt = greatest(dispatched_attempt, attempt), updated_at = now()"
    " WHERE evaluation_id = (SELECT id FROM job) AND idx = %s AND attempt = %s"
    " AND status NOT IN ('completed', 'failed', 'cancelled')"
)


@functools.cache
def _run_update(columns: tuple[str, ...], job_fields: tuple[str, ...] | None) -> bytes:
    """A run's UPDATE of ``columns`` (params: the values, the job id, the index), led by the job's own
    (:func:`_job_update`'s params first) unless ``job_fields`` is None. A handful of column sets occur."""
    run = sql.SQL(
        "UPDATE benchmark_runs SET {}, updated_at = now() WHERE evaluation_id = %s AND idx = %s"
    ).format(_assignments(columns))
    if job_fields is not None:
        run = sql.SQL("WITH job AS ({}) {}").format(_job_update_sql(job_fields), run)
    return run.as_bytes(None)


_OUTBOX_COLUMNS = (
    "id, type, source, subject, partition_key, correlation_id, causation_id, data, traceparent, tracestate"
)
_OUTBOX_VALUES = ", ".join(["%s"] * 10)
_INSERT_EVENT = (
    f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES ({_OUTBOX_VALUES}) ON CONFLICT (id) DO NOTHING"
)


def _event_params(event: OutboxEvent) -> list[Any]:
    return [
        event.id,
        event.type,
        event.source,
        event.subject,
        event.partition_key,
        event.correlation_id,
        event.causation_id,
        Jsonb(event.data),
        event.traceparent,
        event.tracestate,
    ]


async def insert_events(conn: AsyncConnection[Any], events: Sequence[OutboxEvent]) -> None:
    for event in events:
        await conn.execute(_INSERT_EVENT, _event_params(event))


@functools.cache
@functools.cache
def _create(events: int, guarded: bool) -> bytes:
    """A job's INSERT with its runs' (three arrays: indices, providers, benchmarks) and ``events`` outbox rows', as
    one statement: PostgreSQL runs each data-modifying WITH once, and checks the runs' reference to the job at the
    statement's end. ``guarded``: the last parameter is the catalogue revision the job was planned at, and the
    statement fails with SQLSTATE AS001 (nothing written) if the catalogue moved since."""
    parts = [
        "job AS (INSERT INTO evaluations (id, tenant, owner, name, request, plan, state, message, tags, collection_id,"
        " experiment_id, idempotency_key, request_hash, created_at, updated_at)"
        f" VALUES ({', '.join(['%s'] * 15)}) RETURNING id)",
        "runs AS (INSERT INTO benchmark_runs (evaluation_id, idx, provider_id, benchmark_id)"
        " SELECT job.id, r.idx, r.provider_id, r.benchmark_id"
        " FROM job, unnest(%s::integer[], %s::text[], %s::text[]) AS r (idx, provider_id, benchmark_id))",
        *(f"e{number} AS ({_INSERT_EVENT})" for number in range(events)),
    ]
    check = "catalogue_unchanged(%s)" if guarded else "1"
    return f"WITH {', '.join(parts)} SELECT {check}".encode()


# How many times a change is computed from a fresh read before it waits for the job's row lock instead: a job's
# writers rarely overlap (its events come one after another), and when they do the lock orders them.
_OPTIMISTIC_TRIES = 2


@functools.cache
def _guarded_write(
    job_fields: tuple[str, ...] | None,
    runs: tuple[tuple[str, ...], ...],
    events: int,
    inbox: bool,
    durable: bool,
) -> bytes:
    """A change as one statement, applied only if the job is still at the version it was read at (and, with
    ``inbox``, the event is not in the inbox yet): the job's UPDATE of ``job_fields`` with its version (None: no
    field and no run changed, only its row lock), then, if that found the row, each run's UPDATE of its columns,
    the inbox row and ``events`` outbox rows. Its one row: the jobs written (0: another change came first, or the
    event was applied), the job's version and ``updated_at`` after it. Params: the job's values, its id, the
    version read, the inbox's (handler, source, id) if any; for each run its values and index; the inbox's again;
    each event's :func:`_event_params`.

    PostgreSQL runs every data-modifying WITH exactly once, under the job's row lock taken by the first, and
    the others read which job it wrote; ``set_config(..., true)`` is ``SET LOCAL`` for the statement's own
    transaction."""
    relaxed = sql.SQL(", set_config('synchronous_commit', 'off', true)" if not durable else "")
    unseen = sql.SQL(
        " AND NOT EXISTS (SELECT 1 FROM inbox WHERE handler = %s AND source = %s AND id = %s)"
        if inbox
        else ""
    )
    if job_fields is None:
        job = sql.SQL(
            "SELECT id, version, updated_at{} FROM evaluations WHERE id = %s AND version = %s{} FOR UPDATE"
        ).format(relaxed, unseen)
    else:
        job = sql.SQL("{} AND version = %s{} RETURNING id, version, updated_at{}").format(
            _job_update_sql(job_fields), unseen, relaxed
        )
    parts: list[sql.Composable] = [sql.SQL("job AS ({})").format(job)]
    for number, columns in enumerate(runs):
        parts.append(
            sql.SQL(
                "r{} AS (UPDATE benchmark_runs SET {}, updated_at = now()"
                " WHERE evaluation_id = (SELECT id FROM job) AND idx = %s)"
            ).format(sql.SQL(str(number)), _assignments(columns))
        )
    if inbox:
        parts.append(
            sql.SQL(
                "seen AS (INSERT INTO inbox (handler, source, id) SELECT %s, %s, %s FROM job ON CONFLICT DO NOTHING)"
            )
        )
    for number in range(events):
        parts.append(
            sql.SQL("e{} AS (INSERT INTO outbox ({}) SELECT {} FROM job ON CONFLICT (id) DO NOTHING)").format(
                sql.SQL(str(number)), sql.SQL(_OUTBOX_COLUMNS), sql.SQL(_OUTBOX_VALUES)
            )
        )
    return (
        sql.SQL("WITH {} SELECT count(*), max(version), max(updated_at) FROM job")
        .format(sql.SQL(", ").join(parts))
        .as_bytes(None)
    )


def _changed_runs(unit: LockedEvaluation) -> list[tuple[int, dict[str, Any]]]:
    """Each run the unit changed, with only the columns that changed: a concurrent write of another column (the
    runtime's record of a spawn) is not overwritten."""
    changed = []
    for index, row in unit._runs.items():
        before, after = _run_columns(unit.record.runs[index]), _run_columns(row)
        columns = {name: value for name, value in after.items() if before[name] != value}
        if columns:
            changed.append((index, columns))
    return changed


class RecentJobs:
    """Jobs as this process created them or its last guarded change of each left them, most recent last, at most
    ``limit``: the next change of a job by the repository of all tenants starts from here instead of a read
    (:meth:`EvaluationRepository.change`). A job changed elsewhere is caught by the write's version check; a change
    that does not move the version (where a run's process runs, :meth:`EvaluationRepository.record_spawn`) is
    applied here too. Every repository of a :class:`~assay.store.Database` writes here; only the one of all
    tenants computes changes from it, and a tenant's shows a job from it only after its own tenant-scoped statement
    said the job has not moved (:meth:`EvaluationRepository.current`)."""

    def __init__(self, limit: int = 1024) -> None:
        self._jobs: OrderedDict[str, EvaluationRecord] = OrderedDict()
        self._limit = limit

    def get(self, evaluation_id: str) -> EvaluationRecord | None:
        return self._jobs.get(evaluation_id)

    def put(self, record: EvaluationRecord) -> None:
        self._jobs[record.id] = record
        self._jobs.move_to_end(record.id)
        if len(self._jobs) > self._limit:
            self._jobs.popitem(last=False)

    def forget(self, evaluation_id: str) -> None:
        self._jobs.pop(evaluation_id, None)

    def finished(self, evaluation_id: str, index: int, attempt: int) -> bool:
        """Whether the remembered job shows this attempt of the run terminal: only committed states are remembered,
        and a terminal attempt stays terminal, so memory that is behind still says it right."""
        record = self._jobs.get(evaluation_id)
        row = record.run(index) if record is not None else None
        return row is not None and row.run.attempt == attempt and row.run.terminal

    def spawned(
        self, evaluation_id: str, index: int, attempt: int, runtime_ref: str, deadline_at: datetime
    ) -> None:
        """Apply a committed spawn record (:meth:`EvaluationRepository.record_spawn`, which does not move the
        version) to the remembered job; forget the job if memory does not show that attempt still open."""
        record = self._jobs.get(evaluation_id)
        row = record.run(index) if record is not None else None
        if record is None or row is None or row.run.attempt != attempt or row.run.terminal:
            self.forget(evaluation_id)
            return
        runs = list(record.runs)
        runs[index] = replace(
            row,
            runtime_ref=runtime_ref,
            deadline_at=deadline_at,
            dispatched_attempt=max(row.dispatched_attempt, attempt),
        )
        self._jobs[evaluation_id] = replace(record, runs=tuple(runs))


class EvaluationRepository:
    """Evaluations of one tenant (``tenant`` given) or of all tenants (event handlers, sweep)."""

    def __init__(
        self, pool: AsyncConnectionPool, tenant: Tenant | None, recent: RecentJobs | None = None
    ) -> None:
        self._pool = pool
        self._tenant = tenant
        self._recent = recent

    def _scope(self) -> tuple[sql.Composable, list[Any]]:
        if self._tenant is None:
            return sql.SQL("TRUE"), []
        return sql.SQL("tenant = %s"), [self._tenant.name]

    def _scoped(self, template: str) -> tuple[bytes, list[Any]]:
        """``template`` with ``{scope}`` as this repository's scope, rendered once per process and scope kind
        (these run several times per state change; composing them each time was measurable), and its params."""
        if self._tenant is None:
            return _rendered(template, False), []
        return _rendered(template, True), [self._tenant.name]

    async def _select(
        self, conn: AsyncConnection[Any], evaluation_id: str, inbox: tuple[str, str, str] | None = None
    ) -> AsyncCursor[dict[str, Any]]:
        """Send the read of one job with its runs (and, given ``inbox``, whether that event was applied: ``seen``);
        the caller fetches."""
        if inbox is None:
            query, scope = self._scoped(_SELECT_ONE)
            params = [evaluation_id, *scope]
        else:
            query, scope = self._scoped(_SELECT_ONE_SEEN)
            params = [*inbox, evaluation_id, *scope]
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query, params, prepare=True)
        return cur

    async def _lock(
        self,
        conn: AsyncConnection[Any],
        evaluation_id: str,
        *,
        inbox: tuple[str, str, str] | None = None,
        durable: bool = True,
    ) -> AsyncCursor[Any]:
        """Send the job's row lock as a statement of its own; the caller fetches its row (none: no such job).

        Under READ COMMITTED every statement reads from a snapshot taken when it starts: a read of the runs
        in the same statement as ``FOR UPDATE`` would see them as they were before waiting for the lock
        (PostgreSQL re-reads only the locked row), so a second terminal event would not see the first
        one's committed run. The read that follows this statement starts after the lock is held.

        The same statement records ``inbox`` (its row's one column says whether the event is new) and, unless
        ``durable``, makes the transaction's commit asynchronous (``set_config(..., true)`` is ``SET LOCAL``):
        a statement each fewer per change."""
        commit = "set_config('synchronous_commit', 'off', true)" if not durable else "''"
        if inbox is None:
            template = f"SELECT TRUE, {commit} FROM evaluations WHERE id = %s AND {{scope}} FOR UPDATE"
            params: list[Any] = [evaluation_id]
        else:
            # A data-modifying WITH runs exactly once, read or not; RETURNING yields a row only when inserted.
            template = (
                "WITH seen AS (INSERT INTO inbox (handler, source, id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
                f" RETURNING 1) SELECT EXISTS (SELECT 1 FROM seen), {commit}"
                " FROM evaluations WHERE id = %s AND {scope} FOR UPDATE"
            )
            params = [*inbox, evaluation_id]
        query, scope = self._scoped(template)
        return await conn.execute(query, [*params, *scope], prepare=True)

    async def _load(self, conn: AsyncConnection[Any], evaluation_id: str) -> EvaluationRecord | None:
        row = await (await self._select(conn, evaluation_id)).fetchone()
        return _record(row) if row is not None else None

    async def get(self, evaluation_id: str) -> EvaluationRecord:
        async with self._pool.connection() as conn:
            record = await self._load(conn, evaluation_id)
        if record is None:
            raise NotFound(f"Evaluation job {evaluation_id!r} does not exist")
        return record

    async def current(self, evaluation_id: str, seen: int | None = None) -> EvaluationRecord | None:
        """The job as it is now, or None if it is still at version ``seen`` (what the caller showed last); a
        poll's read. One statement, which returns no row but the counter whenever the job is at the newest
        version this process knows of it: its memory of the job (this process created or last changed it) or
        ``seen``. A job this process has just changed is not read again to be shown; one changed elsewhere comes
        back from that same statement. The statement is this repository's: another tenant's job is NotFound as
        ever."""
        known = self._recent.get(evaluation_id) if self._recent is not None else None
        if known is not None and self._tenant is not None and known.tenant != self._tenant.name:
            known = None
        if known is not None and (seen is None or known.version > seen):
            changed = await self.changed_since(evaluation_id, known.version)
            return known if changed is None else changed
        if seen is not None:
            return await self.changed_since(evaluation_id, seen)
        return await self.get(evaluation_id)

    async def create(
        self,
        record: EvaluationRecord,
        *,
        idempotency_key: str | None,
        request_hash: str,
        events: Sequence[OutboxEvent],
        catalogue_revision: int | None = None,
    ) -> tuple[EvaluationRecord, bool]:
        """Insert the job, a run per planned benchmark and ``events``, atomically.

        With an ``idempotency_key`` already used by the tenant, returns the existing job and False
        (or raises :class:`Conflict` when the key was used for a different request). With the
        ``catalogue_revision`` the job was planned at, raises :class:`CatalogueChanged` and writes nothing if the
        catalogue moved since.
        """
        runs = [row.run for row in record.runs]
        params = [
            record.id,
            record.tenant,
            record.owner,
            record.name,
            Jsonb(record.request),
            Jsonb(record.plan.model_dump(mode="json")),
            record.state,
            Jsonb(record.message),
            list(record.request.get("tags", [])),
            record.plan.collection_id,
            record.results.get("mlflow_experiment_id"),
            idempotency_key,
            request_hash,
            record.created_at,
            record.created_at,
            [run.index for run in runs],
            [run.provider_id for run in runs],
            [run.benchmark_id for run in runs],
        ]
        for event in events:
            params += _event_params(event)
        if catalogue_revision is not None:
            params.append(catalogue_revision)
        async with self._pool.connection() as conn:
            try:
                # One statement, its own transaction: the job, its runs and its events.
                await conn.execute(_create(len(events), catalogue_revision is not None), params, prepare=True)
            except Error as exc:
                if exc.sqlstate == CatalogueChanged.SQLSTATE:
                    raise CatalogueChanged(str(exc)) from None
                if not isinstance(exc, UniqueViolation):
                    raise
                if idempotency_key is None:
                    raise
                lookup = conn.cursor(row_factory=dict_row)
                await lookup.execute(
                    "SELECT id, request_hash FROM evaluations WHERE tenant = %s AND idempotency_key = %s",
                    [record.tenant, idempotency_key],
                )
                existing = await lookup.fetchone()
                if existing is None:  # deleted between the two statements
                    raise Conflict("Idempotency-Key collided; retry the request") from None
                if existing["request_hash"] != request_hash:
                    raise Conflict(
                        "This Idempotency-Key was already used for a different request",
                        message_code="idempotency_key_reused",
                    ) from None
                found = await self._load(conn, existing["id"])
                assert found is not None
                return found, False
        if self._recent is not None:
            self._recent.put(record)  # its dispatch starts from here
        return record, True  # exactly what was written; no need to read it back

    @contextlib.asynccontextmanager
    async def locked(
        self, evaluation_id: str, *, inbox: tuple[str, str, str] | None = None, durable: bool = True
    ) -> AsyncIterator[LockedEvaluation | None]:
        """Lock the evaluation for one transaction and write what the caller changed on exit.

        Yields None when the evaluation does not exist. With ``inbox=(handler, source, id)`` a
        CloudEvent already applied by ``handler`` yields a unit marked ``duplicate`` (change nothing).
        ``durable=False`` commits without waiting for the WAL flush: for changes that can be derived
        again (a phase update, a dispatch mark, a settled state) should the machine itself crash.
        """
        # Pipelined: BEGIN, the lock (with the inbox insert) and the read go out together, and so do the
        # writes with COMMIT; a change costs two round trips.
        async with self._pool.connection() as conn, conn.pipeline() as pipeline, conn.transaction():
            lock = await self._lock(conn, evaluation_id, inbox=inbox, durable=durable)
            cur = await self._select(conn, evaluation_id)
            await pipeline.sync()
            held, row = await lock.fetchone(), await cur.fetchone()
            if held is None or row is None:
                yield None
                return
            unit = LockedEvaluation(_record(row))
            unit.duplicate = not held[0]
            yield unit
            if not unit.duplicate:
                await self._write(conn, unit)
        self._forget(evaluation_id)  # written with the database's clock and counter: read afresh next time
        unit.committed()

    async def change(
        self,
        evaluation_id: str,
        apply: Callable[[LockedEvaluation], T],
        *,
        inbox: tuple[str, str, str] | None = None,
        durable: bool = True,
    ) -> tuple[LockedEvaluation, T | None] | None:
        """What :meth:`locked` does for a change computed without waiting on anything (no I/O in ``apply``), in
        two statements and no transaction block: the job is read with its runs (and whether ``inbox`` was
        applied), ``apply`` changes the unit, and one statement writes all of it provided the job is still at
        the version read (:func:`_guarded_write`). If another change came first, ``apply`` runs again on a fresh
        read, and after :data:`_OPTIMISTIC_TRIES` under the row lock; so ``apply`` changes only the unit and
        counts what it must through :meth:`LockedEvaluation.on_commit`.

        The hot changes (a status event, a settled job) took five to seven statements in a pipelined transaction
        (``BEGIN``, the lock, the read, the writes, ``COMMIT``); each statement is a round of psycopg's client
        work, the larger part of the hub's CPU per evaluation (docs/performance.md).

        None: no such job for this scope. A redelivered ``inbox`` event: the unit marked ``duplicate``, ``apply``
        not called (its result None).

        The repository of a long-lived process (:class:`Database`'s own) remembers the job as its last change left
        it (:class:`RecentJobs`) and computes the next change from that without a read: the write's version check
        says whether it was still current. Only a change that writes is taken from memory; a computation that
        changes nothing, or a write that finds the job moved (or the event applied), is done again from a read."""
        # Only the repository of all tenants starts from memory: a tenant's may not see another's job there.
        recent = (
            self._recent.get(evaluation_id) if self._recent is not None and self._tenant is None else None
        )
        if recent is not None:
            remembered = LockedEvaluation(recent)
            outcome = apply(remembered)
            if remembered.writes(inbox):
                async with self._pool.connection() as conn:
                    written = await self._write_guarded(conn, remembered, inbox, durable)
                if written is not None:
                    return self._done(remembered, outcome, written)
            self._forget(evaluation_id)
        for _ in range(_OPTIMISTIC_TRIES):
            async with self._pool.connection() as conn:
                unit = await self._read(conn, evaluation_id, inbox)
                if unit is None:
                    return None
                if unit.duplicate:
                    return unit, None
                result = apply(unit)
                if not unit.writes(inbox):
                    unit.committed()  # nothing changed: the event was a no-op on the job as it was read
                    return unit, result
                written = await self._write_guarded(conn, unit, inbox, durable)
                if written is not None:
                    return self._done(unit, result, written)
        self._forget(evaluation_id)
        async with self.locked(evaluation_id, inbox=inbox, durable=durable) as locked:
            if locked is None:
                return None
            if locked.duplicate:
                return locked, None
            result = apply(locked)
        return locked, result

    def _done(
        self, unit: LockedEvaluation, result: T, written: tuple[int, datetime]
    ) -> tuple[LockedEvaluation, T | None]:
        """A committed guarded change: remember the job as it left it, run what waits for the commit."""
        if self._recent is not None:
            record = unit.after(*written)
            if record is not None:
                self._recent.put(record)
            else:
                self._recent.forget(unit.record.id)
        unit.committed()
        return unit, result

    def _forget(self, evaluation_id: str) -> None:
        if self._recent is not None:
            self._recent.forget(evaluation_id)

    async def _read(
        self, conn: AsyncConnection[Any], evaluation_id: str, inbox: tuple[str, str, str] | None
    ) -> LockedEvaluation | None:
        """The job with its runs as one statement reads them (its version with them), and whether ``inbox`` was
        applied."""
        row = await (await self._select(conn, evaluation_id, inbox)).fetchone()
        if row is None:
            return None
        return LockedEvaluation(_record(row), duplicate=bool(row.get("seen")))

    async def _write_guarded(
        self,
        conn: AsyncConnection[Any],
        unit: LockedEvaluation,
        inbox: tuple[str, str, str] | None,
        durable: bool,
    ) -> tuple[int, datetime] | None:
        """Write what ``unit`` changed with :func:`_guarded_write`: the job's version and ``updated_at`` after it;
        None: the job moved past the version read (or the inbox holds the event). Only a unit that changes
        something (:meth:`LockedEvaluation.writes`)."""
        job_fields = tuple(unit._fields) if unit._fields or unit._runs else None
        params: list[Any] = [_adapt(n, v) for n, v in unit._fields.items()]
        params += [unit.record.id, unit.record.version]
        if inbox is not None:
            params += inbox
        changed = _changed_runs(unit)
        for index, columns in changed:
            params += [*(_adapt(n, v) for n, v in columns.items()), index]
        if inbox is not None:
            params += inbox
        for event in unit._events:
            params += _event_params(event)
        query = _guarded_write(
            job_fields,
            tuple(tuple(columns) for _, columns in changed),
            len(unit._events),
            inbox is not None,
            durable,
        )
        row = await (await conn.execute(query, params, prepare=True)).fetchone()
        return (int(row[1]), row[2]) if row is not None and row[0] == 1 else None

    async def _write(self, conn: AsyncConnection[Any], unit: LockedEvaluation) -> None:
        # The job's row changes with any of its runs (fields, or at least updated_at and the version that
        # polls compare): that UPDATE rides along with the first run's as a WITH clause, one statement less
        # per change. PostgreSQL runs a data-modifying WITH exactly once, whether or not it is read.
        job: tuple[tuple[str, ...], list[Any]] | None = None
        if unit._fields:
            job = tuple(unit._fields), [_adapt(n, v) for n, v in unit._fields.items()]
        elif unit._runs:
            job = (), []
        for index, changed in _changed_runs(unit):
            params = [*(_adapt(n, v) for n, v in changed.items()), unit.record.id, index]
            if job is not None:
                query = _run_update(tuple(changed), job[0])
                params = [*job[1], unit.record.id, *params]
                job = None
            else:
                query = _run_update(tuple(changed), None)
            await conn.execute(query, params)
        if job is not None:
            await conn.execute(_job_update(job[0]), [*job[1], unit.record.id])
        await insert_events(conn, unit._events)

    async def delete(self, evaluation_id: str) -> bool:
        scope, params = self._scope()
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL("DELETE FROM evaluations WHERE id = %s AND {}").format(scope),
                [evaluation_id, *params],
            )
            deleted = cur.rowcount > 0
        if deleted:
            self._forget(evaluation_id)  # a hard delete leaves nothing of the job behind, in memory either
        return deleted

    async def record_spawn(
        self, evaluation_id: str, index: int, attempt: int, runtime_ref: str, deadline_at: datetime
    ) -> bool:
        """Note where a run's process runs and its deadline, unless the run moved on meanwhile.

        One statement, its own transaction: no read of the job, nothing else about it changes."""
        async with self._pool.connection() as conn:
            # The job's row lock first, as every locked change takes it: no interleaving with those. The same
            # row turns the commit asynchronous (set_config(..., true) is SET LOCAL, and the UPDATE needs the
            # row before it writes): after a machine crash no process of the run is left anyway.
            cur = await conn.execute(
                _RECORD_SPAWN, [evaluation_id, runtime_ref, deadline_at, index, attempt], prepare=True
            )
            spawned = cur.rowcount > 0
        if self._recent is not None:
            if spawned:
                self._recent.spawned(evaluation_id, index, attempt, runtime_ref, deadline_at)
            else:
                self._recent.forget(evaluation_id)
        return spawned

    async def changed_since(self, evaluation_id: str, version: int) -> EvaluationRecord | None:
        """The job with its runs if its change counter moved past ``version``, else None (a poll's usual answer:
        only the counter is sent); one statement either way. NotFound when it does not exist for this scope."""
        query, scope = self._scoped(_SELECT_CHANGED)
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(query, [evaluation_id, *scope, version], prepare=True)
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"Evaluation job {evaluation_id!r} does not exist")
        return _record(row) if row["id"] is not None else None

    async def run_status(self, evaluation_id: str, index: int) -> tuple[str, int] | None:
        """(status, attempt) of one run, read without locking."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT status, attempt FROM benchmark_runs WHERE evaluation_id = %s AND idx = %s",
                [evaluation_id, index],
            )
            row = await cur.fetchone()
            return (str(row[0]), int(row[1])) if row is not None else None

    async def open_ids(self) -> list[str]:
        """Ids of evaluations not yet terminal (the sweep reconciles these)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id FROM evaluations WHERE state IN ('pending', 'running') ORDER BY created_at"
            )
            return [row[0] for row in await cur.fetchall()]

    @staticmethod
    def _filters(query: EvaluationQuery) -> tuple[tuple[str, Groups], ...]:
        return (
            ("state", query.state),
            ("owner", query.owner),
            ("name", query.name),
            ("experiment_id", query.experiment_id),
            ("collection_id", query.collection_id),
            ("tags", query.tags),
        )

    async def list(self, query: EvaluationQuery) -> EvaluationPage:
        """One page of the jobs ``query`` matches, newest first, and how many it matches in all.

        Costs what the page holds, not what the tenant ever ran (docs/performance.md, "List scale"): the page
        is a range scan of the index of its filter (migration 0009), from the start or from ``query.after``
        (keyset: page 4000 costs what page 1 does; a plain ``offset`` still skips index entries one by one);
        ``total`` is a sum over ``evaluation_facet_counts`` (migrations 0010, 0011) when ``status`` alone or
        one other column alone filters (tags: a single tag), else a count of the matches through their
        index (status with one other column: that column's index alone, whose entries carry the state,
        migration 0012). Both are read in one snapshot and one round trip."""
        scope, scope_params = self._scope()
        clauses: list[sql.Composable] = [scope]
        params: list[Any] = list(scope_params)
        # The total from evaluation_facet_counts (migrations 0010, 0011) when the filters are status alone, or
        # one other column alone (its clauses then apply to the facet's value: one value per job; a job counts
        # once per distinct tag, so tags only as a single tag).
        count_clauses: list[sql.Composable] = [scope]
        count_params: list[Any] = list(scope_params)
        facets = {column for column, groups in self._filters(query) if groups and column != "state"}
        counted = not facets or (
            len(facets) == 1
            and not query.state
            and (facets != {"tags"} or (len(query.tags) == 1 and len(query.tags[0]) == 1))
        )
        count_clauses.append(sql.SQL("facet = %s"))
        count_params.append(next(iter(facets), ""))
        count_clauses.append(sql.SQL("value = ''" if not facets else "state = ''"))
        for column, groups in self._filters(query):
            for group in groups:
                target = "state" if column == "state" else "value"
                if column == "tags":
                    clauses.append(sql.SQL("tags && %s::text[]"))
                    params.append(list(group))
                    count_clauses.append(sql.SQL("value = %s"))
                    count_params.append(group[0])
                    continue
                # One value: the column's index hands the jobs over in list order (= ANY would sort them).
                if len(group) == 1:
                    clause = sql.SQL("{} = %s")
                    value: Any = group[0]
                else:
                    clause = sql.SQL("{} = ANY(%s)")
                    value = list(group)
                clauses.append(clause.format(sql.Identifier(column)))
                params.append(value)
                count_clauses.append(clause.format(sql.Identifier(target)))
                count_params.append(value)
        where = sql.SQL(" AND ").join(clauses)
        if counted:
            total_query = sql.SQL(
                "SELECT coalesce(sum(n), 0)::bigint FROM evaluation_facet_counts WHERE {}"
            ).format(sql.SQL(" AND ").join(count_clauses))
        else:
            total_query, count_params = (
                sql.SQL("SELECT count(*) FROM evaluations WHERE {}").format(where),
                params,
            )
        page_where, page_params = where, list(params)
        if query.after is not None:
            page_where = sql.SQL("{} AND (created_at, id) < (%s, %s)").format(where)
            page_params += [query.after.created_at, query.after.id]
        # The page's ids first (from the index alone), then its documents: rows skipped by an offset are
        # never read from the table nor have their runs gathered.
        page_query = sql.SQL(
            "WITH page AS (SELECT id, created_at FROM evaluations WHERE {}"
            " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s)"
            " SELECT {} FROM page JOIN evaluations e ON e.id = page.id"
            " ORDER BY page.created_at DESC, page.id DESC"
        ).format(page_where, _WITH_RUNS)
        async with self._pool.connection() as conn, conn.pipeline() as pipeline, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # Planned for its values, unlike the pool's other statements (Database.open): the generic plan of a
            # tag filter gathers every job with the tag through its GIN index and sorts them (20 ms for a tag on
            # 100k jobs), where the list's own index, read in order, stops at the page's end (0.1 ms).
            await conn.execute("SET LOCAL plan_cache_mode = auto")
            counter = await conn.execute(total_query, count_params)
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(page_query, [*page_params, query.limit + 1, query.offset])
            await pipeline.sync()
            total = (await counter.fetchone() or (0,))[0]
            rows = await cur.fetchall()
        records = [_record(r) for r in rows[: query.limit]]
        return EvaluationPage(records=records, total=int(total), more=len(rows) > query.limit)


__all__ = [
    "EvaluationPage",
    "EvaluationQuery",
    "EvaluationRecord",
    "EvaluationRepository",
    "ListPosition",
    "LockedEvaluation",
    "RunRow",
    "insert_events",
]
