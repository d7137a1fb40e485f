"""All configuration of Assay, read once from ``ASSAY_*`` environment variables and ``DATABASE_URL``.

This is the only module that reads the environment; everything else receives a :class:`Settings`.
``docs/configuration.md`` is generated from the field descriptions below (``assay config-doc``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "assay"


class Settings(BaseSettings):
    """Configuration of one Assay process (the local hub or one function)."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_", extra="ignore", frozen=True)

    mode: Literal["local", "cluster"] = Field(
        "local",
        description="`local`: one process, embedded Postgres, default tenant. "
        "`cluster`: the Knative functions; `X-Tenant` is required on every tenant-scoped request.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8080, ge=0, le=65535, description="Port the HTTP server listens on.")
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the local hub keeps its embedded PostgreSQL data and job files "
        "(default `$XDG_DATA_HOME/assay`, i.e. `~/.local/share/assay`).",
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "ASSAY_DATABASE_URL"),
        description="PostgreSQL connection URL (`DATABASE_URL`). Unset: the local hub starts an "
        "embedded PostgreSQL server under `data_dir/postgres`.",
    )
    config_dir: Path | None = Field(
        None,
        description="Directory with `providers/*.yaml` and `collections/*.yaml` (the read-only system "
        "catalogue). Default: the `config/` directory shipped with Assay.",
    )
    config_reload: bool = Field(True, description="Reload the system catalogue when its files change.")
    default_tenant: str = Field(
        "default", description="Tenant used in local mode when a request carries no `X-Tenant` header."
    )
    tenants: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Comma-separated list of known tenants. When set, any other `X-Tenant` is refused "
        "with 403 `unknown_tenant`; when empty, any well-formed tenant name is accepted.",
    )
    require_user_header: bool = Field(
        False,
        description="In cluster mode, refuse requests without `X-User` (set when kube-rbac-proxy or "
        "another auth layer injects it).",
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above it)."
    )
    list_max_limit: int = Field(500, ge=1, description="Largest `limit` a list request may ask for.")
    catalogue_default_limit: int = Field(
        500,
        ge=1,
        description="Page size of provider and collection lists without `limit` (eval-hub-sdk never pages, "
        "so the default page holds the whole catalogue).",
    )
    db_pool_min: int = Field(1, ge=0, description="Connections the pool keeps open.")
    db_pool_max: int = Field(10, ge=1, description="Most connections the pool opens.")
    db_connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a database connection.")
    public_url: str | None = Field(
        None,
        description="URL adapters use to reach this hub's callback route (`callback_url` in job.json). "
        "Default `http://<host>:<port>`; in cluster mode, the callback function's URL.",
    )
    runtime: Literal["local"] = Field(
        "local",
        description="Where benchmarks run: `local` runs each provider's `runtime.local.command` as a subprocess.",
    )
    local_max_parallel: int = Field(
        4, ge=1, description="Most benchmark processes the local runtime runs at once."
    )
    benchmark_timeout_seconds: float = Field(
        6 * 3600.0,
        gt=0,
        description="A benchmark still running this long after it started is failed (`benchmark_timeout`); "
        "a job's benchmark entry may set its own `timeout_seconds`.",
    )
    local_sidecar: bool = Field(
        True,
        description="Run local adapters behind the sidecar (model response cache, retries, token "
        "accounting, buffered callbacks); off, adapters call the model and the hub directly.",
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Where the sidecar keeps its model response cache (default `data_dir/model-cache`); "
        "a re-run of the same requests is answered from it.",
    )
    model_max_concurrency: int = Field(
        8, ge=1, description="Most model requests the local sidecar has in flight at once, per benchmark."
    )
    stop_grace_seconds: float = Field(
        5.0, ge=0, description="Seconds a stopped adapter gets between SIGTERM and SIGKILL."
    )
    reap_grace_seconds: float = Field(
        10.0,
        ge=0,
        description="Seconds an adapter may keep running after reporting a terminal status before it is stopped.",
    )
    sweep_interval_seconds: float = Field(
        30.0, gt=0, description="Local hub: how often the sweep runs (in a cluster a PingSource triggers it)."
    )
    dispatch_stale_seconds: float = Field(
        120.0,
        gt=0,
        description="A benchmark not handed to the runtime this long after its job was accepted is dispatched again.",
    )
    outbox_stale_seconds: float = Field(
        10.0, ge=0, description="The sweep republishes outbox events undelivered for longer than this."
    )
    k_sink: str | None = Field(
        None,
        validation_alias=AliasChoices("K_SINK", "ASSAY_K_SINK"),
        description="Cluster mode: the broker URL events are posted to (`K_SINK`, injected by a SinkBinding).",
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="`json` lines, human `text`, or `auto` (text on a terminal, JSON otherwise)."
    )
    log_level: str = Field("INFO", description="Python log level name.")

    @field_validator("tenants", mode="before")
    @classmethod
    def _split_tenants(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    def callback_base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @field_validator("data_dir", "config_dir", "model_cache_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


__all__ = ["Settings"]
