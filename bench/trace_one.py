"""Where one evaluation's time goes: its OpenTelemetry trace, as a tree of spans with their durations.

Starts ``assay up`` (as ``bench/orchestration.py`` does: a temporary directory, a free port, the one-benchmark
provider ``trivial``) with tracing configured the way an operator would, ``OTEL_EXPORTER_OTLP_ENDPOINT`` at a
collector, here a stand-in on loopback that receives OTLP/HTTP protobuf (``tests/support/otlp.py``). Runs
``--warm`` evaluations first (the first one pays for connections and lazy imports), then one more whose
``POST /jobs`` carries a ``traceparent`` of the bench's own, and prints that trace: every span of the hub
(service ``assay``) and of the local sidecar (``assay-sidecar``, its own process), each with its start after
the submit and its duration, and the client's submit -> terminal time beside it. Asserts nothing::

    .venv/bin/python bench/trace_one.py [--adapter wire|sdk] [--warm 2]

``--cost ROUNDS`` measures what tracing costs instead: ``bench/orchestration.py``'s run (``--n`` evaluations,
4 in flight) on a hub without tracing and on one exporting every span to the stand-in, alternating, and
prints the hub's CPU per evaluation (hub process and its PostgreSQL; the sidecar's own spans not counted).
Other hub settings come from the environment (``ASSAY_LOCAL_WARM_START=false`` starts adapters cold)::

    .venv/bin/python bench/trace_one.py --cost 3 [--n 20]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import orchestration  # noqa: E402

from tests.support.net import free_port  # noqa: E402
from tests.support.otlp import ReceivedSpan, otlp_collector, tree  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402


def run_one(client: httpx.Client, headers: dict[str, str], index: int) -> tuple[str, float]:
    started = time.perf_counter()
    response = client.post("/api/v1/evaluations/jobs", json=orchestration.job_body(index), headers=headers)
    response.raise_for_status()
    job_id = response.json()["resource"]["id"]

    def terminal() -> str | None:
        state = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()["status"]["state"]
        return str(state) if state in orchestration.TERMINAL else None

    state = wait_for(terminal, timeout=60, interval=0.01)
    return state, time.perf_counter() - started


def cost(args: argparse.Namespace) -> None:
    """Hub CPU per evaluation with and without tracing, through bench/orchestration.py's measure()."""
    adapter = orchestration.ADAPTERS[args.adapter]
    options = argparse.Namespace(
        n=args.n, concurrency=4, poll_interval=0.05, warmup=1, job_timeout=120.0, ready_timeout=120.0
    )
    results: dict[str, list[float]] = {"off": [], "on": []}
    with otlp_collector() as collector:

        def start(traced: bool) -> orchestration.Starter:
            def command(tmp: Path, port: int) -> tuple[list[str], dict[str, str]]:
                argv, env = orchestration.assay_command(tmp, port, adapter)
                if traced:
                    env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
                return argv, env

            return command

        for round_number in range(args.cost):
            order = ("off", "on") if round_number % 2 == 0 else ("on", "off")
            for mode in order:
                run = orchestration.measure("assay", start(mode == "on"), options)
                per = run.hub_cpu / max(1, len(run.outcomes))
                results[mode].append(per)
                print(
                    f"round {round_number + 1}, tracing {mode}: {orchestration.throughput(run):.2f} evaluations/s,"
                    f" hub CPU {per * 1000:.1f} ms per evaluation",
                    flush=True,
                )
        received = len(collector.spans())
    off, on = (statistics.median(results[m]) for m in ("off", "on"))
    print(
        f"median hub CPU per evaluation: off {off * 1000:.1f} ms, on {on * 1000:.1f} ms ({on / off:.2f}x); "
        f"{received} spans received"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--adapter", choices=sorted(orchestration.ADAPTERS), default="wire")
    parser.add_argument("--warm", type=int, default=2, help="evaluations run before the one traced")
    parser.add_argument("--cost", type=int, default=0, help="rounds of the tracing-cost measurement instead")
    parser.add_argument("--n", type=int, default=20, help="evaluations per hub and round (--cost)")
    args = parser.parse_args()
    if args.cost:
        cost(args)
        return
    with otlp_collector() as collector, tempfile.TemporaryDirectory(prefix="assay-trace-") as scratch:
        tmp = Path(scratch)
        port = free_port()
        command, env = orchestration.assay_command(tmp, port, orchestration.ADAPTERS[args.adapter])
        env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        hub = orchestration.Hub("assay", command, env, tmp, port, tmp / "assay" / "token")
        try:
            hub.wait_ready(120)
            with httpx.Client(base_url=hub.base_url, headers=hub.headers(), timeout=30) as client:
                for index in range(args.warm):
                    run_one(client, {}, index)
                trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
                traceparent = f"00-{trace_id}-{client_span}-01"
                state, seconds = run_one(client, {"traceparent": traceparent}, args.warm)

            def settled() -> list[ReceivedSpan] | None:
                spans = collector.spans(trace_id)
                names = [s.name for s in spans]
                done = {"aggregate evaluation.finished", "adapter run"} <= set(names)  # the run ends last
                return spans if done and names.count("sidecar event") == names.count("callback") else None

            spans = wait_for(settled, timeout=30)
        finally:
            hub.stop()
    print(f"adapter {args.adapter}, after {args.warm} warm-up evaluation(s); trace {trace_id}")
    print(f"client: POST /jobs -> {state} seen in {seconds * 1000:.1f} ms (polling every 10 ms)\n")
    print(f"{'span':<48} {'service':<15} {'start':>11} {'duration':>12}")
    print(tree(spans))
    first = min(s.start_ns for s in spans)
    last = max(s.end_ns for s in spans)
    print(f"\ntrace: {len(spans)} spans over {(last - first) / 1e6:.1f} ms")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
