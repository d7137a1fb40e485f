"""Orchestration throughput and latency: EvalHub 1.0.2 and Assay running the same trivial local adapter.

Starts each hub in a temporary directory on a free loopback port with one provider, ``trivial``
(benchmark ``noop``, metric ``score``), whose local command runs ``bench/adapters/trivial.py`` with this
Python. Submits N one-benchmark evaluations over HTTP, at most C in flight, polls each job every
50 ms until it is terminal, and prints per hub: evaluations/s, p50 and p99 of submit -> terminal,
and how many did not complete; then the Assay/EvalHub ratios. Both hubs go through the same code;
only the start command and the configuration directory differ.

EvalHub comes from the PyPI wheel ``eval-hub-server==1.0.2`` (a Go binary), kept out of this venv::

    uv venv /tmp/evalhub-venv && uv pip install --python /tmp/evalhub-venv eval-hub-server==1.0.2
    .venv/bin/python bench/orchestration.py [--n 20] [--concurrency 4] [--only evalhub|assay]

The binary is taken from ``--evalhub-bin``, else ``EVALHUB_SERVER_BIN``, else ``eval-hub`` on PATH,
else ``/tmp/evalhub-venv/bin/eval-hub``. The adapter needs ``eval-hub-sdk[adapter]`` in this Python.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.checkout import compile_checkout  # noqa: E402
from tests.support.net import free_port  # noqa: E402

ADAPTERS = {
    # The SDK adapter: what users run, but ~1 s of Python imports per evaluation swamps the hubs.
    "sdk": REPO / "bench" / "adapters" / "trivial.py",
    # The same wire traffic from the standard library: what is timed is the hub.
    "wire": REPO / "bench" / "adapters" / "wire.py",
}
TERMINAL = frozenset({"completed", "failed", "cancelled", "partially_failed"})
HUBS = ("evalhub", "assay")
# EvalHub 1.0.2 hard-codes this (TMPDIR is ignored) and keeps each job's directory after it finishes.
EVALHUB_JOBS_DIR = Path("/tmp/evalhub-jobs")
# The SDK sends X-Tenant only when configured; both hubs accept it in local mode, and Assay may want it.
HEADERS = {"X-Tenant": "bench"}


# Builds a hub's start command and environment from its temporary directory and port.
Starter = Callable[[Path, int], tuple[list[str], dict[str, str]]]


class HubError(RuntimeError):
    """The hub could not be started or did not become ready."""


@dataclass
class Outcome:
    state: str  # a terminal state, "timeout", or "error: ..."
    latency: float  # seconds from just before POST to the poll that saw the terminal state


@dataclass
class HubRun:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    wall: float = 0.0
    job_ids: list[str] = field(default_factory=list)
    hub_cpu: float = 0.0  # CPU seconds of the hub and its database server during the timed run
    machine_cpu: float = 0.0  # CPU seconds of the whole machine during the timed run (adapters included)
    database_cpu: float = 0.0  # the part of hub_cpu spent by a separate database server


def provider(scale: bool, adapter: Path) -> dict[str, Any]:
    primary_score: dict[str, Any] = {"metric": "score"}
    if scale:
        primary_score["scale"] = {"min": 0, "max": 1}
    return {
        "id": "trivial",
        "name": "Trivial",
        "title": "Trivial",
        "description": "Reports one phase and score 1.0, then exits (bench/adapters/trivial.py).",
        "runtime": {"local": {"command": shlex.join([sys.executable, str(adapter)])}},
        "benchmarks": [
            {
                "id": "noop",
                "name": "No-op",
                "category": "bench",
                "metrics": ["score"],
                "primary_score": primary_score,
                "pass_criteria": {"threshold": 0.5},
            }
        ],
    }


def write_catalogue(config_dir: Path, scale: bool, adapter: Path) -> None:
    (config_dir / "providers").mkdir(parents=True)
    (config_dir / "collections").mkdir()
    (config_dir / "providers" / "trivial.yaml").write_text(
        yaml.safe_dump(provider(scale, adapter), sort_keys=False)
    )


def evalhub_binary(explicit: str | None) -> str:
    candidates = [explicit, os.environ.get("EVALHUB_SERVER_BIN"), shutil.which("eval-hub")]
    candidates.append("/tmp/evalhub-venv/bin/eval-hub")
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(Path(candidate).resolve())  # the hub starts in its own directory
    raise HubError("no eval-hub binary: install eval-hub-server==1.0.2 (see the module docstring)")


def evalhub_command(tmp: Path, port: int, binary: str, adapter: Path) -> tuple[list[str], dict[str, str]]:
    config_dir = tmp / "evalhub"
    write_catalogue(config_dir, scale=False, adapter=adapter)  # 1.0.2 has no primary_score.scale
    # An in-memory SQLite database, as `evalhub server start` configures it; no sidecar, so job.json's
    # callback_url is the server itself.
    server_config = {
        "service": {"port": port},
        "database": {"driver": "sqlite", "url": "file::eval_hub:?mode=memory&cache=shared"},
    }
    (config_dir / "config.yaml").write_text(yaml.safe_dump(server_config, sort_keys=False))
    return [binary, "-local", "-configdir", str(config_dir)], {**os.environ, "PORT": str(port)}


def assay_command(tmp: Path, port: int, adapter: Path) -> tuple[list[str], dict[str, str]]:
    config_dir = tmp / "config"
    write_catalogue(config_dir, scale=True, adapter=adapter)
    command = [sys.executable, "-m", "assay", "up", "--port", str(port), "--data-dir", str(tmp / "assay")]
    # The hub runs from its temporary directory: PYTHONPATH makes it this checkout's code, not whichever one the
    # interpreter has installed (so a copy of another commit can be measured with the same venv).
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return command, {**os.environ, "ASSAY_CONFIG_DIR": str(config_dir), "PYTHONPATH": python_path}


class Hub:
    """One hub process, started in its own session so that stopping it also stops the children in its group."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        cwd: Path,
        port: int,
        token_file: Path | None,
    ) -> None:
        self.name = name
        self._token_file = token_file
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def headers(self) -> dict[str, str]:
        """What every request carries: the tenant and, for Assay, the local hub's token as a user reads it
        (``assay token``: the file the hub writes at its first start)."""
        if self._token_file is None or not self._token_file.is_file():
            return dict(HEADERS)
        return {**HEADERS, "Authorization": f"Bearer {self._token_file.read_text().strip()}"}

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_ready(self, timeout: float, provider: str = "trivial") -> float:
        started = time.perf_counter()
        paths = ["/api/v1/health", f"/api/v1/evaluations/providers/{provider}"]
        with httpx.Client(base_url=self.base_url, timeout=2) as client:
            while paths:
                try:
                    if client.get(paths[0], headers=self.headers()).status_code == 200:
                        paths.pop(0)
                        continue
                except httpx.TransportError:
                    pass
                if self.proc.poll() is not None:
                    raise HubError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                if time.perf_counter() - started > timeout:
                    raise HubError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")
                time.sleep(0.01)  # finer than what it measures: assay up is ready in about 1 s
        return time.perf_counter() - started

    def cpu_seconds(self, *, database_only: bool = False) -> float:
        """CPU time of the hub process plus, for Assay, its embedded PostgreSQL: the postmaster started
        from the hub's directory and every backend it forked. Adapters are not counted for either hub.
        Exited backends are missed, so this slightly undercounts the database."""
        tick = os.sysconf("SC_CLK_TCK")
        marker = str(self.log_path.parent).encode()
        stats: dict[int, list[str]] = {}
        postmasters: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            stats[int(entry.name)] = fields
            if b"postgres" in cmdline and marker in cmdline:
                postmasters.add(int(entry.name))
        counted = {
            pid for pid, fields in stats.items() if pid in postmasters or int(fields[1]) in postmasters
        }
        if not database_only:
            counted.add(self.proc.pid)
        return sum((int(stats[pid][11]) + int(stats[pid][12])) / tick for pid in counted if pid in stats)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()


