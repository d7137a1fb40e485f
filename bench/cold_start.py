"""Import cost of every function: modules loaded, import time and resident memory, each in a fresh interpreter.

Knative starts a function's container from nothing when it scales from zero, so what ``import
functions.<name>.main`` loads is paid on every cold start. For each function this spawns a new Python ``--runs``
times, imports the module (as ``uvicorn functions.<name>.main:app`` would; nothing connects to a database),
and prints the medians of: modules in ``sys.modules``, the import's wall time, the process's resident memory
after it, and which heavy packages came in; then the ratios to the submit function and the largest imports
by cumulative time (``python -X importtime``). It makes no assertion: ``tests/test_cold_start_path.py`` holds
what each function may not import. Seconds depend on the machine's load, module counts and RSS much less.

    .venv/bin/python bench/cold_start.py [--runs 5] [--only dispatch,submit] [--top 8]

Cluster mode's default authenticator (``kubernetes``) needs a service account, so the functions are imported
with ``ASSAY_AUTH_MODE=token`` unless ``--auth-mode`` says otherwise (``kubernetes`` adds the kubernetes client
to submit and callback). The figures from one run are in ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.checkout import compile_checkout  # noqa: E402

FUNCTIONS = ("submit", "callback", "dispatch", "aggregate", "sweep", "tenants")
HEAVY = (
    "fastapi",
    "uvicorn",
    "starlette",
    "pydantic",
    "psycopg",
    "httpx",
    "cloudevents",
    "functions_framework",
    "yaml",
    "kubernetes",
    "mlflow",
    "oras",
    "opentelemetry",
)

# Runs in the child: import the function, then report what it cost.
_PROBE = """
import json, sys, time
started = time.perf_counter()
import importlib
importlib.import_module(sys.argv[1])
elapsed = time.perf_counter() - started
rss_kib = 0
with open("/proc/self/status") as status:
    for line in status:
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
print(json.dumps({"seconds": elapsed, "rss_kib": rss_kib, "modules": sorted(sys.modules)}))
"""


@dataclass
class Sample:
    seconds: float
    rss_mib: float
    modules: list[str]
    importtime: str


def one_import(target: str, env: dict[str, str]) -> Sample:
    args = [sys.executable, "-X", "importtime", "-c", _PROBE, target]
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"importing {target} failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Sample(report["seconds"], report["rss_kib"] / 1024, report["modules"], done.stderr)


def largest_imports(importtime: str, top: int) -> list[tuple[str, int]]:
    """The top-level packages with the largest cumulative import time (µs) in one ``-X importtime`` log."""
    found: dict[str, int] = {}
    for line in importtime.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        if parts[2].startswith("  "):  # nested: imported by another module of the log
            continue
        name = parts[2].strip()
        found[name] = max(found.get(name, 0), int(parts[1]))
    return sorted(found.items(), key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default=",".join(FUNCTIONS), help="comma-separated function names")
    parser.add_argument("--top", type=int, default=6, help="largest imports to list per function")
    parser.add_argument("--auth-mode", default="token")
    options = parser.parse_args()
    compile_checkout()
    names = [n for n in options.only.split(",") if n]
    unknown = set(names) - set(FUNCTIONS)
    if unknown:
        parser.error(f"unknown functions: {sorted(unknown)}; known: {', '.join(FUNCTIONS)}")
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://unused/unused",  # nothing connects at import
        "ASSAY_AUTH_MODE": options.auth_mode,
        "ASSAY_RUNTIME": "local",
        "ASSAY_LOG_LEVEL": "WARNING",
    }
    env.pop("ASSAY_MODE", None)

    load = os.getloadavg()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    bare = [one_import("json", env) for _ in range(options.runs)]
    baseline_modules = statistics.median(len(s.modules) for s in bare)
    baseline_rss = statistics.median(s.rss_mib for s in bare)
    print(f"bare interpreter (import json): {baseline_modules:.0f} modules, {baseline_rss:.1f} MiB RSS\n")

    results: dict[str, tuple[float, float, float, Sample]] = {}
    for name in names:
        samples = [one_import(f"functions.{name}.main", env) for _ in range(options.runs)]
        modules = statistics.median(len(s.modules) for s in samples)
        seconds = statistics.median(s.seconds for s in samples)
        rss = statistics.median(s.rss_mib for s in samples)
        results[name] = (modules, seconds, rss, samples[0])

    reference = results.get("submit")
    header = f"{'function':<10} {'modules':>7} {'import s':>9} {'RSS MiB':>8}"
    if reference is not None:
        header += f" {'modules/submit':>14} {'time/submit':>11} {'RSS/submit':>10}"
    print(header + "  heavy packages loaded")
    for name, (modules, seconds, rss, sample) in results.items():
        row = f"{name:<10} {modules:>7.0f} {seconds:>9.3f} {rss:>8.1f}"
        if reference is not None:
            row += f" {modules / reference[0]:>14.2f} {seconds / reference[1]:>11.2f} {rss / reference[2]:>10.2f}"
        loaded = sorted({m.split(".")[0] for m in sample.modules} & set(HEAVY))
        print(f"{row}  {' '.join(loaded)}")
    if options.top:
        print(f"\nlargest top-level imports (cumulative ms, first run of {options.runs}):")
        for name, (_, _, _, sample) in results.items():
            parts = ", ".join(
                f"{module} {micros / 1000:.0f}"
                for module, micros in largest_imports(sample.importtime, options.top)
            )
            print(f"  {name:<10} {parts}")


if __name__ == "__main__":
    main()
