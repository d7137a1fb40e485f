"""Where one evaluation's time goes: its OpenTelemetry trace, as a tree of spans with their durations.

Starts ``assay up`` (as ``bench/orchestration.py`` does: a temporary directory, a free port, the one-benchmark
provider ``trivial``) with tracing configured the way an operator would, ``OTEL_EXPORTER_OTLP_ENDPOINT`` at a
collector, here a stand-in on loopback that receives OTLP/HTTP protobuf (``tests/support/otlp.py``). Runs
``--warm`` evaluations first (the first one pays for connections and lazy imports), then one more whose
``POST /jobs`` carries a ``traceparent`` of the bench's own, and prints that trace: every span of the hub
(service ``assay``) and of the local sidecar (``assay-sidecar``, its own process), each with its start after
the submit and its duration, and the client's submit -> terminal time beside it. Asserts nothing::

    .venv/bin/python bench/trace_one.py [--adapter wire|sdk] [--warm 2]
"""

from __future__ import annotations

import argparse
import os
import secrets
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", choices=sorted(orchestration.ADAPTERS), default="wire")
    parser.add_argument("--warm", type=int, default=2, help="evaluations run before the one traced")
    args = parser.parse_args()
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
                done = "aggregate evaluation.finished" in names
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
