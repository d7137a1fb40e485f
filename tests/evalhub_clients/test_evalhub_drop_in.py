"""Assay as a drop-in for EvalHub with files and clients it did not write (issue 19):

- EvalHub's own configuration directory (tests/fixtures/evalhub-config, eval-hub-sdk 1.0.6's end-to-end
  `config/`) loads whole: every provider and the sample collection, whose weighted metric has no scale;
- the unmodified `evalhub` CLI's flow provider create -> collection create -> `eval run --wait` ends with a
  passing composite, although the CLI's models drop `scale`;
- `assay-evalhub-server` takes EvalHub's process contract (`-local -configdir DIR`), so
  `EVALHUB_SERVER_BIN=... evalhub server start|stop` runs Assay with no shim, without a token.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import FIXTURES, LiveServer
from tests.evalhub_clients.test_evalhub_sdk import _evalhub, _json_in
from tests.lifecycle.test_local_lifecycle import ADAPTER
from tests.support.net import free_port
from tests.support.waiting import wait_for

EVALHUB_CONFIG = FIXTURES / "evalhub-config"
BIN = Path(sys.executable).parent


def test_evalhubs_own_config_directory_loads_whole(make_client: Any) -> None:
    client = make_client(config_dir=EVALHUB_CONFIG)
    providers = client.get("/api/v1/evaluations/providers", params={"benchmarks": "false"}).json()
    assert sorted(p["resource"]["id"] for p in providers["items"]) == [
        "garak",
        "guidellm",
        "lighteval",
        "lm_evaluation_harness",
        "ragas",
    ]
    collections = client.get("/api/v1/evaluations/collections").json()
    assert [c["resource"]["id"] for c in collections["items"]] == ["collection-1"]
    # `accuracy` is a known proportion: it gets [0, 1] when the job is planned.
    job = client.post(
        "/api/v1/evaluations/jobs",
        json={
            "name": "x",
            "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
            "collection": {"id": "collection-1"},
        },
    )
    assert job.status_code == 202, job.text
    assert "warnings" not in job.json()
    planned = job.json()["plan"]["benchmarks"][0]
    assert planned["primary_score"] == {
        "metric": "accuracy",
        "lower_is_better": False,
        "scale": {"min": 0.0, "max": 1.0},
    }


def test_a_job_on_a_metric_without_a_scale_is_accepted_with_a_warning(make_client: Any) -> None:
    client = make_client(config_dir=EVALHUB_CONFIG)
    benchmark = {"id": "sweep", "provider_id": "guidellm", "primary_score": {"metric": "mean_ttft_ms"}}
    job = client.post(
        "/api/v1/evaluations/jobs",
        json={"name": "x", "model": {"url": "http://127.0.0.1:9/v1", "name": "m"}, "benchmarks": [benchmark]},
    )
    assert job.status_code == 202, job.text
    assert [(w["path"], w["code"]) for w in job.json()["warnings"]] == [
        ("plan.benchmarks[0].primary_score.scale", "scale_unknown")
    ]
    assert "warnings" not in client.get(f"/api/v1/evaluations/jobs/{job.json()['resource']['id']}").json()


def _cli_provider() -> dict[str, Any]:
    """A provider as a CLI user writes it: EvalHub's YAML, a primary score without a scale."""
    return {
        "id": "cli-exact",
        "name": "Exact match from the CLI",
        "runtime": {"local": {"command": f"{sys.executable} {ADAPTER}"}},
        "benchmarks": [
            {
                "id": "qa",
                "name": "Recorded QA",
                "category": "knowledge",
                "metrics": ["exact_match", "f1"],
                "primary_score": {"metric": "exact_match", "lower_is_better": False},
                "pass_criteria": {"threshold": 0.5},
            },
            {
                "id": "qa_unscaled",
                # A metric the adapter reports that no table scales: judged by its own test only.
                "name": "Recorded QA, a metric with no known scale",
                "category": "knowledge",
                "metrics": ["exact_match", "f1", "exact_match_stderr"],
                "primary_score": {"metric": "exact_match_stderr"},
            },
        ],
    }


