"""Kill the local hub with SIGKILL in the middle of a run, start it again: every job ends terminal and
explained, nothing stays running forever, and work that had not started yet still runs."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, wait_for
from tests.lifecycle.test_local_lifecycle import exact_match_provider, job_body
from tests.test_assay_up import start_hub

pytestmark = pytest.mark.slow


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    # One slot: the second benchmark waits in the runtime's queue when the hub is killed.
    return start_hub(
        data_dir, port, {"ASSAY_LOCAL_MAX_PARALLEL": "1"}, stderr=(data_dir / "hub.log").open("ab")
    )


def adapters_of(job_id: str) -> list[int]:
    """Pids of live processes started for ``job_id`` (the runtime marks each with ASSAY_RUN)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"ASSAY_RUN={job_id}/".encode() in environ:
            found.append(int(entry.name))
    return found


def sidecars_of(data_dir: Path) -> list[int]:
    """Live sidecar processes whose configuration lies under ``data_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if b"adapters.sidecar" in cmdline and str(data_dir).encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_sigkill_mid_run_then_restart_ends_every_job_terminal_and_explained(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1/evaluations"
    hub = start(tmp_path, port)
    try:
        assert httpx.post(f"{api}/providers", json=exact_match_provider(), timeout=10).status_code == 201
        body = job_body(
            {"id": "qa", "provider_id": "exact", "parameters": {"sleep_seconds": 120}},
            {"id": "qa_f1", "provider_id": "exact"},
        )
        job_id = httpx.post(f"{api}/jobs", json=body, timeout=10).json()["resource"]["id"]

        def first_running() -> bool:
            job: dict[str, Any] = httpx.get(f"{api}/jobs/{job_id}", timeout=10).json()
            return job["status"]["benchmarks"][0].get("phase") == "running_evaluation"

        wait_for(first_running, timeout=60, interval=0.2)
        assert adapters_of(job_id), "the adapter should be running"
        assert sidecars_of(tmp_path), "the hub's sidecar should be running"
    finally:
        hub.send_signal(signal.SIGKILL)
        hub.wait(timeout=10)
    # The killed hub's sidecar goes with it (its stdin pipe closed) rather than living on as an orphan.
    wait_for(lambda: not sidecars_of(tmp_path), timeout=30, interval=0.1)

    hub = start(tmp_path, port)
    try:

        def terminal() -> dict[str, Any] | None:
            job: dict[str, Any] = httpx.get(f"{api}/jobs/{job_id}", timeout=10).json()
            return job if job["status"]["state"] in ("completed", "failed", "partially_failed") else None

        try:
            job = wait_for(terminal, timeout=90, interval=0.2)
        except AssertionError:
            job = httpx.get(f"{api}/jobs/{job_id}", timeout=10).json()
            log = [
                line for line in (tmp_path / "hub.log").read_text().splitlines() if "assay.access" not in line
            ]
            raise AssertionError(f"{job['status']}\n" + "\n".join(log[-60:])) from None
        lost, queued = job["status"]["benchmarks"]
        assert lost["status"] == "failed"
        assert lost["error_message"]["message_code"] == "runtime_lost"
        assert "retry" in lost["error_message"]["message"]
        assert queued["status"] == "completed"  # it had not started: it was launched again, not failed
        assert job["status"]["state"] == "partially_failed"
        assert job["results"]["test"]["coverage"] == pytest.approx(0.5)
        wait_for(lambda: not adapters_of(job_id), timeout=30)  # the orphan was found and stopped
    finally:
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=30) == 0
