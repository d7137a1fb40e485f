"""List scale: p50/p99 of the job list as one tenant's history grows from 1k to 200k jobs (issue 20, goal 4).

Starts an embedded PostgreSQL (the hub's own, from the ``pgserver`` wheel) in a temporary directory and a real
hub (``assay up`` with ``DATABASE_URL`` pointing at it, token authentication). One job is submitted through the
API to a provider the local hub cannot run, so it is accepted and fails at once: a complete, real job document
with one benchmark run. Its rows are the template the bench copies with ``INSERT ... SELECT generate_series``:
for every job of tenant ``bench`` a quarter as many go to three other tenants (interleaved in time), so every
query also filters tenancy. Seeded jobs are terminal (completed 90 %, failed 6 %, cancelled 3 %, partially
failed 1 %), so the hub's sweep leaves them alone; 10 owners, 10 names, tags ``team-N`` (4) and ``model-N``
(10), an MLflow experiment on every other job: each filter below matches 5-10 % of the jobs, a full page at
every size. After each step ``VACUUM ANALYZE`` brings the tables to what
autovacuum keeps them at.

At each size the bench sends, one request at a time and round-robin over the series (so machine noise falls
on all of them alike), ``--requests`` GETs per series after ``--warmup`` untimed ones, and prints p50 and p99
with the ratio of p99 to the first size's:

- ``first page``: ``GET /jobs?limit=50``;
- ``next, deep``: following ``next`` links from 90 % of the way down the tenant's list (a chain of pages);
- ``status=completed``, ``status=failed``, ``owner=user-7``, ``name=pipeline-4``, ``tags=model-3``: filtered
  first pages (``limit=50``), whose total_count is a sum of counter rows;
- ``status+owner``: ``status=completed&owner=user-7``, two filtered columns, whose total_count counts the
  matches through an index (it grows with them);
- ``offset, deep`` (``--offset-requests``): ``offset`` at 90 % of the list, what EvalHub's clients would send,
  for contrast: it still skips index entries one by one.

    .venv/bin/python bench/list_scale.py [--sizes 1000,10000,50000,200000] [--requests 100] [--cpu-requests 40] [--warmup 10]

Prints figures and asserts nothing. docs/performance.md, "List scale (keyset paging)", has this machine's curve.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assay.http.list_cursor import encode  # noqa: E402
from assay.store import EmbeddedPostgres, ListPosition  # noqa: E402
from bench.orchestration import Hub, HubError, percentile  # noqa: E402
from tests.support.net import free_port  # noqa: E402

TENANT = "bench"
OTHERS = ("other-a", "other-b", "other-c")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
JOBS = "/api/v1/evaluations/jobs"

# Row i of the seed (0, 1, 2, ...): i % 5 == 4 goes to another tenant, the rest to TENANT, so N jobs of TENANT
# take 5N/4 rows, and created_at grows with i (the newest rows are the last ones seeded).
SEED = """
INSERT INTO evaluations (id, tenant, owner, name, request, plan, state, message, results, cancelled, tags,
                         experiment_id, created_at, updated_at, started_at, completed_at)
SELECT md5('list-scale-' || i)::uuid::text,
       CASE WHEN i %% 5 = 4 THEN (%(others)s::text[])[1 + (i / 5) %% 3] ELSE %(tenant)s END,
       'user-' || ((i / 5) %% 10),
       'pipeline-' || ((i / 7) %% 10),
       t.request || jsonb_build_object('name', 'pipeline-' || ((i / 7) %% 10)),
       t.plan,
       s.state,
       t.message,
       t.results,
       false,
       ARRAY['team-' || ((i / 3) %% 4), 'model-' || ((i / 11) %% 10)],
       CASE WHEN i %% 2 = 0 THEN 'exp-' || (i %% 50) END,
       %(t0)s + i * interval '1 second',
       %(t0)s + i * interval '1 second',
       %(t0)s + i * interval '1 second',
       %(t0)s + i * interval '1 second' + interval '30 seconds'
FROM generate_series(%(start)s, %(stop)s - 1) AS i
CROSS JOIN (SELECT request, plan, message, results FROM evaluations WHERE id = %(template)s) AS t
CROSS JOIN LATERAL (SELECT CASE WHEN i %% 100 < 90 THEN 'completed' WHEN i %% 100 < 96 THEN 'failed'
                                WHEN i %% 100 < 99 THEN 'cancelled' ELSE 'partially_failed' END AS state) AS s
"""
SEED_RUNS = """
INSERT INTO benchmark_runs (evaluation_id, idx, provider_id, benchmark_id, status, attempt, started_at,
                            completed_at, result, dispatched_attempt)
