"""Cold start of the submit function: fresh process to first answered request, and its memory.

Starts a real PostgreSQL (the embedded one), prepares the schema once, then launches the
submit function N times exactly as Knative would (``uvicorn functions.submit.main:app``) and
times spawn -> first 200 on ``GET /api/v1/evaluations/providers``. Prints the median and worst
figures, the resident memory after the first request, and the ratio to a bare ``python -c pass``
start measured in the same run. Targets: under 1 s and under 120 MB.

    .venv/bin/python bench/submit_cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assay.settings import Settings  # noqa: E402
from assay.store import Database, EmbeddedPostgres, default_config_dir, migrate, sync_system_catalogue  # noqa: E402
from tests.support.net import free_port  # noqa: E402


async def prepare(url: str) -> None:
    await migrate(url)
    database = await Database.open(url)
    await sync_system_catalogue(database.system_catalogue, default_config_dir())
    await database.close()


def one_start(env: dict[str, str]) -> tuple[float, float]:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "functions.submit.main:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/evaluations/providers",
                    headers={"X-Tenant": "bench", "Authorization": f"Bearer {TOKEN}"},
                    timeout=2,
                )
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.perf_counter() - started > 30:
                raise RuntimeError("the submit function did not start")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        return elapsed, rss
    finally:
        proc.terminate()
        proc.wait(timeout=10)


TOKEN = "assay-bench-token"


def bare_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        url = server.start()
        try:
            asyncio.run(prepare(url))
            tokens = Path(tmp) / "tokens.yaml"  # the first request is authenticated, as a user's is
            digest = hashlib.sha256(TOKEN.encode()).hexdigest()
            tokens.write_text(f"tokens: [{{subject: bench, sha256: {digest}, tenants: {{'*': admin}}}}]\n")
            env = {
                **os.environ,
                "ASSAY_AUTH_MODE": "token",
                "ASSAY_AUTH_TOKEN_FILE": str(tokens),
                "DATABASE_URL": url,
                "ASSAY_CONFIG_RELOAD": "false",
                "ASSAY_LOG_LEVEL": "WARNING",
            }
            env.pop("ASSAY_MODE", None)
            Settings()  # fail early on a broken environment
            baseline = statistics.median(bare_python() for _ in range(args.runs))
            runs = [one_start(env) for _ in range(args.runs)]
        finally:
            server.stop()
    times = [t for t, _ in runs]
    rss = [m for _, m in runs]
    print(f"submit cold start over {args.runs} runs (spawn -> first answered GET /providers)")
    print(f"  median {statistics.median(times):.3f} s   worst {max(times):.3f} s   target < 1 s")
    print(
        f"  resident memory after first request: median {statistics.median(rss):.1f} MB, max {max(rss):.1f} MB   target < 120 MB"
    )
    print(
        f"  bare python start (baseline): {baseline:.3f} s   ratio {statistics.median(times) / baseline:.1f}x"
    )


if __name__ == "__main__":
    main()
