"""Hub CPU per HTTP request, Assay beside EvalHub 1.0.2: the floor every request pays, and a job poll.

``bench/orchestration.py`` and ``bench/hub_ab.py`` measure a whole evaluation; this one isolates what one request
costs each hub. Both hubs start as those benches start them (Assay with its embedded PostgreSQL, EvalHub with
in-memory SQLite), each runs three wire-bench evaluations, then rounds alternate between the hubs (the order flips
every round): ``--n`` requests, four at a time, of each kind, and the hub's CPU (Assay's with its PostgreSQL) is
divided by the count. Kinds: ``poll`` (``GET /api/v1/evaluations/jobs/{id}`` of a finished job: authentication,
one statement for Assay), ``health`` (``GET /api/v1/health``: a database ping on both) and, for Assay only,
``healthz`` (liveness: no credential, no database; the stack's floor). Prints per-round figures and medians::

    .venv/bin/python bench/request_cost.py --evalhub-bin .venv/bin/eval-hub-server [--rounds 6] [--n 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.hub_ab import evaluations, start  # noqa: E402
from bench.orchestration import EVALHUB_JOBS_DIR, Hub, remove_leftovers  # noqa: E402


async def hammer(hub: Hub, path: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=hub.base_url, headers=hub.headers(), timeout=30) as client:

        async def worker(share: int) -> None:
            for _ in range(share):
                response = await client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"{hub.name} {path}: {response.status_code} {response.text[:200]}")

        await asyncio.gather(*(worker(count // 4) for _ in range(4)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--evalhub-bin", help="EvalHub 1.0.2's server binary (eval-hub-server)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--n", type=int, default=1000, help="requests of each kind per hub and round")
    args = parser.parse_args()
    where = Path(
        tempfile.mkdtemp(prefix="request-cost-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    )
    evalhub_jobs: list[str] = []  # EvalHub 1.0.2 keeps each job's directory under /tmp/evalhub-jobs
    hubs: list[Hub] = []
    figures: dict[tuple[str, str], list[float]] = {}
    try:
        # Started as bench/hub_ab.py starts them: this checkout's Assay, EvalHub 1.0.2.
        hubs = [start(REPO, where, "assay", None), start(None, where, "evalhub", args.evalhub_bin)]
        assay, evalhub = hubs
        paths = {}
        for hub in hubs:
            hub.wait_ready(120)
            run = evaluations(hub, 3, 1, evalhub_jobs if hub is evalhub else None)
            kinds = {"poll": f"/api/v1/evaluations/jobs/{run.job_ids[-1]}", "health": "/api/v1/health"}
            if hub is assay:
                kinds["healthz"] = "/healthz"
            paths[hub.name] = kinds
        for number in range(args.rounds):
            for hub in (assay, evalhub) if number % 2 == 0 else (evalhub, assay):
                for kind, path in paths[hub.name].items():
                    before = hub.cpu_seconds()
                    asyncio.run(hammer(hub, path, args.n))
                    figures.setdefault((hub.name, kind), []).append(
                        (hub.cpu_seconds() - before) / args.n * 1e6
                    )
        for (name, kind), values in figures.items():
            shown = " ".join(f"{v:.0f}" for v in values)
            print(
                f"{name:8} {kind:8} median {statistics.median(values):4.0f} µs of hub CPU per request; rounds: {shown}"
            )
    finally:
        for hub in hubs:
            hub.stop()
        remove_leftovers([where, *(EVALHUB_JOBS_DIR / job_id for job_id in evalhub_jobs)])


if __name__ == "__main__":
    main()
