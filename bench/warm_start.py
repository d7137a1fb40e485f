"""A built-in adapter's first benchmark of a job, with and without the local runtime's warm start.

Starts the bundled model server (Gemma 3 270M on llama.cpp) once, then for each mode an Assay hub
(``assay up`` with the shipped catalogue, ``ASSAY_LOCAL_WARM_START`` true or false) and submits ``--jobs``
one-benchmark jobs one after the other (default: lm-evaluation-harness ``assay_arithmetic``, 2 examples),
polling each every 50 ms until it is terminal. Prints each job's submit -> completed time and, per mode, the
first job (which, warm, also starts the fork server and preloads the framework) and the median of the others;
then the warm/cold ratio. Both hubs share one model response cache (``ASSAY_MODEL_CACHE_DIR``): the cold
mode's first job asks the model, every other job is answered from the cache, so what differs between the jobs
is the adapter's start.

    .venv/bin/python bench/warm_start.py [--jobs 5] [--provider lm_evaluation_harness]
        [--benchmark assay_arithmetic] [--num-examples 2] [--only warm|cold]

Needs the adapter's environment built (``assay-adapter --build lm_eval``) and the ``demo`` extra (the model).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assay.demo import ModelServer  # noqa: E402
from bench.orchestration import TERMINAL, Hub, HubError  # noqa: E402
from tests.support.net import free_port  # noqa: E402

# Cold first: its first job fills the shared model response cache, so that every later job, warm ones included,
# is answered from it and what differs is the adapter's start.
MODES = ("cold", "warm")


def one_job(client: httpx.Client, body: dict[str, Any], timeout: float) -> tuple[float, str, dict[str, Any]]:
    started = time.perf_counter()
    created = client.post("/api/v1/evaluations/jobs", json=body)
    if created.status_code != 202:
        raise HubError(f"POST {created.status_code}: {created.text[:300]}")
    job_id = created.json()["resource"]["id"]
    while True:
        job = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()
        state = job["status"]["state"]
        if state in TERMINAL:
            return time.perf_counter() - started, str(state), job
        if time.perf_counter() - started > timeout:
            return time.perf_counter() - started, "timeout", job
        time.sleep(0.05)


def measure(mode: str, model: ModelServer, cache: Path, args: argparse.Namespace) -> list[float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-warm-{mode}-") as name:
        tmp = Path(name)
        port = free_port()
        command = [sys.executable, "-m", "assay", "up", "--port", str(port), "--data-dir", str(tmp / "assay")]
        env = {
            **os.environ,
            "ASSAY_CONFIG_DIR": str(REPO / "config"),
            "ASSAY_LOCAL_WARM_START": "true" if mode == "warm" else "false",
            "ASSAY_MODEL_CACHE_DIR": str(cache),
        }
        hub = Hub("assay", command, env, tmp, port, tmp / "assay" / "token")
        try:
            hub.wait_ready(120, provider=args.provider)
            body = {
                "name": f"warm-start-bench-{mode}",
                "model": {"url": model.base_url, "name": model.model_name},
                "benchmarks": [
                    {
                        "id": args.benchmark,
                        "provider_id": args.provider,
                        "parameters": {"num_examples": args.num_examples},
                    }
                ],
            }
            seconds = []
            with httpx.Client(base_url=hub.base_url, headers=hub.headers(), timeout=30) as client:
                for number in range(1, args.jobs + 1):
                    elapsed, state, job = one_job(client, body, args.job_timeout)
                    [result] = (job.get("results") or {}).get("benchmarks") or [{}]
                    print(
                        f"{mode}: job {number}: {state} in {elapsed:.2f} s "
                        f"(metrics {result.get('metrics')}, usage {result.get('usage')})",
                        flush=True,
                    )
                    if state != "completed":
                        raise HubError(f"{mode}: job {number} ended {state}\n{hub.log_tail(20)}")
                    seconds.append(elapsed)
            return seconds
        finally:
            hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5, help="jobs per mode, one after the other")
    parser.add_argument("--provider", default="lm_evaluation_harness")
    parser.add_argument("--benchmark", default="assay_arithmetic")
    parser.add_argument("--num-examples", type=int, default=2)
    parser.add_argument("--only", choices=MODES)
    parser.add_argument("--job-timeout", type=float, default=600.0)
    args = parser.parse_args()
    models = Path(os.environ.get("ASSAY_TEST_CACHE", REPO / ".pytest_cache" / "d")) / "assay-models"
    results: dict[str, list[float]] = {}
    with ModelServer(cache_dir=models) as model:
        # The model's first answers are slow (its file paged in): not the first mode's cost.
        httpx.post(
            f"{model.base_url}/completions",
            json={"model": model.model_name, "prompt": "1 + 1 =", "max_tokens": 4},
            timeout=120,
        ).raise_for_status()
        with tempfile.TemporaryDirectory(prefix="bench-warm-cache-") as responses:
            for mode in [args.only] if args.only else MODES:
                results[mode] = measure(mode, model, Path(responses), args)
    print(f"{args.provider}/{args.benchmark}, {args.num_examples} examples, {os.cpu_count()} CPUs")
    for mode, seconds in results.items():
        later = statistics.median(seconds[1:]) if len(seconds) > 1 else float("nan")
        print(
            f"{mode}: first job {seconds[0]:.2f} s, later jobs median {later:.2f} s ({len(seconds) - 1} jobs)"
        )
    if len(results) == 2 and len(results["warm"]) > 1:
        cold, warm = (statistics.median(results[m][1:]) for m in MODES)
        print(
            f"warm/cold (later jobs, medians): {warm / cold:.2f}x; warm's first job (starts the fork server) / a cold "
            f"job: {results['warm'][0] / cold:.2f}x"
        )


if __name__ == "__main__":
    main()
