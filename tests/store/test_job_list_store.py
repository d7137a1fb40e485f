"""The job list at scale (migration 0009, docs/performance.md "List scale"): keyset pages are complete and
never overlap, even while jobs are inserted; filters and cursors combine; a cursor never crosses tenants; and
total_count, read from the per-(tenant, state, owner) counters or counted through an index, is exact after
inserts, deletes, state and owner changes, bulk statements and TRUNCATE."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from assay.core import Tenant
from assay.core.plan import Plan
from assay.store import (
    Database,
    EvaluationQuery,
    EvaluationRecord,
    EvaluationRepository,
    ListPosition,
    migrate,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATES = ("pending", "running", "completed", "failed", "cancelled")
COLUMNS = {"state": "state", "owner": "owner", "name": "name", "experiment_id": "experiment_id"}


def record(
    tenant: str,
    created_at: datetime,
    *,
    owner: str | None = "alice",
    name: str = "nightly",
    state: str = "pending",
    tags: tuple[str, ...] = (),
    experiment: str | None = None,
    collection: str | None = None,
) -> EvaluationRecord:
    return EvaluationRecord(
        id=str(uuid.uuid4()),
        tenant=tenant,
        owner=owner,
        name=name,
        request={"name": name, "tags": list(tags)},
        plan=Plan(benchmarks=[], collection_id=collection),
        state=state,
        message={"message": state, "message_code": state},
        results={"mlflow_experiment_id": experiment} if experiment else {},
        cancelled=False,
        created_at=created_at,
        updated_at=created_at,
        started_at=None,
        completed_at=None,
    )


def run(database_url: str, scenario: Callable[[Database], Awaitable[None]], **pool: Any) -> None:
    """``scenario`` against a migrated database through a pool opened with ``pool``'s options."""

    async def main() -> None:
        await migrate(database_url)
        database = await Database.open(database_url, **pool)
        try:
            await scenario(database)
        finally:
            await database.close()

    asyncio.run(main())


async def create(repo: EvaluationRepository, rec: EvaluationRecord) -> None:
    await repo.create(rec, idempotency_key=None, request_hash="h", events=())


async def walk(repo: EvaluationRepository, query: EvaluationQuery) -> tuple[list[str], list[int]]:
    """Every page from the first, following each page's last position; (ids, total of each page)."""
    ids: list[str] = []
    totals: list[int] = []
    after: ListPosition | None = None
    while True:
        page = await repo.list(EvaluationQuery(**{**_fields(query), "after": after}))
        ids += [r.id for r in page.records]
        totals.append(page.total)
        assert len(page.records) <= query.limit
        if not page.more:
            return ids, totals
        after = page.last


def _fields(query: EvaluationQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in EvaluationQuery.__dataclass_fields__}


