"""EvalHub's own clients, unmodified, against a hub with authentication on: the eval-hub-sdk client with
``auth_token``, the ``evalhub`` CLI with ``--token`` and ``EVALHUB_TOKEN``; without a token they are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from evalhub import SyncEvalHubClient

from tests.conftest import ADMIN_TOKEN, LiveServer

EVALHUB = str(Path(sys.executable).parent / "evalhub")
ASSAY = str(Path(sys.executable).parent / "assay")


def cli(
    hub: LiveServer, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EVALHUB_")}
    environment.update({"HOME": str(home), "NO_COLOR": "1", **(env or {})})
    return subprocess.run(
        [EVALHUB, "--base-url", hub.url, *args], capture_output=True, text=True, env=environment, timeout=120
    )


def test_the_sdk_client_needs_its_token(
    live_hub: LiveServer, issue_token: Callable[..., dict[str, str]]
) -> None:
    with SyncEvalHubClient(base_url=live_hub.url, auth_token=ADMIN_TOKEN) as client:
        assert {p.resource.id for p in client.providers.list()} >= {"demo"}
    with (
        SyncEvalHubClient(base_url=live_hub.url, auth_token="wrong") as client,
        pytest.raises(Exception) as refused,
    ):
        client.providers.list()
    assert "401" in str(refused.value) or "nauthori" in str(refused.value)
    # A viewer of one tenant reads it and is refused in another.
    viewer = issue_token("vee", {"team-a": "viewer"})["Authorization"].split(" ", 1)[1]
    with SyncEvalHubClient(base_url=live_hub.url, auth_token=viewer, tenant="team-a") as client:
        client.providers.list()
    with (
        SyncEvalHubClient(base_url=live_hub.url, auth_token=viewer, tenant="team-b") as client,
        pytest.raises(Exception) as other,
    ):
        client.providers.list()
    assert "403" in str(other.value) or "orbidden" in str(other.value)


def test_the_evalhub_cli_with_token_and_environment(live_hub: LiveServer, tmp_path: Path) -> None:
    listed = cli(live_hub, tmp_path, "--token", ADMIN_TOKEN, "providers", "list")
    assert listed.returncode == 0, listed.stderr
    assert "demo" in listed.stdout
    from_env = cli(live_hub, tmp_path, "providers", "list", env={"EVALHUB_TOKEN": ADMIN_TOKEN})
    assert from_env.returncode == 0, from_env.stderr
    refused = cli(live_hub, tmp_path, "providers", "list")
    assert refused.returncode != 0
    assert "401" in refused.stdout + refused.stderr or "nauthori" in (refused.stdout + refused.stderr)
    health = cli(live_hub, tmp_path, "health")  # liveness needs no token
    assert health.returncode == 0, health.stderr


def test_assay_token_prints_the_local_token(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = subprocess.run(
        [ASSAY, "token", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    token = first.stdout.strip()
    assert token.startswith("assay_") and len(token) > 40
    assert (data / "token").stat().st_mode & 0o777 == 0o600
    again = subprocess.run(
        [ASSAY, "token", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stdout.strip() == token
    hashed = subprocess.run(
        [ASSAY, "token", "--hash"],
        input=token + "\n",
        capture_output=True,
        text=True,
    )
    import hashlib

    assert hashed.stdout.strip() == hashlib.sha256(token.encode()).hexdigest()
    assert json.dumps(token)  # printable