def job_body(index: int) -> dict[str, Any]:
    return {
        "name": f"orchestration-bench-{index}",
        "model": {"url": "http://127.0.0.1:9/v1", "name": "bench-model"},
        "benchmarks": [{"id": "noop", "provider_id": "trivial", "parameters": {}}],
    }


async def one_evaluation(
    client: httpx.AsyncClient, index: int, poll: float, job_timeout: float, job_ids: list[str]
) -> Outcome:
    started = time.perf_counter()
    try:
        created = await client.post("/api/v1/evaluations/jobs", json=job_body(index))
        if created.status_code // 100 != 2:
            return Outcome(f"error: POST {created.status_code} {created.text[:200]}", 0.0)
        job_id = created.json()["resource"]["id"]
        job_ids.append(job_id)
        while True:
            state = None
            response = await client.get(f"/api/v1/evaluations/jobs/{job_id}")
            if response.status_code == 200:
                state = response.json().get("status", {}).get("state")
            elapsed = time.perf_counter() - started
            if state in TERMINAL:
                return Outcome(str(state), elapsed)
            if elapsed > job_timeout:
                return Outcome("timeout", elapsed)
            await asyncio.sleep(poll)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return Outcome(f"error: {type(exc).__name__}: {exc}", time.perf_counter() - started)


