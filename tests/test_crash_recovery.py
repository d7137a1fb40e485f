"""Kill the local hub with SIGKILL in the middle of a run, start it again: every job ends terminal and
explained, nothing stays running forever, and work that had not started yet still runs."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.lifecycle.test_local_lifecycle import TERMINAL, exact_match_provider, job_body
from tests.support.net import free_port
from tests.support.waiting import wait_for
from tests.test_assay_up import start_hub

pytestmark = pytest.mark.slow


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    # One slot: the second benchmark waits in the runtime's queue when the hub is killed.
    return start_hub(
        data_dir,
        port,
        {"ASSAY_LOCAL_COMMAND_TENANTS": "default", "ASSAY_LOCAL_MAX_PARALLEL": "1"},
        stderr=(data_dir / "hub.log").open("ab"),
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
    client = authorised(tmp_path)
    try:
        assert client.post(f"{api}/providers", json=exact_match_provider(), timeout=10).status_code == 201
        body = job_body(
            {"id": "qa", "provider_id": "exact", "parameters": {"sleep_seconds": 120}},
            {"id": "qa_f1", "provider_id": "exact"},
        )
        job_id = client.post(f"{api}/jobs", json=body, timeout=10).json()["resource"]["id"]

        def first_running() -> bool:
            job: dict[str, Any] = client.get(f"{api}/jobs/{job_id}", timeout=10).json()
            return bool(job["status"]["benchmarks"][0].get("phase") == "running_evaluation")

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
            job: dict[str, Any] = client.get(f"{api}/jobs/{job_id}", timeout=10).json()
            return job if job["status"]["state"] in ("completed", "failed", "partially_failed") else None

        try:
            job = wait_for(terminal, timeout=90, interval=0.2)
        except AssertionError:
            job = client.get(f"{api}/jobs/{job_id}", timeout=10).json()
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


# -- the database dies under a running hub; the hub stops with the database frozen ---------------------------


def counted_provider(starts: Path) -> dict[str, Any]:
    """The exact-match adapter, each start of it noted (its run marker, one line) in ``starts``."""
    provider = exact_match_provider()
    command = provider["runtime"]["local"]["command"]
    provider["runtime"]["local"]["command"] = f'echo "$ASSAY_RUN" >> {starts}; exec {command}'
    return provider


def authorised(data_dir: Path) -> httpx.Client:
    """A client with the local hub's own token (``data_dir/token``, created at its first start)."""
    token = (data_dir / "token").read_text().strip()
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)