def test_cli_provider_collection_and_eval_run_wait_end_with_a_passing_composite(
    live_hub: LiveServer, tmp_path: Path
) -> None:
    provider = tmp_path / "provider.yaml"
    provider.write_text(yaml.safe_dump(_cli_provider()))
    made = _evalhub(live_hub, tmp_path, "providers", "create", "--file", str(provider), "--format", "json")
    assert made.returncode == 0, made.stdout + made.stderr
    pid = _json_in(made.stdout)[0]["resource"]["id"]  # the CLI's model drops `id`: the hub names it

    collection = tmp_path / "collection.yaml"
    collection.write_text(
        yaml.safe_dump(
            {
                "id": "cli-gate",
                "name": "CLI gate",
                "category": "knowledge",
                "pass_criteria": {"threshold": 0.5},
                "benchmarks": [
                    {
                        "id": "qa",
                        "provider_id": pid,
                        "weight": 2,
                        "primary_score": {"metric": "exact_match"},
                    },
                    {"id": "qa_unscaled", "provider_id": pid, "weight": 1},
                ],
            }
        )
    )
    created = _evalhub(
        live_hub, tmp_path, "collections", "create", "--file", str(collection), "--format", "json"
    )
    assert created.returncode == 0, created.stdout + created.stderr  # was 400: the CLI drops `scale`
    cid = _json_in(created.stdout)[0]["resource"]["id"]  # the CLI's model drops `id` here too
    assert created.stdout.startswith("Collection created: ")

    job = tmp_path / "job.yaml"
    job.write_text(
        yaml.safe_dump(
            {
                "name": "cli-gate-run",
                "model": {"url": "http://127.0.0.1:9/v1", "name": "recorded-model"},
                "collection": {"id": cid},
            }
        )
    )
    ran = _evalhub(
        live_hub,
        tmp_path,
        "eval",
        "run",
        "--config",
        str(job),
        "--wait",
        "--poll-interval",
        "0.2",
        "--timeout",
        "90",
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr

    with live_hub.client() as http:

        def settled() -> dict[str, Any] | None:
            items = http.get("/api/v1/evaluations/jobs").json()["items"]
            return items[0] if items and items[0]["status"]["state"] == "completed" else None

        done = wait_for(settled, timeout=30)
    test = done["results"]["test"]
    assert test["evaluated"] is True and test["pass"] is True, test
    assert test["unscored"] == [1]  # the metric with no scale is left out of the score...
    assert test["coverage"] == pytest.approx(2 / 3)  # ...and coverage shows it
    assert test["score"] >= test["threshold"]


def test_a_scaleless_composite_lets_the_benchmark_tests_decide(live_hub: LiveServer, tmp_path: Path) -> None:
    """A job whose only benchmark passed its own test is never failed for `nothing_to_score`."""
    provider = tmp_path / "provider.yaml"
    body = _cli_provider()
    body["benchmarks"][1]["pass_criteria"] = {"threshold": 0}
    provider.write_text(yaml.safe_dump(body))
    made = _evalhub(live_hub, tmp_path, "providers", "create", "--file", str(provider), "--format", "json")
    assert made.returncode == 0, made.stdout + made.stderr
    pid = _json_in(made.stdout)[0]["resource"]["id"]
    base = [
        "eval",
        "run",
        "--name",
        "only-unscaled",
        "--model-url",
        "http://127.0.0.1:9/v1",
        "--model-name",
        "m",
    ]
    base += [
        "--provider",
        pid,
        "-b",
        "qa_unscaled",
        "--wait",
        "--poll-interval",
        "0.2",
        "--timeout",
        "90",
    ]
    ran = _evalhub(live_hub, tmp_path, *base)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with live_hub.client() as http:

        def settled() -> dict[str, Any] | None:
            items = http.get("/api/v1/evaluations/jobs").json()["items"]
            return items[0] if items and items[0]["status"]["state"] == "completed" else None

        done = wait_for(settled, timeout=30)
    test = done["results"]["test"]
    assert test["evaluated"] is False and test["reason"] == "nothing_to_score"
    assert test["decided_by"] == "benchmarks"
    assert test["pass"] is True, test


# --- the process contract -------------------------------------------------------------------------


@pytest.fixture()
def evalhub_home(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    """An environment for `evalhub server ...`: its own HOME (the CLI keeps its state there), a free port in
    the profile's server config, the test database (no initdb), and the hub's data in tmp_path."""
    home = tmp_path / "home"
    port = free_port()
    server_dir = home / ".config" / "evalhub" / "server" / "default"
    server_dir.mkdir(parents=True)
    (server_dir / "config.yaml").write_text(yaml.safe_dump({"service": {"port": port}}))
    (home / ".config" / "evalhub" / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "active_profile": "default",
                "profiles": {
                    "default": {"base_url": f"http://localhost:{port}", "server_config_file": "config.yaml"}
                },
            }
        )
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # eval-hub-server's eval-runtime-sidecar
        "EVALHUB_SERVER_BIN": str(BIN / "assay-evalhub-server"),
        "DATABASE_URL": database_url,
        "ASSAY_DATA_DIR": str(tmp_path / "data"),
        "ASSAY_CONFIG_RELOAD": "false",
        "PORT_FOR_TEST": str(port),
    }
    env.pop("EVALHUB_TOKEN", None)
    yield env
    subprocess.run(
        [str(BIN / "evalhub"), "server", "stop"], env=env, capture_output=True, timeout=60, check=False
    )


