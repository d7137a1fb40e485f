"""Evaluation job wire models: the submission body, the adapter status event, and their parts.

Requests refuse unknown fields (a typo such as ``pass_critera`` must not vanish), but accept
everything eval-hub-sdk 1.0.6 can send. The status event is tolerant: adapters built on newer
SDKs may add fields, and a callback must never be lost to a strict schema.
"""

from __future__ import annotations

import posixpath
import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from assay.api.common import (
    DnsLabel,
    PassCriteria,
    PrimaryScore,
    ResourceId,
    Tag,
    TestDataRef,
    WireModel,
    benchmark_id_alias,
    check_composite_threshold,
    drop_nulls,
)

JobState = Literal["pending", "running", "completed", "failed", "cancelled", "partially_failed"]
BenchmarkStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
Phase = Literal[
    "initializing",
    "loading_data",
    "running_evaluation",
    "post_processing",
    "persisting_artifacts",
    "completed",
]
MessageOrigin = Literal["adapter", "sdk", "server", "runtime"]
MetricType = Literal["numeric", "categorical", "array_ordered", "array_unordered", "time_series"]

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    return value


STEPS_MAX = 2**31 - 1
"""The most steps a status event may count: what the store's integer columns hold."""


class ModelAuth(WireModel):
    secret_ref: NonBlank


class ModelRef(WireModel):
    """The model endpoint under evaluation. ``url`` may be empty only for pre-recorded test data."""

    url: str = ""
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
    auth: ModelAuth | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    card_url: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value) if value else value


class QueueRef(WireModel):
    kind: Literal["kueue"] = "kueue"
    name: DnsLabel

    @model_validator(mode="before")
    @classmethod
    def _trim(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            return {**data, "name": data["name"].strip()}
        return data


class ResourcePair(WireModel):
    request: str | None = None
    limit: str | None = None


class GpuConfig(WireModel):
    name: NonBlank = "nvidia.com/gpu"
    count: int = Field(1, ge=0)


class HardwareConfig(WireModel):
    """Either a named HardwareProfile or direct resources, never both."""

    hardware_profile_name: DnsLabel | None = None
    queue: QueueRef | None = None
    cpu: ResourcePair | None = None
    memory: ResourcePair | None = None
    gpu: GpuConfig | None = None

    @model_validator(mode="after")
    def _profile_or_direct(self) -> HardwareConfig:
        direct = any(x is not None for x in (self.queue, self.cpu, self.memory, self.gpu))
        if self.hardware_profile_name and direct:
            raise ValueError("use either hardware_profile_name or direct fields (queue, cpu, memory, gpu)")
        return self


class JobBenchmark(WireModel):
    """One benchmark to run, or (inside ``collection.benchmarks``) an override of one."""

    id: ResourceId
    provider_id: ResourceId
    weight: float | None = Field(None, ge=0, allow_inf_nan=False)
    primary_score: PrimaryScore | None = None
    pass_criteria: PassCriteria | None = None
    hardware_config: HardwareConfig | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    test_data_ref: TestDataRef | None = None
    timeout_seconds: float | None = Field(
        None, gt=0, le=7 * 24 * 3600, description="Assay: fail the benchmark if it runs longer than this."
    )

    @model_validator(mode="before")
    @classmethod
    def _benchmark_id_alias(cls, data: Any) -> Any:
        return benchmark_id_alias(data)

    @field_validator("parameters")
    @classmethod
    def _num_examples(cls, value: dict[str, Any]) -> dict[str, Any]:
        n = value.get("num_examples")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError("parameters.num_examples must be a positive integer")
        return value


class CollectionRef(WireModel):
    id: ResourceId
    benchmarks: list[JobBenchmark] = Field(default_factory=list)


_MLFLOW_NAME = re.compile(r"^[/\w.\- :]*$")


def mlflow_name_problem(name: str) -> str | None:
    """Why MLflow would refuse ``name`` as a tag key or parameter name (None: it accepts it). The rules of
    MLflow's own validation: at most 250 characters of letters, digits, ``_ - . : /`` and spaces, and no
    path that would normalise to another name (``a//b``, ``./a``, ``../a``, ``/a``, ``a/``)."""
    if not name:
        return "must not be empty"
    if len(name) > 250:
        return "must be at most 250 characters (MLflow's limit)"
    if not _MLFLOW_NAME.match(name):
        return "MLflow accepts only letters, digits, underscores, dashes, periods, colons, spaces and slashes"
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(("..", "/")):
        return f"MLflow treats names as paths, and this one would resolve to {norm!r}"
    return None


def _mlflow_name(value: str) -> str:
    problem = mlflow_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class ExperimentTag(WireModel):
    key: Annotated[str, StringConstraints(min_length=1, max_length=250), AfterValidator(_mlflow_name)]
    value: Annotated[str, StringConstraints(max_length=5000)] = ""


class Experiment(WireModel):
    name: NonBlank
    tags: list[ExperimentTag] = Field(default_factory=list, max_length=20)
    artifact_location: str | None = None


# The OCI distribution spec's grammar, checked at submission rather than by the registry after every retry.
# A tag leaves room for the "-<benchmark index>" each benchmark's artifact appends (128 characters in all).
OciRepository = Annotated[
    str,
    StringConstraints(
        max_length=255, pattern=r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$"
    ),
]
OciTag = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,119}$")]


