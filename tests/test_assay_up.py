"""`assay up` as a user runs it: embedded PostgreSQL, health, and data that survives a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.test_collections import collection_body
from tests.support.net import free_port
from tests.support.waiting import wait_for_server

pytestmark = pytest.mark.slow


def start_hub(
    data_dir: Path, port: int, settings: dict[str, str] | None = None, stderr: Any = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """`assay up` as a newcomer runs it (no ASSAY_* settings inherited, except ``settings``)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("ASSAY_")}
    env.update(settings or {})
    hub = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("assay")),
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    wait_for_server(
        hub,
        lambda: httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).json()["status"] == "healthy",
        "the hub's health",
        timeout=60,
    )
    return hub


def stop_hub(hub: subprocess.Popen[bytes]) -> None:
    hub.send_signal(signal.SIGTERM)
    assert hub.wait(timeout=30) == 0


def test_collection_survives_a_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1/evaluations"
    hub = start_hub(tmp_path, port)
    try:
        # Secure by default: the first start made a token only its owner can read, and it is required.
        token_file = tmp_path / "token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        assert httpx.get(f"{base}/providers", timeout=10).status_code == 401
        body = collection_body(benchmarks=[{"id": "arc_easy", "provider_id": "lm_evaluation_harness"}])
        created = httpx.post(f"{base}/collections", json=body, headers=auth, timeout=10)
        assert created.status_code == 201, created.text
        cid = created.json()["resource"]["id"]
        providers = httpx.get(f"{base}/providers", headers=auth, timeout=10).json()
        assert {"lm_evaluation_harness", "garak", "mteb"} <= {p["resource"]["id"] for p in providers["items"]}
    finally:
        stop_hub(hub)
    assert (tmp_path / "postgres" / "PG_VERSION").exists()

    hub = start_hub(tmp_path, port)
    try:
        again = httpx.get(
            f"{base}/collections/{cid}", headers=auth, timeout=10
        )  # the same token after a restart
        assert again.status_code == 200
        assert again.json()["name"] == "My suite"
    finally:
        stop_hub(hub)


def test_no_auth_only_on_loopback_and_loudly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("ASSAY_")}
    assay = str(Path(sys.executable).with_name("assay"))
    refused = subprocess.run(
        [assay, "up", "--no-auth", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "loopback" in refused.stderr
    port = free_port()
    hub = start_hub(tmp_path, port, settings={"ASSAY_AUTH_MODE": "none"})
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/evaluations/providers", timeout=10)
        assert answer.status_code == 200  # anyone on this machine: said at start, below
    finally:
        hub.send_signal(signal.SIGTERM)
        _, stderr = hub.communicate(timeout=30)
    assert b"AUTHENTICATION IS OFF" in stderr
