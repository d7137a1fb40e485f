"""Hub CPU and database statements per evaluation of two checkouts of Assay (or of EvalHub and Assay), side by side.

On a shared two-core machine the same tree's hub CPU per evaluation moves by 20-40 % between back-to-back runs of
``bench/orchestration.py`` (docs/performance.md). This bench starts both hubs at once, one per checkout, and
alternates rounds of N wire-adapter evaluations between them (the order flips every round), so that both meet the
same weather; it prints each hub's per-round figures, their medians and the median of the per-round ratios
CHANGED / BASE. Then, for each hub, it counts the SQL statements one evaluation costs (``log_statement = all`` on
its embedded PostgreSQL for one more round), by kind.

    .venv/bin/python bench/hub_ab.py BASE [CHANGED] [--rounds 12] [--n 60] [--concurrency 4]
    .venv/bin/python bench/hub_ab.py evalhub --evalhub-bin .venv/bin/eval-hub-server

BASE and CHANGED are checkout directories or git revisions of this repository (a revision is checked out into a
temporary worktree, removed afterwards); CHANGED defaults to this checkout. BASE ``evalhub`` is EvalHub 1.0.2 as
``bench/orchestration.py`` runs it (its binary found the same way; its job directories removed afterwards), whose
statements are not counted. The hubs' directories go to /dev/shm
when it exists (``--dir`` to choose): on a journal-less ext4 a burst of removed files slows every file created
after it for minutes, which would land on whichever hub ran then.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.checkout import compile_checkout  # noqa: E402
from bench.orchestration import (  # noqa: E402
    ADAPTERS,
    EVALHUB_JOBS_DIR,
    Hub,
    HubRun,
    assay_command,
    drive,
    evalhub_binary,
    evalhub_command,
    remove_leftovers,
)
from tests.support.net import free_port  # noqa: E402


def checkout(spec: str, worktrees: list[Path]) -> Path | None:
    """A checkout directory as given, or a temporary worktree of the revision ``spec``; None for EvalHub."""
    if spec == "evalhub":
        return None
    if Path(spec).is_dir():
        return Path(spec).resolve()
    where = Path(tempfile.mkdtemp(prefix="hub-ab-tree-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), spec], check=True)
    worktrees.append(where)
    return where


def start(tree: Path | None, root: Path, name: str, evalhub: str | None) -> Hub:
    tmp = Path(tempfile.mkdtemp(prefix=f"hub-ab-{name}-", dir=root))
    port = free_port()
    if tree is None:
        command, env = evalhub_command(tmp, port, evalhub_binary(evalhub), ADAPTERS["wire"])
        return Hub(name, command, env, tmp, port, None)
    compile_checkout(tree)
    command, env = assay_command(tmp, port, ADAPTERS["wire"])
    env["PYTHONPATH"] = str(tree)  # this hub runs that checkout's code
    return Hub(name, command, env, tmp, port, tmp / "assay" / "token")


def evaluations(hub: Hub, count: int, concurrency: int, job_ids: list[str] | None = None) -> HubRun:
    run = asyncio.run(drive(hub.base_url, hub.headers(), count, concurrency, 0.05, 60))
    if job_ids is not None:
        job_ids += run.job_ids
    failed = [outcome.state for outcome in run.outcomes if outcome.state != "completed"]
    if failed:
        raise SystemExit(f"{hub.name}: {len(failed)} evaluations did not complete: {failed[:3]}")
    return run


def statements(hub: Hub, count: int, concurrency: int) -> Counter[str]:
    """Statements the embedded PostgreSQL logged while ``count`` evaluations ran, by their first 48 characters."""
    data = hub.log_path.parent / "assay" / "postgres"
    with psycopg.connect(host=str(data), dbname="postgres", user="postgres", autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(1)
    logs = [path for path in data.rglob("*") if path.is_file() and "log" in path.name]
    sizes = {path: path.stat().st_size for path in logs}
    evaluations(hub, count, concurrency)
    time.sleep(2)  # the publisher's last marks
    kinds: Counter[str] = Counter()
    for path in logs:
        with path.open("rb") as log:
            log.seek(sizes[path])
            for line in log.read().decode(errors="replace").splitlines():
                found = re.search(r"LOG:\s+(?:statement|execute [^:]*):\s*(.*)", line)
                if found:
                    kinds[found.group(1)[:48]] += 1
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base")
    parser.add_argument("changed", nargs="?", default=str(REPO))
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--n", type=int, default=60, help="evaluations per round")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    parser.add_argument(
        "--evalhub-bin", help="path of the eval-hub binary (eval-hub-server 1.0.2), for BASE evalhub"
    )
    args = parser.parse_args()
    worktrees: list[Path] = []
    hubs: list[Hub] = []
    evalhub_jobs: list[str] = []  # EvalHub 1.0.2 keeps each job's directory under /tmp/evalhub-jobs
    root = Path(tempfile.mkdtemp(prefix="hub-ab-", dir=args.dir))
    try:
        trees = {"base": checkout(args.base, worktrees), "changed": checkout(args.changed, worktrees)}
        hubs = [start(tree, root, name, args.evalhub_bin) for name, tree in trees.items()]
        jobs = {hub.name: evalhub_jobs if trees[hub.name] is None else None for hub in hubs}
        for hub in hubs:
            hub.wait_ready(120)
            evaluations(hub, 40, args.concurrency, jobs[hub.name])  # warm: the fork server, the pool
        cpu: dict[str, list[float]] = {hub.name: [] for hub in hubs}
        database: dict[str, list[float]] = {hub.name: [] for hub in hubs}
        for number in range(args.rounds):
            for hub in hubs if number % 2 == 0 else hubs[::-1]:
                total, db = hub.cpu_seconds(), hub.cpu_seconds(database_only=True)
                evaluations(hub, args.n, args.concurrency, jobs[hub.name])
                cpu[hub.name].append(1000 * (hub.cpu_seconds() - total) / args.n)
                database[hub.name].append(1000 * (hub.cpu_seconds(database_only=True) - db) / args.n)
        for name, tree in trees.items():
            print(
                f"{name} ({tree or 'EvalHub 1.0.2'}): hub CPU per evaluation, median {statistics.median(cpu[name]):.2f} ms "
                f"({statistics.median(database[name]):.2f} ms of it PostgreSQL's); rounds: "
                + " ".join(f"{value:.1f}" for value in cpu[name])
            )
        ratios = [changed / base for base, changed in zip(cpu["base"], cpu["changed"], strict=True)]
        print(
            f"changed / base, per round: median {statistics.median(ratios):.3f} ("
            + " ".join(f"{ratio:.2f}" for ratio in ratios)
            + ")"
        )
        for hub in hubs:
            if trees[hub.name] is None:
                continue  # EvalHub's SQLite is inside its process
            kinds = statements(hub, args.n, args.concurrency)
            print(f"{hub.name}: {sum(kinds.values()) / args.n:.1f} statements per evaluation")
            for kind, count in kinds.most_common(12):
                print(f"  {count / args.n:5.2f}  {kind}")
    finally:
        for hub in hubs:
            hub.stop()
        remove_leftovers([root, *(EVALHUB_JOBS_DIR / job_id for job_id in evalhub_jobs)])
        for where in worktrees:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)], check=False)


if __name__ == "__main__":
    main()
