"""Running a built-in adapter the way the local runtime does, outside the hub: its own environment's Python,
a ``meta/job.json`` in a run directory, and a recording loopback server as the callback URL."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from adapters.envs import ensure_env

RUN_TIMEOUT = 300.0


class EventRecorder:
    """A loopback HTTP server that answers 204 to every POST and keeps the JSON bodies (and paths) in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                recorder.paths.append(self.path)
                recorder.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def events(self, benchmark_index: int | None = None) -> list[dict[str, Any]]:
        """The ``benchmark_status_event`` bodies received (of one benchmark index, when given)."""
        return [
            b["benchmark_status_event"]
            for b in self.bodies
            if benchmark_index is None or b["benchmark_status_event"]["benchmark_index"] == benchmark_index
        ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


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