@pytest.mark.skipif(
    shutil.which("eval-runtime-sidecar", path=str(BIN)) is None, reason="needs eval-hub-server"
)
def test_evalhub_server_start_runs_assay_with_no_token(evalhub_home: dict[str, str]) -> None:
    port = evalhub_home["PORT_FOR_TEST"]
    started = subprocess.run(
        [str(BIN / "evalhub"), "server", "start"],
        env=evalhub_home,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"localhost:{port}" in started.stdout
    # EvalHub's local mode: no token, loopback only.
    health = subprocess.run(
        [str(BIN / "evalhub"), "health"], env=evalhub_home, capture_output=True, text=True, timeout=60
    )
    assert health.returncode == 0, health.stdout + health.stderr
    providers = httpx.get(f"http://127.0.0.1:{port}/api/v1/evaluations/providers", timeout=30)
    assert providers.status_code == 200 and providers.json()["total_count"] >= 1
    log = Path(evalhub_home["HOME"]) / ".config" / "evalhub" / "server" / "server.log"
    assert "NO AUTHENTICATION" in log.read_text()
    stopped = subprocess.run(
        [str(BIN / "evalhub"), "server", "stop"], env=evalhub_home, capture_output=True, text=True, timeout=60
    )
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    wait_for(lambda: _refused(int(port)), timeout=30)


def _refused(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
    except httpx.TransportError:
        return True
    return False


def test_the_server_command_line_takes_evalhubs_config_directory(tmp_path: Path, database_url: str) -> None:
    """`eval-hub-server --local` in a directory holding `config/` (the SDK's end-to-end fixture):
    EvalHub's whole catalogue, served without a token on loopback."""
    shutil.copytree(EVALHUB_CONFIG, tmp_path / "config")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "ASSAY_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.Popen(
        [str(BIN / "assay-evalhub-server"), "--local"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            def up() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"the server exited {proc.returncode}")
                try:
                    return http.get("/api/v1/health").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, timeout=120)
            ids = [p["resource"]["id"] for p in http.get("/api/v1/evaluations/providers").json()["items"]]
            assert "ragas" in ids and len(ids) == 5
            collections = http.get("/api/v1/evaluations/collections").json()["items"]
            assert [c["resource"]["id"] for c in collections] == ["collection-1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # never leave a hub behind; the assertion below reports it
            out, _ = proc.communicate(timeout=30)
    assert "NO AUTHENTICATION" in out
    assert proc.returncode == 0, out


def test_the_server_command_line_is_checked() -> None:
    from assay.cli.evalhub_server import ServerArgs, UsageError, parse_args

    assert parse_args(["-local", "-configdir", "/x"]) == ServerArgs(local=True, config_dir=Path("/x"))
    assert parse_args(["--local", "--configdir=/y", "-port", "9"]) == ServerArgs(
        local=True, config_dir=Path("/y"), port=9
    )
    assert parse_args(["-local=false"]) == ServerArgs()
    for bad in (["-nope"], ["-configdir"], ["-port", "x"], ["stray"]):
        with pytest.raises(UsageError):
            parse_args(bad)


def test_a_busy_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "ASSAY_DATA_DIR": str(tmp_path / "data"), "ASSAY_PORT": str(port)}
        env.pop("DATABASE_URL", None)
        ran = subprocess.run(
            [str(BIN / "assay"), "up"], env=env, capture_output=True, text=True, timeout=120, check=False
        )
    assert ran.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in ran.stderr
    assert not (tmp_path / "data" / "postgres").exists()  # PostgreSQL was never started
