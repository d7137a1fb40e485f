"""The sidecar's configuration: EvalHub's ``sidecar_config.json`` (docs/compatibility.md) plus Assay's keys.

Durations are Go-style strings as EvalHub writes them (``"300ms"``, ``"30s"``, ``"5m"``, ``"1h30m"``) or plain
numbers of seconds. Unknown keys (``init_container``, ``otel``, future EvalHub keys) are accepted and ignored
so a config written by an EvalHub server loads unchanged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "CacheSettings",
    "ConfigError",
    "EvalHubSettings",
    "LocalSettings",
    "MLflowSettings",
    "ModelSettings",
    "OCISettings",
    "SidecarConfig",
    "parse_duration",
]

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class ConfigError(ValueError):
    """The sidecar configuration file is missing, not JSON, or has invalid fields (all of them named)."""


def parse_duration(value: Any) -> float:
    """Seconds from a Go duration string (``"1m30s"``) or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a Go duration string like '30s' or a number of seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration must be a Go duration string like '30s' or a number of seconds")
    text = value.strip()
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{value!r} is not a Go duration (examples: '300ms', '30s', '5m', '1h30m')")
    return total


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LocalSettings(_Section):
    """``local``: where the local runtime writes each launch's ``sidecar-job-info.json``."""

    jobs_root: Path | None = None  # Assay: <jobs_root>/<job_id>/<benchmark_index>/sidecar-job-info.json
    job_cache_entry_ttl: Duration = 10.0
    job_cache_sweep_interval: Duration = 60.0


class EvalHubSettings(_Section):
    """``eval_hub``: where events go and how the sidecar authenticates to it."""

    base_url: str = ""
    http_timeout: Duration = 30.0
    ca_cert_path: Path | None = None
    insecure_skip_verify: bool = False
    token_path: Path | None = None  # Assay: EvalHub reads the projected service-account token
    token_cache_timeout: Duration = 300.0
    # Assay: the first, synchronous forwarding attempt is short so an adapter never waits long on a slow hub.
    sync_timeout: Duration = 5.0
    retry_initial: Duration = 0.5
    retry_max: Duration = 30.0
    # Assay: buffered events are also kept here until delivered, so a restart does not lose them (local mode).
    spool_dir: Path | None = None


class MLflowSettings(_Section):
    """``mlflow``: the tracking server the ``/api/2.0/mlflow*`` and ``/api/3.0/mlflow`` routes reach."""

    tracking_uri: str = ""
    token_path: Path | None = None
    workspace: str = ""
    token_cache_timeout: Duration = 300.0
    http_timeout: Duration = 300.0
    ca_cert_path: Path | None = None
    insecure_skip_verify: bool = False


class OCISettings(_Section):
    """``oci``: the registry the ``/v2/`` routes reach (the job's ``exports.oci.coordinates.oci_host``)."""

    ca_cert_path: Path | None = None
    http_timeout: Duration = 300.0
    insecure_skip_verify: bool = False
    plain_http: bool = False  # Assay: http:// instead of https:// (a local registry)
    docker_config_path: Path = Path("/etc/evalhub/.docker/config.json")  # Assay
    host: str | None = None  # Assay: overrides the job's oci_host; the only source in local mode


class ModelSettings(_Section):
    """``model``: the model endpoint every other path is proxied to."""

    url: str = ""
    name: str | None = None  # Assay: overrides the job spec's model.name in the cache key
    auth_secret_mount_path: Path | None = None
    http_timeout: Duration = 600.0
    ca_cert_path: Path | None = None
    insecure_skip_verify: bool = False
    max_concurrency: int = Field(8, ge=1)  # Assay: upstream calls in flight at once, per benchmark launch
    max_retries: int = Field(3, ge=0)  # Assay: on connect errors and 429/500/502/503/504
    retry_initial: Duration = 0.5
    retry_max: Duration = 30.0


class CacheSettings(_Section):
    """``cache`` (Assay): the persistent model response cache."""

    dir: Path | None = None
    enabled: bool = True


class SidecarConfig(_Section):
    """The whole configuration; ``local_mode`` picks local mode (all local jobs) over pod mode (one job)."""

    base_url: str = "http://localhost:8080"
    local_mode: bool = False
    job_spec_path: Path = Path("/meta/job.json")  # Assay: pod mode reads the job's benchmarks and model here
    shutdown_timeout: Duration = 20.0  # Assay: how long SIGTERM waits for buffered events to be delivered
    # Assay: at shutdown in pod mode, report benchmarks without a terminal event as failed. Assay's own pods
    # turn it off: the hub's watcher sees why the adapter ended (OOMKilled, deadline) and says so.
    report_undelivered: bool = True
    local: LocalSettings = LocalSettings()
    eval_hub: EvalHubSettings = EvalHubSettings()
    mlflow: MLflowSettings = MLflowSettings()
    oci: OCISettings = OCISettings()
    model: ModelSettings = ModelSettings()
    cache: CacheSettings = CacheSettings()

    @model_validator(mode="after")
    def _local_needs_jobs_root(self) -> SidecarConfig:
        if self.local_mode and self.local.jobs_root is None:
            raise ValueError("local.jobs_root is required when local_mode is true")
        return self

    @classmethod
    def from_file(cls, path: Path | str) -> SidecarConfig:
        """Load a config file; a :class:`ConfigError` names the file and every invalid field."""
        file_path = Path(path)
        try:
            data = json.loads(file_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{file_path}: sidecar config file not found") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{file_path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"{file_path}: invalid sidecar config: {problems}") from None
