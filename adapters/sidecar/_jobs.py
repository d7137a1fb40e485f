"""Where the sidecar learns about the job(s) it serves: in pod mode the job spec (``/meta/job.json``), in local
mode one ``sidecar-job-info.json`` per launch under ``local.jobs_root`` (read with a TTL cache)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adapters.sidecar._config import SidecarConfig, parse_duration

__all__ = ["JOB_ID", "JobInfoMissing", "LocalJobs", "ModelRoute", "PodJob"]

JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
"""What a job id the hub issues looks like (Assay's are UUIDs): anything else names no job here, and never a
folder of the jobs root or of the event spool."""

SIDECAR_JOB_INFO = "sidecar-job-info.json"
HUB_TOKEN = "hub-token"  # Assay: the launch credential the local hub wrote for <job_id>/<benchmark_index>


class JobInfoMissing(LookupError):
    """No usable ``sidecar-job-info.json`` for a local launch; the message names the job and the file."""


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """Where one launch's model traffic goes and what identifies its answers in the cache."""

    job_id: str
    launch_index: int  # the benchmark index in the URL (local) or the job spec (pod)
    upstream: str  # requests go to upstream + the adapter's path and query
    model_name: str
    timeout: float
    benchmark_indices: tuple[int, ...]  # every benchmark this launch runs (a group launch runs several)


@dataclass(frozen=True, slots=True)
class PodJob:
    """What pod mode needs from the job spec: its benchmarks (for ``results_not_delivered``), the model
    name (for the cache key) and the OCI export target."""

    job_id: str
    provider_id: str
    benchmarks: tuple[tuple[str, int], ...]  # (benchmark_id, benchmark_index), the lead first
    model_name: str
    oci_host: str | None
    oci_repository: str | None

    @classmethod
    def load(cls, path: Path) -> PodJob:
        """Raises ``OSError`` or ``ValueError`` naming the file and the field when the spec is unusable."""
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the job spec must be a JSON object")
        try:
            benchmarks = [(str(data["benchmark_id"]), int(data["benchmark_index"]))]
            for position, member in enumerate(data.get("group") or []):
                try:
                    benchmarks.append((str(member["benchmark_id"]), int(member["benchmark_index"])))
                except (KeyError, TypeError, ValueError):
                    raise ValueError(
                        f"{path}: group[{position}] needs benchmark_id and an integer benchmark_index"
                    ) from None
            job_id, provider_id = str(data["id"]), str(data["provider_id"])
        except KeyError as exc:
            raise ValueError(f"{path}: the job spec has no {exc.args[0]!r}") from None
        model = data.get("model")
        model = model if isinstance(model, dict) else {}
        coordinates: dict[str, Any] = ((data.get("exports") or {}).get("oci") or {}).get("coordinates") or {}
        return cls(
            job_id=job_id,
            provider_id=provider_id,
            benchmarks=tuple(benchmarks),
            model_name=str(model.get("name") or ""),
            oci_host=coordinates.get("oci_host") or None,
            oci_repository=coordinates.get("oci_repository") or None,
        )

    def route(self, config: SidecarConfig) -> ModelRoute:
        # The adapter's URL is the sidecar plus the original path, so only the upstream's origin is kept.
        parts = urlsplit(config.model.url)
        return ModelRoute(
            job_id=self.job_id,
            launch_index=self.benchmarks[0][1],
            upstream=f"{parts.scheme}://{parts.netloc}",
            model_name=config.model.name or self.model_name,
            timeout=config.model.http_timeout,
            benchmark_indices=tuple(index for _, index in self.benchmarks),
        )


class LocalJobs:
    """``<jobs_root>/<job_id>/<benchmark_index>/sidecar-job-info.json``, cached for ``ttl`` seconds."""

    def __init__(self, config: SidecarConfig) -> None:
        assert config.local.jobs_root is not None  # SidecarConfig validates it in local mode
        self._root = config.local.jobs_root
        self._ttl = config.local.job_cache_entry_ttl
        self._sweep_every = config.local.job_cache_sweep_interval
        self._default_timeout = config.model.http_timeout
        self._model_name = config.model.name
        self._routes: dict[tuple[str, int], tuple[float, ModelRoute]] = {}
        self._swept_at = time.monotonic()

    def _folder(self, job_id: str, index: int) -> Path | None:
        """Where the hub writes the launch files of ``job_id`` benchmark ``index``; None for an id or index that
        cannot name one (not a :data:`JOB_ID`, a negative index): nothing outside the jobs root."""
        if not JOB_ID.fullmatch(job_id) or index < 0:
            return None
        return self._root / job_id / str(index)

    def hub_token(self, job_id: str, index: int) -> str | None:
        """The launch credential for events of ``job_id`` benchmark ``index`` (read fresh: a retry replaces it)."""
        folder = self._folder(job_id, index)
        if folder is None:
            return None
        try:
            return (folder / HUB_TOKEN).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def trace_headers(
        self, job_id: str, index: int, read: Callable[[Path], dict[str, str]]
    ) -> dict[str, str]:
        """The launch's trace context (``read`` from its folder), empty when there is none."""
        folder = self._folder(job_id, index)
        return read(folder) if folder is not None else {}

    def route(self, job_id: str, index: int) -> ModelRoute:
        now = time.monotonic()
        if now - self._swept_at >= self._sweep_every:
            self._routes = {k: v for k, v in self._routes.items() if now - v[0] < self._ttl}
            self._swept_at = now
        cached = self._routes.get((job_id, index))
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        route = self._read(job_id, index)
        self._routes[(job_id, index)] = (now, route)
        return route

    def _read(self, job_id: str, index: int) -> ModelRoute:
        folder = self._folder(job_id, index)
        if folder is None:
            raise JobInfoMissing(f"job id {job_id!r} is not a valid job id")
        path = folder / SIDECAR_JOB_INFO
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise JobInfoMissing(
                f"no model route for job {job_id!r} benchmark index {index}: {path} does not exist"
            ) from None
        except (OSError, ValueError) as exc:
            raise JobInfoMissing(f"job {job_id!r}: {path} is unreadable: {exc}") from None
        model = info.get("model") if isinstance(info, dict) else None
        if not isinstance(model, dict) or not model.get("url"):
            raise JobInfoMissing(f"job {job_id!r}: {path} has no model.url")
        try:
            timeout = (
                parse_duration(model["http_timeout"]) if model.get("http_timeout") else self._default_timeout
            )
        except ValueError as exc:
            raise JobInfoMissing(f"job {job_id!r}: {path} model.http_timeout: {exc}") from None
        indices = info.get("benchmark_indices") or [index]
        return ModelRoute(
            job_id=job_id,
            launch_index=index,
            upstream=str(model["url"]).rstrip("/"),
            model_name=self._model_name or str(model.get("name") or ""),
            timeout=timeout or self._default_timeout,
            benchmark_indices=tuple(int(i) for i in indices),
        )
