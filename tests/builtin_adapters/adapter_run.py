"""Running a built-in adapter the way the local runtime does, outside the hub: its own environment's Python,
a ``meta/job.json`` in a run directory, and the ``recorder`` fixture's URL (tests.support.recorders) as the
callback URL."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapters.envs import ensure_env

RUN_TIMEOUT = 300.0


def job_spec(provider_id: str, callback_url: str, model: tuple[str, str], **fields: Any) -> dict[str, Any]:
    """A ``job.json`` body for one benchmark: job ``job-<provider_id>``, index 0, the model ``(url, name)``,
    no parameters; ``fields`` add the rest (``benchmark_id``, ``group``, ...) or override these."""
    return {
        "id": f"job-{provider_id}",
        "provider_id": provider_id,
        "benchmark_index": 0,
        "model": {"url": model[0], "name": model[1]},
        "parameters": {},
        "callback_url": callback_url,
        **fields,
    }


def run_adapter(
    name: str,
    run_dir: Path,
    job: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m adapters.<name>`` in its environment on ``job`` (written to ``run_dir/meta/job.json``)."""
    (run_dir / "meta").mkdir(parents=True, exist_ok=True)
    (run_dir / "meta" / "job.json").write_text(json.dumps(job))
    # The adapter's environment finds the adapters package through its own .pth file; a PYTHONPATH of the
    # caller's would mix the hub's packages into it.
    child = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    child.update({"EVALHUB_JOB_SPEC_PATH": str(run_dir / "meta" / "job.json"), "EVALHUB_MODE": "local"})
    child.update(env or {})
    return subprocess.run(
        [str(ensure_env(name)), "-m", f"adapters.{name}"],
        cwd=run_dir,
        env=child,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
