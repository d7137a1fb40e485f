"""Start-up: spawn -> ready of the local hub, EvalHub 1.0.2 beside it (issue 20, goal 3).

For each hub and each of ``--runs`` rounds: start it on an empty data directory (Assay: ``initdb`` and the
schema; EvalHub: its in-memory SQLite) and time spawn -> the first 200 of ``GET /api/v1/health`` and then of
the catalogue's provider (a request through authentication and the database); stop it; start it again on the
same directory and time it again. The hubs are started exactly as ``bench/orchestration.py`` starts them
(``assay up``, ``eval-hub-server -local``), one at a time, alternating which goes first.

    .venv/bin/python bench/startup.py [--runs 5] [--evalhub-bin PATH] [--only assay]

Prints the medians and the ratio Assay / EvalHub; asserts nothing. docs/performance.md, "Start-up", has this
machine's figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.checkout import compile_checkout  # noqa: E402
from bench.orchestration import (  # noqa: E402
    ADAPTERS,
    Hub,
    assay_command,
    evalhub_binary,
    evalhub_command,
)
from tests.support.net import free_port  # noqa: E402


def start_twice(name: str, tmp: Path, binary: str | None, timeout: float) -> tuple[float, float]:
    """Seconds to ready on the empty directory ``tmp``, then again on what the first start left there."""
    port = free_port()
    if name == "assay":
        command, env = assay_command(tmp, port, ADAPTERS["wire"])
        token: Path | None = tmp / "assay" / "token"
    else:
        assert binary is not None
        command, env = evalhub_command(tmp, port, binary, ADAPTERS["wire"])
        token = None
    seconds = []
    for _ in range(2):
        hub = Hub(name, command, env, tmp, port, token)
        try:
            seconds.append(hub.wait_ready(timeout))
        finally:
            hub.stop()
    return seconds[0], seconds[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="rounds per hub (each: an empty and a later start)"
    )
    parser.add_argument("--only", choices=("evalhub", "assay"), help="measure one hub only")
    parser.add_argument("--evalhub-bin", help="path of the eval-hub binary (eval-hub-server 1.0.2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a hub")
    args = parser.parse_args()
    compile_checkout()
    names = [args.only] if args.only else ["evalhub", "assay"]
    binary = evalhub_binary(args.evalhub_bin) if "evalhub" in names else None
    figures: dict[str, dict[str, list[float]]] = {name: {"empty": [], "existing": []} for name in names}
    for round_ in range(args.runs):
        for name in names if round_ % 2 == 0 else list(reversed(names)):
            with tempfile.TemporaryDirectory(prefix=f"bench-startup-{name}-") as folder:
                empty, existing = start_twice(name, Path(folder), binary, args.timeout)
            figures[name]["empty"].append(empty)
            figures[name]["existing"].append(existing)
            print(f"round {round_ + 1}: {name}: empty data dir {empty:.2f} s, existing {existing:.2f} s")
    medians = {
        name: {kind: statistics.median(values) for kind, values in f.items()} for name, f in figures.items()
    }
    for name, m in medians.items():
        print(
            f"{name} (median of {args.runs}): empty data dir {m['empty']:.2f} s, existing {m['existing']:.2f} s"
        )
    if len(names) == 2:
        e, a = medians["evalhub"], medians["assay"]
        print(
            f"Assay/EvalHub: empty data dir {a['empty'] / e['empty']:.1f}x, existing {a['existing'] / e['existing']:.1f}x"
            " (lower is better)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