SELECT e.id, 0, r.provider_id, r.benchmark_id,
       CASE WHEN e.state = 'partially_failed' THEN 'failed' ELSE e.state END,
       1, e.started_at, e.completed_at, r.result, 1
FROM evaluations e
CROSS JOIN (SELECT provider_id, benchmark_id, result FROM benchmark_runs WHERE evaluation_id = %(template)s) r
WHERE e.id IN (SELECT md5('list-scale-' || i)::uuid::text FROM generate_series(%(start)s, %(stop)s - 1) AS i)
"""


def rows_for(size: int) -> int:
    """Rows to seed so that TENANT holds ``size`` jobs (rows i % 5 == 4 are the other tenants')."""
    quarters, rest = divmod(size, 4)
    return 5 * quarters + rest


def provider() -> dict[str, Any]:
    """A provider the local hub cannot run (no runtime.local): a job is accepted and fails at once."""
    return {
        "id": "remote",
        "name": "Remote only",
        "runtime": {"k8s": {"image": "example.invalid/adapter:1"}},
        "benchmarks": [
            {
                "id": "mmlu",
                "name": "MMLU",
                "category": "knowledge",
                "metrics": ["accuracy"],
                "primary_score": {"metric": "accuracy", "scale": {"min": 0, "max": 1}},
                "pass_criteria": {"threshold": 0.5},
            }
        ],
    }


@dataclass
class Series:
    name: str
    path: Callable[[], str]  # the next request's path and query
    samples: list[float] = field(default_factory=list)
    cpu: float = 0.0  # CPU seconds of the hub and its PostgreSQL per request (the --cpu-requests pass)
    totals: set[int] = field(default_factory=set)


def timed(client: httpx.Client, path: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise HubError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
    return elapsed, response.json()


def measure(
    client: httpx.Client, hub: Hub, database_url: str, size: int, args: argparse.Namespace
) -> list[Series]:
    with psycopg.connect(database_url) as conn:
        deep = conn.execute(
            "SELECT created_at, id FROM evaluations WHERE tenant = %s"
            " ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
            [TENANT, int(size * 0.9)],
        ).fetchone()
    assert deep is not None
    start_cursor = encode(ListPosition(deep[0], deep[1]))
    chain = {"href": f"{JOBS}?limit=50&cursor={start_cursor}"}

    def follow() -> str:
        return chain["href"]

    series = [
        Series("first page", lambda: f"{JOBS}?limit=50"),
        Series("next, deep", follow),
        Series("status=completed", lambda: f"{JOBS}?limit=50&status=completed"),
        Series("status=failed", lambda: f"{JOBS}?limit=50&status=failed"),
        Series("owner=user-7", lambda: f"{JOBS}?limit=50&owner=user-7"),
        Series("name=pipeline-4", lambda: f"{JOBS}?limit=50&name=pipeline-4"),
        Series("tags=model-3", lambda: f"{JOBS}?limit=50&tags=model-3"),
        Series("status+owner", lambda: f"{JOBS}?limit=50&status=completed&owner=user-7"),
    ]
    offset = Series("offset, deep", lambda: f"{JOBS}?limit=50&offset={int(size * 0.9)}")
    for round_number in range(args.warmup + args.requests):
        for one in series + ([offset] if round_number < args.warmup + args.offset_requests else []):
            elapsed, page = timed(client, one.path())
            if one is series[1]:  # the chain goes on from this page, and starts over at its end
                chain["href"] = page.get("next", {}).get("href") or f"{JOBS}?limit=50&cursor={start_cursor}"
            if round_number >= args.warmup:
                one.samples.append(elapsed)
                one.totals.add(int(page["total_count"]))
    # CPU per request, series by series: unlike wall time it hardly moves with what else the machine runs.
    for one in [*series, offset]:
        requests = args.cpu_requests if one is not offset else min(args.cpu_requests, args.offset_requests)
        before = hub.cpu_seconds()
        for _ in range(requests):
            _, page = timed(client, one.path())
            if one is series[1]:
                chain["href"] = page.get("next", {}).get("href") or f"{JOBS}?limit=50&cursor={start_cursor}"
        one.cpu = (hub.cpu_seconds() - before) / max(1, requests)
    return [*series, offset]


def seed(database_url: str, template: str, start: int, stop: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        step = 50_000  # a statement per 50k rows: bounded memory, one counter update per key and statement
        for low in range(start, stop, step):
            params = {
                "others": list(OTHERS),
                "tenant": TENANT,
                "t0": T0,
                "start": low,
                "stop": min(stop, low + step),
                "template": template,
            }
            conn.execute(SEED, params)
            conn.execute(SEED_RUNS, params)
        conn.execute("VACUUM ANALYZE evaluations")
        conn.execute("VACUUM ANALYZE benchmark_runs")
        conn.execute("VACUUM ANALYZE evaluation_facet_counts")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000,200000", help="jobs of the measured tenant")
    parser.add_argument("--requests", type=int, default=100, help="timed GETs per series and size")
    parser.add_argument("--offset-requests", type=int, default=20, help="timed deep-offset GETs per size")
    parser.add_argument("--cpu-requests", type=int, default=40, help="GETs per series for CPU per request")
    parser.add_argument("--warmup", type=int, default=10, help="untimed GETs per series first")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-list-scale-") as tmp_name:
        tmp = Path(tmp_name)
        postgres = EmbeddedPostgres(tmp / "pg" / "data")
        database_url = postgres.start()
        config = tmp / "config"
        (config / "providers").mkdir(parents=True)
        (config / "collections").mkdir()
        (config / "providers" / "remote.yaml").write_text(yaml.safe_dump(provider(), sort_keys=False))
        port = free_port()
        command = [sys.executable, "-m", "assay", "up", "--port", str(port), "--data-dir", str(tmp / "hub")]
        env = {**os.environ, "ASSAY_CONFIG_DIR": str(config), "DATABASE_URL": database_url}
        hub = Hub("assay", command, env, tmp, port, tmp / "hub" / "token")
        try:
            print(
                f"hub ready in {hub.wait_ready(120, provider='remote'):.2f} s on {hub.base_url}", flush=True
            )
            headers = {**hub.headers(), "X-Tenant": TENANT}
            with httpx.Client(base_url=hub.base_url, headers=headers, timeout=60) as client:
                created = client.post(
                    JOBS,
                    json={
                        "name": "template",
                        "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
                        "benchmarks": [{"id": "mmlu", "provider_id": "remote"}],
                        "tags": ["template"],
                    },
                )
                if created.status_code != 202:
                    raise HubError(f"template job: {created.status_code} {created.text[:300]}")
                template = created.json()["resource"]["id"]
                deadline = time.monotonic() + 60
                while client.get(f"{JOBS}/{template}").json()["status"]["state"] not in (
                    "failed",
                    "completed",
                ):
                    if time.monotonic() > deadline:
                        raise HubError("the template job did not finish within 60 s")
                    time.sleep(0.05)
                with psycopg.connect(database_url, autocommit=True) as conn:
                    # The template is the model for every row, not a row of the list.
                    conn.execute("UPDATE evaluations SET tenant = 'template' WHERE id = %s", [template])
                seeded = 0
                results: dict[int, list[Series]] = {}
                for size in sizes:
                    rows = rows_for(size)
                    took = seed(database_url, template, seeded, rows)
                    seeded = rows
                    print(
                        f"seeded {size} jobs of {TENANT} ({rows} rows with other tenants) in {took:.1f} s",
                        flush=True,
                    )
                    results[size] = measure(client, hub, database_url, size, args)
                    report(size, results[size], results[sizes[0]])
        finally:
            hub.stop()
            postgres.stop()
    print("\nsummary: p99 ms, p50 ms and hub+PostgreSQL CPU ms per request; (ratio to the first size)")
    for label, value in (
        ("p99", lambda one: percentile(one.samples, 0.99)),
        ("p50", lambda one: percentile(one.samples, 0.5)),
        ("cpu", lambda one: one.cpu),
    ):
        print(f"{label + ' ms':<20}" + "".join(f"{size:>18}" for size in sizes))
        for index, first in enumerate(results[sizes[0]]):
            base = value(first)
            cells = []
            for size in sizes:
                got = value(results[size][index])
                cells.append(f"{got * 1000:8.1f} ({got / base if base else float('nan'):4.2f}x)")
            print(f"{first.name:<20}" + "".join(f"{cell:>18}" for cell in cells))


def report(size: int, series: list[Series], first: list[Series]) -> None:
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{size} jobs; load average {load} (1/5/15 min): p99 moves with it, p50 less, CPU hardly")
    print(
        f"  {'series':<18} {'p50 ms':>8} {'p99 ms':>8} {'p99/first':>10} {'cpu ms':>8} {'cpu/first':>10} {'total_count':>12}"
    )
    for one, base in zip(series, first, strict=True):
        p50, p99 = percentile(one.samples, 0.5), percentile(one.samples, 0.99)
        ratio = p99 / percentile(base.samples, 0.99)
        cpu_ratio = one.cpu / base.cpu if base.cpu else float("nan")
        totals = ",".join(str(t) for t in sorted(one.totals))
        print(
            f"  {one.name:<18} {p50 * 1000:8.1f} {p99 * 1000:8.1f} {ratio:9.2f}x {one.cpu * 1000:8.1f}"
            f" {cpu_ratio:9.2f}x {totals:>12}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