class OciCoordinates(WireModel):
    oci_host: NonBlank
    oci_repository: OciRepository
    oci_tag: OciTag | None = None
    oci_subject: str | None = Field(
        None, description="Not supported: refused rather than accepted and ignored (docs/compatibility.md)."
    )
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("oci_subject")
    @classmethod
    def _no_subject(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "oci_subject (attaching the artifact to a subject through the referrers API) is not supported "
                "by this hub: remove it; the artifact is pushed under oci_repository:oci_tag"
            )
        return value


class OciConnection(WireModel):
    connection: NonBlank


class OciSigning(WireModel):
    type: Literal["key-pair"]
    secret_ref: str | None = None


class OciExport(WireModel):
    coordinates: OciCoordinates
    k8s: OciConnection | None = None
    signing: OciSigning | None = Field(
        None, description="Not supported: refused rather than accepted and ignored (docs/compatibility.md)."
    )

    @field_validator("signing")
    @classmethod
    def _no_signing(cls, value: OciSigning | None) -> OciSigning | None:
        if value is not None:
            raise ValueError(
                "signing is not supported by this hub: it would push an unsigned artifact while you asked for "
                "a signed one; remove signing, or sign the pushed artifact yourself (for example cosign sign)"
            )
        return value


class Exports(WireModel):
    oci: OciExport | None = None


class JobRequest(WireModel):
    """``POST /api/v1/evaluations/jobs``: run ``benchmarks``, or the benchmarks of ``collection``."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
    description: Annotated[str, StringConstraints(max_length=4096)] | None = None
    tags: list[Tag] = Field(default_factory=list)
    model: ModelRef
    benchmarks: list[JobBenchmark] | None = None
    collection: CollectionRef | None = None
    pass_criteria: PassCriteria | None = None
    experiment: Experiment | None = None
    custom: dict[str, Any] = Field(default_factory=dict)
    exports: Exports | None = None
    hardware_config: HardwareConfig | None = None
    queue: QueueRef | None = None

    @model_validator(mode="after")
    def _benchmarks_or_collection(self) -> JobRequest:
        if self.benchmarks is not None and self.collection is not None:
            raise ValueError("give either benchmarks or collection, not both")
        if self.benchmarks is None and self.collection is None:
            raise ValueError("give benchmarks or a collection to run")
        if self.benchmarks is not None and not self.benchmarks:
            raise ValueError("benchmarks must list at least one benchmark")
        check_composite_threshold(self.pass_criteria)
        return self


# --- adapter status events --------------------------------------------------------------------------


class MessageInfo(BaseModel):
    message: str
    message_code: str
    message_origin: MessageOrigin | None = None


class MetricSchemaEntry(BaseModel):
    name: str
    type: MetricType = "numeric"


class BenchmarkStatusEvent(BaseModel):
    """What an adapter (through the sidecar) reports about one benchmark run."""

    model_config = ConfigDict(extra="ignore")

    provider_id: ResourceId
    id: ResourceId
    benchmark_index: int = Field(0, ge=0)
    status: BenchmarkStatus
    phase: Phase | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    metrics_schema: list[MetricSchemaEntry] = Field(default_factory=list)
    additional_info: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, Any] = Field(default_factory=dict)
    error_message: MessageInfo | None = None
    warning_message: MessageInfo | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    mlflow_run_id: str | None = None
    logs_path: str | None = None
    job_meta: dict[str, Any] = Field(default_factory=dict)
    overall_score: float | None = None
    progress: float | None = Field(None, ge=0, le=1)
    current_step: str | None = None
    total_steps: int | None = Field(None, ge=0, le=STEPS_MAX)
    completed_steps: int | None = Field(None, ge=0, le=STEPS_MAX)
    # Assay: the sidecar's accounting of the model traffic (requests, cache hits, tokens), on terminal events.
    usage: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        return drop_nulls(data)

    @model_validator(mode="after")
    def _schema_names(self) -> BenchmarkStatusEvent:
        names = [entry.name for entry in self.metrics_schema]
        if len(set(names)) != len(names):
            raise ValueError("metrics_schema names must be unique")
        missing = [n for n in names if n not in self.metrics]
        if missing:
            raise ValueError(f"metrics_schema names {missing} are not in metrics")
        return self


class StatusEvent(BaseModel):
    """Body of ``POST /api/v1/evaluations/jobs/{id}/events``."""

    model_config = ConfigDict(extra="ignore")

    benchmark_status_event: BenchmarkStatusEvent