def expected(database_url: str, tenant: str, where: str = "TRUE", params: tuple[Any, ...] = ()) -> list[str]:
    """The list as a plain ORDER BY over the table says it is: what every page walk must reproduce."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT id FROM evaluations WHERE tenant = %s AND ({where}) ORDER BY created_at DESC, id DESC",
            [tenant, *params],
        ).fetchall()
    return [r[0] for r in rows]


def test_keyset_pages_are_complete_and_disjoint_while_jobs_are_inserted(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        other = database.scoped(Tenant("team-b")).evaluations
        # Ties on created_at (bulk imports, clock granularity) are ordered by id: include some.
        for i in range(37):
            await create(repo, record("team-a", T0 + timedelta(seconds=i // 3)))
            await create(other, record("team-b", T0 + timedelta(seconds=i // 3)))
        before = set(expected(database_url, "team-a"))

        seen: list[str] = []
        after: ListPosition | None = None
        inserted: list[str] = []
        for step in itertools.count():
            page = await repo.list(EvaluationQuery(limit=5, after=after))
            seen += [r.id for r in page.records]
            stamps = [(r.created_at, r.id) for r in page.records]
            assert stamps == sorted(stamps, reverse=True)
            if not page.more:
                break
            after = page.last
            # Between pages: a newer job (above the cursor: not in this walk), one at the cursor's own
            # created_at, and an older one (below it: the walk reaches it exactly once).
            for created in (T0 + timedelta(hours=1), after.created_at, T0 - timedelta(seconds=step + 1)):
                rec = record("team-a", created)
                await create(repo, rec)
                inserted.append(rec.id)

        assert len(seen) == len(set(seen))  # no job twice
        assert before <= set(seen)  # every job that existed throughout
        assert set(seen) <= before | set(inserted)  # nothing from team-b
        # The walk is the table's order restricted to what it saw.
        assert seen == [i for i in expected(database_url, "team-a") if i in set(seen)]

    run(database_url, scenario)


def test_pages_with_a_concurrent_writer(database_url: str) -> None:
    """A writer inserts (at the top and far down) while pages are read: still no job twice, none lost."""

    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        for i in range(60):
            await create(repo, record("team-a", T0 + timedelta(seconds=i)))
        before = set(expected(database_url, "team-a"))
        done = asyncio.Event()

        async def writer() -> int:
            count = 0
            while not done.is_set():
                when = T0 + timedelta(days=1, seconds=count) if count % 2 else T0 - timedelta(seconds=count)
                await create(repo, record("team-a", when))
                count += 1
            return count

        async def reader() -> list[str]:
            try:
                ids, _ = await walk(repo, EvaluationQuery(limit=7))
                return ids
            finally:
                done.set()

        written, seen = await asyncio.gather(writer(), reader())
        assert written > 0
        assert len(seen) == len(set(seen))
        assert before <= set(seen)

    run(database_url, scenario)


def test_filters_combine_with_cursors_and_totals_are_exact(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        repo = database.scoped(Tenant("team-a")).evaluations
        other = database.scoped(Tenant("team-b")).evaluations
        owners = ("alice", "bob", None)
        for i in range(90):
            for tenant, target in (("team-a", repo), ("team-b", other)):
                await create(
                    target,
                    record(
                        tenant,
                        T0 + timedelta(seconds=i),
                        owner=owners[i % 3],
                        name=f"job-{i % 4}",
                        state=STATES[i % 5],
                        tags=(f"t{i % 3}", "all") if i % 2 else (),
                        experiment=f"exp-{i % 2}" if i % 3 else None,
                        collection="suite" if i % 5 == 0 else None,
                    ),
                )
        cases: list[tuple[EvaluationQuery, str, tuple[Any, ...]]] = [
            (EvaluationQuery(), "TRUE", ()),
            (EvaluationQuery(state=(("completed",),)), "state = 'completed'", ()),
            (EvaluationQuery(state=(("completed", "failed"),)), "state IN ('completed', 'failed')", ()),
            (EvaluationQuery(state=(("completed", "failed"), ("failed",))), "state = 'failed'", ()),
            (EvaluationQuery(state=(("completed",), ("failed",))), "FALSE", ()),
            (EvaluationQuery(owner=(("bob",),)), "owner = 'bob'", ()),
            (
                EvaluationQuery(owner=(("alice", "bob"),), state=(("pending",),)),
                "owner IN ('alice', 'bob') AND state = 'pending'",
                (),
            ),
            (EvaluationQuery(state=(("nope",),)), "FALSE", ()),
            (EvaluationQuery(name=(("job-1",),)), "name = 'job-1'", ()),
            (
                EvaluationQuery(name=(("job-1", "job-2"),), state=(("running",),)),
                "name IN ('job-1', 'job-2') AND state = 'running'",
                (),
            ),
            (EvaluationQuery(tags=(("t1",),)), "'t1' = ANY(tags)", ()),
            (EvaluationQuery(tags=(("t1", "t2"), ("all",))), "tags && '{t1,t2}' AND 'all' = ANY(tags)", ()),
            (
                EvaluationQuery(experiment_id=(("exp-1",),), owner=(("alice",),)),
                "experiment_id = 'exp-1' AND owner = 'alice'",
                (),
            ),
            (EvaluationQuery(collection_id=(("suite",),)), "collection_id = 'suite'", ()),
            (EvaluationQuery(name=(("job-1", "job-2"), ("job-2", "job-3"))), "name = 'job-2'", ()),
            (EvaluationQuery(name=(("job-1",), ("job-2",))), "FALSE", ()),
            (
                EvaluationQuery(tags=(("t1",),), state=(("completed", "failed"),)),
                "'t1' = ANY(tags) AND state IN ('completed', 'failed')",
                (),
            ),
            (
                EvaluationQuery(tags=(("all",),), name=(("job-1",),)),
                "'all' = ANY(tags) AND name = 'job-1'",
                (),
            ),
            (EvaluationQuery(tags=(("t1", "all"),)), "tags && '{t1,all}'", ()),
            (EvaluationQuery(experiment_id=(("exp-0", "exp-1"),)), "experiment_id IS NOT NULL", ()),
        ]

        async def check() -> None:
            for query, where, params in cases:
                want = expected(database_url, "team-a", where, params)
                for limit in (4, 50):
                    ids, totals = await walk(repo, EvaluationQuery(**{**_fields(query), "limit": limit}))
                    assert ids == want, (query, limit)
                    assert set(totals) == {len(want)}, (query, limit, totals)
                # offset paging (what EvalHub's clients send) agrees with the cursor's pages
                offset_page = await repo.list(EvaluationQuery(**{**_fields(query), "limit": 4, "offset": 3}))
                assert [r.id for r in offset_page.records] == want[3:7]
                assert offset_page.more == (len(want) > 7) and offset_page.total == len(want)

        await check()
        # Changes through the hub's own paths: state changes in a locked unit, an owner change, deletes.
        some = expected(database_url, "team-a")
        for i, job_id in enumerate(some[:30]):
            async with repo.locked(job_id) as unit:
                assert unit is not None
                unit.set(state=STATES[(i + 2) % 5])
        async with repo.locked(some[30]) as unit:
            assert unit is not None
            unit.set(owner="carol")
        async with repo.locked(some[31]) as unit:  # a progress-only change: counters untouched
            assert unit is not None
            unit.set(message={"message": "still", "message_code": "x"})
        for job_id in some[32:40]:
            assert await repo.delete(job_id)
        await check()
        # Bulk statements count each job once too.
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE evaluations SET state = 'cancelled' WHERE tenant = 'team-a' AND name = 'job-3'"
            )
            conn.execute("DELETE FROM evaluations WHERE tenant = 'team-a' AND name = 'job-0'")
            # what else writes these columns later: the MLflow export sets experiment_id; retags and renames
            conn.execute(
                "UPDATE evaluations SET experiment_id = 'exp-1' WHERE tenant = 'team-a' AND name = 'job-2'"
            )
            conn.execute(
                "UPDATE evaluations SET tags = ARRAY['t2', 't2', 'new'], name = 'job-1', collection_id = NULL"
                " WHERE tenant = 'team-a' AND state = 'failed'"
            )
            conn.execute(
                "INSERT INTO evaluations (id, tenant, owner, name, request, plan, state, message, created_at)"
                " SELECT gen_random_uuid()::text, 'team-a', 'bob', 'job-9', '{}', '{\"benchmarks\": []}',"
                " 'completed', '{}', %s + i * interval '1 ms' FROM generate_series(1, 25) i",
                [T0],
            )
        await check()
        # team-b's counts were never touched by any of it
        b_total = (await other.list(EvaluationQuery(limit=1))).total
        assert b_total == 90 == len(expected(database_url, "team-b"))
        with psycopg.connect(database_url) as conn:
            conn.execute("TRUNCATE evaluations CASCADE")
        assert (await repo.list(EvaluationQuery(state=(("completed",),)))).total == 0
        await create(repo, record("team-a", T0, state="completed"))
        assert (await repo.list(EvaluationQuery(state=(("completed",),)))).total == 1

    run(database_url, scenario)


def test_a_cursor_never_reaches_another_tenant(database_url: str) -> None:
    """A cursor is a place in the order, not a grant: used by team-b it lists team-b's jobs after that place."""

    async def scenario(database: Database) -> None:
        a = database.scoped(Tenant("team-a")).evaluations
        b = database.scoped(Tenant("team-b")).evaluations
        for i in range(10):
            await create(a, record("team-a", T0 + timedelta(seconds=2 * i)))
            await create(b, record("team-b", T0 + timedelta(seconds=2 * i + 1)))
        first = await a.list(EvaluationQuery(limit=3))
        assert first.last is not None
        crossed = await b.list(EvaluationQuery(limit=50, after=first.last))
        b_ids = expected(database_url, "team-b")
        assert {r.tenant for r in crossed.records} == {"team-b"}
        assert [r.id for r in crossed.records] == b_ids[3:]  # b's jobs older than a's third newest
        assert crossed.total == 10
        # The cross-tenant repository (event handlers) is unscoped, and says so.
        everyone = EvaluationRepository(database.pool, None)
        assert (await everyone.list(EvaluationQuery(limit=1))).total == 20

    run(database_url, scenario)


