"""Real servers for the export tests: an MLflow tracking server (SQL backend on a sqlite file, artifacts in a
temp dir, served by the server itself) for the whole session, and a docker-registry per test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port
from tests.support.waiting import wait_for_server

_READY_SECONDS = 120.0  # 12-18 s on an idle machine; the test machine is often busy


@dataclass(frozen=True)
class MlflowServer:
    url: str
    log: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log_path = root / "server.log"
    mlflow = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # else it starts 8 job workers
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(mlflow), "server",
                "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination", str(root / "artifacts"),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=2) as client:
            wait_for_server(
                process,
                lambda: client.get(f"{url}/health").status_code == 200,
                f"the MLflow server (its log: {log_path})",
                timeout=_READY_SECONDS,
            )
        yield MlflowServer(url, log_path)
    finally:
        # The server runs uvicorn workers in its session: stop them all.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
