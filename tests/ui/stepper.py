"""A standard-library adapter (like bench/adapters/wire.py) whose progress the test drives: it reports
``completed_steps`` k of ``steps`` each time the file ``<gate_dir>/<benchmark_id>-<k>`` appears, then
completes with ``score: 1.0``. A running evaluation thus stays running, at a known step, until the test says.

Parameters: ``gate_dir`` (required), ``steps`` (default 4).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path


def post(url: str, event: dict[str, object]) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps({"benchmark_status_event": event}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def main() -> None:
    spec = json.loads(Path(os.environ.get("EVALHUB_JOB_SPEC_PATH", "meta/job.json")).read_text())
    url = f"{spec['callback_url'].rstrip('/')}/api/v1/evaluations/jobs/{spec['id']}/events"
    parameters = spec.get("parameters") or {}
    gate = Path(str(parameters["gate_dir"]))
    steps = int(parameters.get("steps", 4))
    who = {
        "provider_id": spec["provider_id"],
        "id": spec["benchmark_id"],
        "benchmark_index": spec["benchmark_index"],
    }
    running = {**who, "status": "running", "phase": "running_evaluation", "total_steps": steps}
    post(url, {**running, "completed_steps": 0})
    for step in range(1, steps + 1):
        while not (gate / f"{spec['benchmark_id']}-{step}").exists():  # the test's go-ahead for this step
            time.sleep(0.02)
        post(url, {**running, "completed_steps": step, "current_step": f"step {step} of {steps}"})
    post(
        url,
        {
            **who,
            "status": "completed",
            "metrics": {"score": 1.0},
            "completed_at": datetime.now(UTC).isoformat(),
            "metrics_schema": [{"name": "score", "type": "numeric"}],
        },
    )


if __name__ == "__main__":
    main()