def test_status_with_another_column_is_counted_from_the_index_alone(database_url: str) -> None:
    """A list filtered by status and by owner (or name, experiment, collection) counts its matches through that
    column's index (evaluation_facet_counts sums only one filtered column): with the state in the index
    entries (migration 0012) the count reads no table rows, so it no longer visits every job of the owner."""

    async def scenario(database: Database) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO evaluations (id, tenant, owner, name, request, plan, state, message, created_at,"
                " experiment_id, collection_id)"
                " SELECT gen_random_uuid()::text, 'scan', 'user-' || i %% 10, 'pipeline-' || i %% 10, '{}',"
                " '{\"benchmarks\": []}', CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'completed' END, '{}',"
                " %s + i * interval '1 ms', 'exp-' || i %% 10, 'col-' || i %% 10"
                " FROM generate_series(1, 6000) i",
                [T0],
            )
            conn.execute("VACUUM ANALYZE evaluations")
            for column, value in (
                ("owner", "user-7"),
                ("name", "pipeline-7"),
                ("experiment_id", "exp-7"),
                ("collection_id", "col-7"),
            ):
                # What EvaluationRepository.list sends for ?status=completed&<column>=<value> (its total).
                (plan,) = conn.execute(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM evaluations"
                    f" WHERE tenant = %s AND state = %s AND {column} = %s",
                    ["scan", "completed", value],
                ).fetchone()  # type: ignore[misc]
                scans = list(_plan_nodes(plan[0]["Plan"]))
                index = f"evaluations_list_{column.removesuffix('_id')}"
                assert any(
                    node["Node Type"] == "Index Only Scan"
                    and node.get("Index Name") == index
                    and node["Heap Fetches"] == 0
                    for node in scans
                ), (column, [(n["Node Type"], n.get("Index Name"), n.get("Heap Fetches")) for n in scans])
        repo = database.scoped(Tenant("scan")).evaluations
        page = await repo.list(EvaluationQuery(state=(("completed",),), owner=(("user-7",),), limit=50))
        assert page.total == 600 and len(page.records) == 50

    run(database_url, scenario)


def _plan_nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)