def postmaster_of(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
    return pid if state not in ("Z", "X") else None


def postgres_of(data_dir: Path) -> list[int]:
    """Live PostgreSQL processes serving ``data_dir``'s database (the postmaster names its data directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if b"postgres" in cmdline and str(data_dir / "postgres").encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_postgres_killed_mid_run_every_benchmark_runs_exactly_once(tmp_path: Path) -> None:
    """Kill the embedded PostgreSQL while adapters run and others wait in the queue: the hub restarts it,
    results buffered meanwhile arrive, nothing starts that could not be recorded, and no benchmark runs
    twice."""
    jobs, per_job = 5, 2
    starts = tmp_path / "starts"
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1/evaluations"
    hub = start_hub(
        tmp_path,
        port,
        {"ASSAY_LOCAL_COMMAND_TENANTS": "default", "ASSAY_LOCAL_MAX_PARALLEL": "2"},
        stderr=(tmp_path / "hub.log").open("ab"),
    )
    try:
        client = authorised(tmp_path)
        assert client.post(f"{api}/providers", json=counted_provider(starts)).status_code == 201
        body = job_body(
            {"id": "qa", "provider_id": "exact", "parameters": {"sleep_seconds": 3}},
            {"id": "qa_f1", "provider_id": "exact", "parameters": {"sleep_seconds": 3}},
        )
        ids = []
        for _ in range(jobs):
            created = client.post(f"{api}/jobs", json=body)
            assert created.status_code == 202, created.text
            ids.append(created.json()["resource"]["id"])
        wait_for(lambda: starts.is_file() and len(starts.read_text().splitlines()) >= 2, timeout=120)
        killed = postmaster_of(tmp_path)
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: postmaster_of(tmp_path) not in (None, killed), timeout=90, interval=0.1)

        def documents() -> list[dict[str, Any]] | None:
            found = []
            for job_id in ids:
                answer = client.get(f"{api}/jobs/{job_id}")
                if answer.status_code != 200 or answer.json()["status"]["state"] not in TERMINAL:
                    return None
                found.append(answer.json())
            return found

        finished = wait_for(documents, timeout=300, interval=0.5)
    finally:
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=60) == 0
    assert [job["status"]["state"] for job in finished] == ["completed"] * jobs, [
        (b["status"], b.get("error_message")) for job in finished for b in job["status"]["benchmarks"]
    ]
    launched = starts.read_text().splitlines()
    assert sorted(launched) == sorted(f"{job_id}/{i}/1" for job_id in ids for i in range(per_job))
    for job in finished:
        for entry in job["status"]["benchmarks"]:
            assert entry["started_at"] <= entry["completed_at"]
    assert not postgres_of(tmp_path)
    print(
        f"\n{jobs} jobs, {jobs * per_job} benchmarks, {len(launched)} adapter starts, postgres pid {killed} killed"
    )


def test_sigterm_with_a_run_in_flight_and_the_database_frozen_stops_in_bounded_time(tmp_path: Path) -> None:
    """SIGTERM while an adapter runs, another waits in the queue and PostgreSQL is frozen (SIGSTOP): the hub
    exits within its deadline, leaving no adapter, sidecar or PostgreSQL behind; after a restart the queued
    benchmark runs once and the interrupted one is never run again."""
    starts = tmp_path / "starts"
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1/evaluations"
    settings = {
        "ASSAY_LOCAL_COMMAND_TENANTS": "default",
        "ASSAY_LOCAL_MAX_PARALLEL": "1",
        "ASSAY_SHUTDOWN_TIMEOUT_SECONDS": "4",
        "ASSAY_STOP_GRACE_SECONDS": "2",
    }
    hub = start_hub(tmp_path, port, settings, stderr=(tmp_path / "hub.log").open("ab"))
    client = authorised(tmp_path)
    try:
        assert client.post(f"{api}/providers", json=counted_provider(starts)).status_code == 201
        body = job_body(
            {"id": "qa", "provider_id": "exact", "parameters": {"sleep_seconds": 120}},
            {"id": "qa_f1", "provider_id": "exact"},
        )
        job_id = client.post(f"{api}/jobs", json=body).json()["resource"]["id"]
        wait_for(lambda: adapters_of(job_id), timeout=60)
        frozen = postmaster_of(tmp_path)
        assert frozen is not None
        os.kill(frozen, signal.SIGSTOP)
    finally:
        asked = time.monotonic()
        hub.send_signal(signal.SIGTERM)
        # The limit: 4 s for the hub, then its requests, adapters and PostgreSQL's own stop.
        code = hub.wait(timeout=45)
    print(f"\nstopped in {time.monotonic() - asked:.1f} s with a run in flight and PostgreSQL frozen")
    assert code == 0
    assert not adapters_of(job_id)
    wait_for(lambda: not sidecars_of(tmp_path), timeout=10, interval=0.1)
    assert not postgres_of(tmp_path)
    assert starts.read_text().splitlines() == [f"{job_id}/0/1"]  # the queued one never started

    hub = start_hub(
        tmp_path,
        port,
        {"ASSAY_LOCAL_COMMAND_TENANTS": "default", "ASSAY_LOCAL_MAX_PARALLEL": "1"},
        stderr=(tmp_path / "hub.log").open("ab"),
    )
    try:

        def terminal() -> dict[str, Any] | None:
            job: dict[str, Any] = client.get(f"{api}/jobs/{job_id}").json()
            return job if job["status"]["state"] in TERMINAL else None

        job = wait_for(terminal, timeout=120, interval=0.2)
    finally:
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=45) == 0
    interrupted, queued = job["status"]["benchmarks"]
    assert interrupted["status"] == "failed"
    assert interrupted["error_message"]["message_code"] in ("runtime_stopped", "runtime_lost")
    assert queued["status"] == "completed"
    assert starts.read_text().splitlines() == [f"{job_id}/0/1", f"{job_id}/1/1"]
    assert not postgres_of(tmp_path)
