"""What the sidecar's response cache saves, and what Assay costs over running lm-eval directly.

On one machine, against the bundled Gemma 3 270M served by llama.cpp on loopback:

0. A generation task of ``--examples`` two-number sums is written to a temporary lm-eval task directory
   (deterministic; long enough for "a run of a few minutes"), and registered with Assay as the benchmark
   ``assay_bench_sums`` of a provider running the built-in lm-eval adapter (``tasks_dir`` parameter).
1. ``lm_eval`` CLI, directly against the model (no hub, no sidecar): the baseline wall time.
2. The same task through Assay (``assay up`` with a fresh data directory, so an empty response cache):
   submit -> completed, over HTTP.
3. The identical evaluation submitted again: every completion is answered from the sidecar's cache.

Measured here (2 cores, 600 sums): lm_eval CLI 178.3 s, Assay first run 171.8 s (-3.6 %), re-run from the
cache 8.4 s (20.6x).

Prints the three wall times, the re-run speed-up (target: at least 10x) and Assay's overhead over the CLI
(target: under 10 % for a run of a few minutes). The model server's prompt cache is cleared by restarting it
before each timed run, so neither side profits from the other's warm KV cache.

    .venv/bin/python bench/rerun_cache.py [--examples 600]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orchestration import Hub

from adapters.envs import ensure_env
from assay.demo import ModelServer
from tests.support.net import free_port

REPO = Path(__file__).resolve().parent.parent
BUNDLED_TASKS = REPO / "adapters" / "lm_eval" / "tasks"
TASK = "assay_bench_sums"
NUM_CONCURRENT = 2  # the adapter's default, given to the CLI too


def write_task(tasks_dir: Path, examples: int) -> None:
    """The bundled arithmetic task's format with ``examples`` generated sums (and the same local loader)."""
    rng = random.Random(20261202)
    data = tasks_dir / TASK
    data.mkdir(parents=True)
    for split, count in (("train", 5), ("test", examples)):
        with (data / f"{split}.jsonl").open("w") as out:
            for _ in range(count):
                a, b = rng.randint(2, 99), rng.randint(2, 99)
                out.write(json.dumps({"question": f"What is {a} plus {b}?", "answer": str(a + b)}) + "\n")
    shutil.copy(BUNDLED_TASKS / "local_jsonl.py", tasks_dir / "local_jsonl.py")
    bundled = (BUNDLED_TASKS / "assay_arithmetic.yaml").read_text()
    (tasks_dir / f"{TASK}.yaml").write_text(bundled.replace("assay_arithmetic", TASK))


def register_provider(base_url: str, tasks_dir: Path) -> None:
    provider = {
        "id": "lm_eval_bench",
        "name": "lm-eval (bench task)",
        "runtime": {"local": {"command": "assay-adapter lm_eval"}, "group_benchmarks": True},
        "benchmarks": [
            {
                "id": TASK,
                "name": "Generated sums",
                "category": "math",
                "metrics": ["exact_match"],
                "primary_score": {"metric": "exact_match", "scale": {"min": 0, "max": 1}},
                "pass_criteria": {"threshold": 0.5},
            }
        ],
    }
    httpx.post(f"{base_url}/api/v1/evaluations/providers", json=provider, timeout=30).raise_for_status()


def lm_eval_cli(python: Path, model: ModelServer, tasks_dir: Path, examples: int, out: Path) -> float:
    model_args = ",".join(
        [
            f"model={model.model_name}",
            f"base_url={model.base_url}/completions",
            "tokenizer_backend=None",
            "tokenized_requests=False",
            f"num_concurrent={NUM_CONCURRENT}",
        ]
    )
    command = [str(python), "-m", "lm_eval", "--model", "local-completions", "--model_args", model_args]
    command += ["--tasks", TASK, "--include_path", str(tasks_dir), "--limit", str(examples)]
    command += ["--output_path", str(out), "--log_samples"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"lm_eval failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return elapsed


def assay_run(
    base_url: str, model: ModelServer, tasks_dir: Path, examples: int
) -> tuple[float, dict[str, Any]]:
    parameters = {"num_examples": examples, "tasks_dir": str(tasks_dir)}
    body = {
        "name": "rerun-cache bench",
        "model": {"url": model.base_url, "name": model.model_name},
        "benchmarks": [{"id": TASK, "provider_id": "lm_eval_bench", "parameters": parameters}],
    }
    with httpx.Client(base_url=base_url, timeout=30) as client:
        started = time.perf_counter()
        created = client.post("/api/v1/evaluations/jobs", json=body)
        created.raise_for_status()
        job_id = created.json()["resource"]["id"]
        while True:
            job = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()
            if job["status"]["state"] in ("completed", "failed", "cancelled", "partially_failed"):
                elapsed = time.perf_counter() - started
                break
            time.sleep(0.1)
    if job["status"]["state"] != "completed":
        raise SystemExit(f"the Assay run ended {job['status']['state']}: {job['status'].get('message')}")
    return elapsed, job


def usage_of(job: dict[str, Any]) -> str:
    usage = [b.get("usage", {}) for b in job["results"].get("benchmarks", [])]
    requests = sum(int(u.get("requests", 0)) for u in usage)
    hits = sum(int(u.get("cache_hits", 0)) for u in usage)
    return f"{requests} model requests, {hits} from the cache"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=600, help="generated sums (model requests)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "assay", help="model files")
    args = parser.parse_args()
    python = ensure_env("lm_eval")
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as scratch:
        tmp = Path(scratch)
        tasks_dir = tmp / "tasks"
        write_task(tasks_dir, args.examples)
        with ModelServer(cache_dir=args.cache / "models") as model:
            direct = lm_eval_cli(python, model, tasks_dir, args.examples, tmp / "direct")
        port = free_port()
        hub = Hub(
            "assay",
            [sys.executable, "-m", "assay", "up", "--port", str(port), "--data-dir", str(tmp / "assay")],
            dict(os.environ),
            tmp,
            port,
        )
        try:
            hub.wait_ready(120, provider="lm_evaluation_harness")
            register_provider(hub.base_url, tasks_dir)
            with ModelServer(cache_dir=args.cache / "models") as model:
                first, first_job = assay_run(hub.base_url, model, tasks_dir, args.examples)
                second, second_job = assay_run(hub.base_url, model, tasks_dir, args.examples)
        finally:
            hub.stop()
    print(f"{TASK}: {args.examples} generated sums, 3-shot, Gemma 3 270M on llama.cpp, 2 requests in flight")
    print(f"lm_eval CLI directly     : {direct:7.1f} s")
    print(f"Assay, first run         : {first:7.1f} s   ({usage_of(first_job)})")
    print(f"Assay, identical re-run  : {second:7.1f} s   ({usage_of(second_job)})")
    print(f"re-run speed-up          : {first / second:7.1f}x   (target >= 10x)")
    print(f"Assay overhead over CLI  : {100 * (first - direct) / direct:+7.1f} %  (target < 10 %)")


if __name__ == "__main__":
    main()