async def drive(
    base_url: str, headers: dict[str, str], count: int, concurrency: int, poll: float, job_timeout: float
) -> HubRun:
    run = HubRun(name="")
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30, limits=limits) as client:

        async def gated(index: int) -> Outcome:
            async with gate:
                return await one_evaluation(client, index, poll, job_timeout, run.job_ids)

        started = time.perf_counter()
        run.outcomes = list(await asyncio.gather(*(gated(i) for i in range(count))))
        run.wall = time.perf_counter() - started
    return run


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far (user + nice + system + irq + softirq), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def measure(name: str, start: Starter, args: argparse.Namespace, leftovers: list[Path]) -> HubRun:
    """One timed round of ``name``. What it leaves on disk (its directory; EvalHub's job directories) is added to
    ``leftovers`` and removed after the last round: see :func:`remove_leftovers`."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    leftovers.append(tmp)
    port = free_port()
    command, env = start(tmp, port)
    hub = Hub(name, command, env, tmp, port, tmp / "assay" / "token" if name == "assay" else None)
    job_ids: list[str] = []
    try:
        ready = hub.wait_ready(args.ready_timeout)
        print(f"{name}: ready in {ready:.2f} s on {hub.base_url}", flush=True)
        if args.warmup:
            warmup = asyncio.run(
                drive(hub.base_url, hub.headers(), args.warmup, 1, args.poll_interval, args.job_timeout)
            )
            job_ids += warmup.job_ids
            if any(o.state != "completed" for o in warmup.outcomes):
                raise HubError(f"warm-up did not complete: {summarise(warmup)}\n{hub.log_tail(10)}")
        cpu_before, machine_before = hub.cpu_seconds(), machine_cpu_seconds()
        database_before = hub.cpu_seconds(database_only=True)
        run = asyncio.run(
            drive(
                hub.base_url,
                hub.headers(),
                args.n,
                args.concurrency,
                args.poll_interval,
                args.job_timeout,
            )
        )
        run.hub_cpu = hub.cpu_seconds() - cpu_before
        run.machine_cpu = machine_cpu_seconds() - machine_before
        run.database_cpu = hub.cpu_seconds(database_only=True) - database_before
        run.name = name
        job_ids += run.job_ids
        if any(o.state != "completed" for o in run.outcomes):
            print(f"{name}: not completed: {summarise(run)}\n{hub.log_tail(10)}", flush=True)
        return run
    finally:
        hub.stop()
        if name == "evalhub":
            leftovers.extend(EVALHUB_JOBS_DIR / job_id for job_id in job_ids)


def remove_leftovers(leftovers: list[Path]) -> None:
    """Remove the rounds' directories, once all rounds are measured. Removing them between rounds made the next
    round's hub pay for it: on ext4 without a journal (this machine's) a new inode is not taken from those freed in
    the last minute (six while their inode-table block is dirty), and each ``mkdir`` or file creation scans past
    every one of them (``recently_deleted`` in the kernel's ``find_inode_bit``); both hubs create a job's
    directories on each launch, so after a round's thousands of files were removed, the next round's hub spent up to
    half of its CPU in that scan (``perf record``; docs/performance.md)."""
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


def summarise(run: HubRun) -> str:
    counts = Counter(o.state[:160] for o in run.outcomes if o.state != "completed")
    return "; ".join(f"{count} x {state}" for state, count in counts.most_common())


def adapter_import_baseline(runs: int = 3) -> float:
    """Median seconds for a bare ``import evalhub.adapter`` process: the floor under every evaluation."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import evalhub.adapter"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def completed_latencies(run: HubRun) -> list[float]:
    return [o.latency for o in run.outcomes if o.state == "completed"]


def throughput(run: HubRun) -> float:
    """Completed evaluations per second of wall time from the first submit to the last terminal state."""
    return len(completed_latencies(run)) / run.wall


def report(run: HubRun) -> None:
    latencies = completed_latencies(run)
    print(f"{run.name}: {len(run.outcomes)} evaluations in {run.wall:.2f} s")
    print(f"  throughput {throughput(run):.2f} completed evaluations/s")
    if latencies:
        print(
            f"  submit -> completed: p50 {percentile(latencies, 0.5) * 1000:.0f} ms   "
            f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms   mean {statistics.fmean(latencies) * 1000:.0f} ms"
        )
    per_eval = 1000 / max(1, len(run.outcomes))
    print(
        f"  hub CPU: {run.hub_cpu * per_eval:.1f} ms per evaluation"
        f" ({run.database_cpu * per_eval:.1f} ms of it in the database server);"
        f" whole machine: {run.machine_cpu * per_eval:.0f} ms per evaluation (adapters and client included)"
    )
    print(f"  failed (not completed): {len(run.outcomes) - len(latencies)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="evaluations per hub and round")
    parser.add_argument("--concurrency", type=int, default=4, help="evaluations in flight at once")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating which hub goes first")
    parser.add_argument("--adapter", choices=sorted(ADAPTERS), default="wire", help="which trivial adapter")
    parser.add_argument("--only", choices=HUBS, help="measure one hub only")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between GETs of a job")
    parser.add_argument("--warmup", type=int, default=1, help="untimed evaluations run first on each hub")
    parser.add_argument("--job-timeout", type=float, default=120.0, help="give up on one job after this")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for a hub")
    parser.add_argument("--evalhub-bin", help="path of the eval-hub binary (eval-hub-server 1.0.2)")
    args = parser.parse_args()
    compile_checkout()

    adapter = ADAPTERS[args.adapter]
    starters: dict[str, Starter] = {
        "evalhub": lambda tmp, port: evalhub_command(tmp, port, evalhub_binary(args.evalhub_bin), adapter),
        "assay": lambda tmp, port: assay_command(tmp, port, adapter),
    }
    print(
        f"orchestration bench: {args.n} one-benchmark evaluations per hub and round, {args.rounds} rounds, "
        f"{args.concurrency} in flight, poll every {args.poll_interval * 1000:.0f} ms, "
        f"adapter {adapter.relative_to(REPO)} ({sys.executable})"
    )
    runs: dict[str, list[HubRun]] = {}
    broken: list[str] = []
    order = [args.only] if args.only else list(HUBS)
    leftovers: list[Path] = []
    try:
        for round_number in range(args.rounds):
            # Alternate the order so that drift in machine load does not favour one hub.
            for name in order if round_number % 2 == 0 else list(reversed(order)):
                try:
                    run = measure(name, starters[name], args, leftovers)
                except HubError as exc:
                    print(f"{name}: could not run: {exc}", flush=True)
                    broken.append(name)
                    continue
                print(f"round {round_number + 1}:", end=" ")
                report(run)
                runs.setdefault(name, []).append(run)
    finally:
        remove_leftovers(leftovers)
    if adapter == ADAPTERS["sdk"]:
        print(
            f"context: a bare `import evalhub.adapter` process takes {adapter_import_baseline():.2f} s here "
            f"({os.cpu_count()} CPUs); every evaluation pays it once"
        )
    medians: dict[str, tuple[float, float, float, float]] = {}
    for name, hub_runs in runs.items():
        latencies = [x for run in hub_runs for x in completed_latencies(run)]
        medians[name] = (
            statistics.median(throughput(run) for run in hub_runs),
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
            statistics.median(run.hub_cpu / max(1, len(run.outcomes)) for run in hub_runs),
        )
        rate, p50, p99, cpu = medians[name]
        print(
            f"{name} (all rounds): median {rate:.2f} evaluations/s, p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, hub CPU {cpu * 1000:.1f} ms per evaluation"
        )
    if "evalhub" in medians and "assay" in medians:
        (e_rate, e_p50, e_p99, e_cpu), (a_rate, a_p50, a_p99, a_cpu) = medians["evalhub"], medians["assay"]
        print(
            f"Assay/EvalHub: throughput {a_rate / e_rate:.2f}x (higher is better)   "
            f"p50 latency {a_p50 / e_p50:.2f}x   p99 latency {a_p99 / e_p99:.2f}x (lower is better)   "
            f"hub CPU {a_cpu / e_cpu:.2f}x"
        )
    if broken or any(len(completed_latencies(r)) < len(r.outcomes) for rs in runs.values() for r in rs):
        sys.exit(1)


if __name__ == "__main__":
    main()
