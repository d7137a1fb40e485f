"""The sidecar's configuration: EvalHub's sidecar_config.json loads unchanged, Go durations, errors that
name the field, and the public surface of the package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import adapters.sidecar
from adapters.sidecar import ConfigError, SidecarConfig
from adapters.sidecar._config import parse_duration
from tests.sidecar.conftest import REPO_ROOT


def test_evalhub_config_loads_with_assay_keys(tmp_path: Path) -> None:
    path = tmp_path / "sidecar_config.json"
    path.write_text(
        json.dumps(
            {
                "base_url": "http://localhost:8080",
                "local_mode": False,
                "local": {"job_cache_sweep_interval": "1m", "job_cache_entry_ttl": "30s"},
                "eval_hub": {
                    "base_url": "https://hub.ns.svc.cluster.local:8443",
                    "http_timeout": "1m30s",
                    "insecure_skip_verify": False,
                    "token_cache_timeout": "5m",
                },
                "mlflow": {"tracking_uri": "https://mlflow", "workspace": "ns", "http_timeout": "300ms"},
                "oci": {"http_timeout": "2h", "plain_http": True},
                "model": {"url": "http://model:8000/v1", "max_concurrency": 4, "max_retries": 5},
                "cache": {"dir": "/data/cache"},
                "init_container": {"is_git_job": True},
                "otel": {"enabled": False},
            }
        )
    )
    config = SidecarConfig.from_file(path)
    assert config.eval_hub.http_timeout == 90.0
    assert config.eval_hub.token_cache_timeout == 300.0
    assert config.mlflow.http_timeout == pytest.approx(0.3)
    assert config.oci.http_timeout == 7200.0 and config.oci.plain_http
    assert (config.model.max_concurrency, config.model.max_retries) == (4, 5)
    assert config.cache.dir == Path("/data/cache") and config.cache.enabled


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0.0), ("1.5h", 5400.0), ("2m3s", 123.0), ("250ms", 0.25), (12, 12.0)]
)
def test_go_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "1d", "-1s", True])
def test_bad_durations_are_refused(text: str | bool) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_errors_name_the_file_and_fields(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"eval_hub": {"http_timeout": "soon"}, "model": {"max_concurrency": 0}}))
    with pytest.raises(ConfigError) as caught:
        SidecarConfig.from_file(path)
    message = str(caught.value)
    assert str(path) in message and "eval_hub.http_timeout" in message and "model.max_concurrency" in message
    with pytest.raises(ValueError, match=r"local\.jobs_root"):
        SidecarConfig.model_validate({"local_mode": True})
    with pytest.raises(ConfigError, match="not found"):
        SidecarConfig.from_file(tmp_path / "missing.json")


def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    result = subprocess.run(
        [sys.executable, "-m", "adapters.sidecar", "--config", str(path), "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert str(path) in result.stderr and "not valid JSON" in result.stderr


def test_public_surface() -> None:
    assert sorted(adapters.sidecar.__all__) == ["ConfigError", "SidecarConfig", "create_app"]
