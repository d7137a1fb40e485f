"""The job spec an adapter reads and the status and results it reports, mirroring eval-hub-sdk 1.0.6.

Names, fields and defaults follow ``evalhub.adapter.models`` (docs/compatibility.md) so an adapter
can switch its import line. Assay's additions: ``JobSpec.group`` / ``JobSpec.members()`` (one process runs
several benchmarks of a job), ``EvaluationResult.stderr``, and ``JobSpec.test_data_ref``.
"""

from __future__ import annotations

import json
import warnings
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapters.sdk.errors import JobSpecError

__all__ = [
    "ErrorInfo",
    "EvaluationResult",
    "GroupMember",
    "JobCallbacks",
    "JobPhase",
    "JobResults",
    "JobSpec",
    "JobSpecExports",
    "JobSpecExportsOCI",
    "JobStatus",
    "JobStatusUpdate",
    "MessageInfo",
    "MessageOrigin",
    "MetricSchema",
    "ModelAuth",
    "ModelConfig",
    "OCIArtifactResult",
    "OCIArtifactSpec",
    "OCICoordinates",
    "PrimaryScore",
    "ResultType",
]

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


class JobStatus(StrEnum):
    """A benchmark's status as reported in events."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARTIALLY_FAILED = "partially_failed"


class JobPhase(StrEnum):
    """The step a running benchmark is in, sent in this order (never ``completed`` by an adapter)."""

    INITIALIZING = "initializing"
    LOADING_DATA = "loading_data"
    RUNNING_EVALUATION = "running_evaluation"
    POST_PROCESSING = "post_processing"
    PERSISTING_ARTIFACTS = "persisting_artifacts"
    COMPLETED = "completed"


class MessageOrigin(StrEnum):
    """Who produced a message: ``adapter`` is the default for what an adapter reports."""

    ADAPTER = "adapter"
    SDK = "sdk"
    SERVER = "server"
    RUNTIME = "runtime"


class ResultType(StrEnum):
    """Declared type of a metric value (``metrics_schema``)."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    ARRAY_ORDERED = "array_ordered"
    ARRAY_UNORDERED = "array_unordered"
    TIME_SERIES = "time_series"


class MessageInfo(BaseModel):
    """A message with a machine-readable code; ``message_origin`` is stamped ``adapter`` when unset."""

    message: str
    message_code: str
    message_origin: MessageOrigin | None = None


# eval-hub-sdk keeps a separate, deprecated ErrorInfo with the same shape.
ErrorInfo = MessageInfo


class MetricSchema(BaseModel):
    """The declared type of one named metric."""

    name: str
    type: ResultType


class ModelAuth(BaseModel):
    """Where the model credentials live: a Secret name (k8s) or a ``file:///dir`` (local)."""

    secret_ref: str

    @field_validator("secret_ref")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("secret_ref cannot be empty")
        return value.strip()


class ModelConfig(BaseModel):
    """The model under evaluation; ``url`` may be empty for pre-recorded data."""

    url: str = ""
    name: str
    auth: ModelAuth | None = None

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("Model name cannot be empty")
        return value


class PrimaryScore(BaseModel):
    """The metric that is the benchmark's score, and its direction."""

    metric: str
    lower_is_better: bool = False


class OCICoordinates(BaseModel):
    """Where an OCI artifact goes."""

    oci_host: str
    oci_repository: str
    oci_tag: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)


class JobSpecExportsOCI(BaseModel):
    """``exports.oci`` of a job spec."""

    coordinates: OCICoordinates


class JobSpecExports(BaseModel):
    """``exports`` of a job spec."""

    oci: JobSpecExportsOCI | None = None


class GroupMember(BaseModel):
    """A further benchmark of the same job and provider that this process runs (Assay's ``group``)."""

    benchmark_id: str
    benchmark_index: int
    parameters: dict[str, Any] = Field(default_factory=dict)
    num_examples: int | None = None
    primary_score: PrimaryScore | None = None


class JobSpec(BaseModel):
    """The job spec (``job.json``, docs/compatibility.md); unknown keys are ignored."""

    id: str
    provider_id: str
    benchmark_id: str
    benchmark_index: int
    model: ModelConfig
    parameters: dict[str, Any]
    callback_url: str
    num_examples: int | None = None
    experiment_name: str | None = None
    tags: list[dict[str, str]] = Field(default_factory=list)
    primary_score: PrimaryScore | None = None
    exports: JobSpecExports | None = None
    test_data_ref: dict[str, Any] | None = None
    group: list[GroupMember] | None = None

    @classmethod
    def from_file(cls, path: Path | str) -> JobSpec:
        """Load a spec; a missing file raises ``FileNotFoundError``, anything invalid a
        :class:`JobSpecError` naming the file and every offending field."""
        file_path = Path(path)
        try:
            text = file_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"Job spec file not found: {file_path}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise JobSpecError(
                f"{file_path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
            ) from None
        if not isinstance(data, dict):
            raise JobSpecError(f"{file_path}: the job spec must be a JSON object, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in err['loc']) or '(root)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise JobSpecError(f"{file_path}: invalid job spec: {problems}") from None

    def members(self) -> list[JobSpec]:
        """One spec per benchmark this process runs: this one first, then each ``group`` member, each
        with its own benchmark id, index, parameters, ``num_examples`` and ``primary_score``."""
        lead = self.model_copy(update={"group": None}, deep=True)
        specs = [lead]
        for member in self.group or []:
            specs.append(
                lead.model_copy(
                    update={
                        "benchmark_id": member.benchmark_id,
                        "benchmark_index": member.benchmark_index,
                        "parameters": dict(member.parameters),
                        "num_examples": member.num_examples,
                        "primary_score": member.primary_score,
                    },
                    deep=True,
                )
            )
        return specs


class JobStatusUpdate(BaseModel):
    """A status event. eval-hub-sdk never sends ``progress`` or the step fields; Assay does."""

    status: JobStatus
    phase: JobPhase | None = None
    progress: float | None = Field(default=None, ge=0.0, le=1.0)
    # Local only (logged), as in eval-hub-sdk: the events body has no free-text message.
    message: MessageInfo | None = None
    current_step: str | None = None
    total_steps: int | None = Field(default=None, ge=0)
    completed_steps: int | None = Field(default=None, ge=0)
    error: MessageInfo | None = Field(default=None, description="Deprecated: use error_message.")
    error_message: MessageInfo | None = None
    warning_message: MessageInfo | None = None
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _warn_deprecated_error(self) -> JobStatusUpdate:
        if self.error is not None:
            warnings.warn(
                "JobStatusUpdate.error is deprecated, use error_message", DeprecationWarning, stacklevel=4
            )
        return self

    @property
    def resolved_error(self) -> MessageInfo | None:
        """``error_message``, falling back to the deprecated ``error``."""
        return self.error_message or self.error


class EvaluationResult(BaseModel):
    """One metric. ``stderr`` (Assay) is also sent as a numeric ``<metric_name>_stderr`` metric."""

    metric_name: str
    metric_value: float | int | str | bool
    metric_type: str = "float"
    confidence_interval: tuple[float, float] | None = None
    num_samples: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    stderr: float | None = Field(default=None, ge=0.0)


class OCIArtifactSpec(BaseModel):
    """What to push (a directory of files) and where."""

    files_path: Path
    coordinates: OCICoordinates


class OCIArtifactResult(BaseModel):
    """A pushed artifact: its digest and ``host/repo:tag@digest`` reference."""

    digest: str
    reference: str


def _card_as_dict(value: Any) -> Any:
    # Cards may be eval-hub-sdk card models or any pydantic model: what travels is their JSON without nulls.
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value


class JobResults(BaseModel):
    """What ``run_benchmark_job`` returns for one benchmark."""

    model_config = ConfigDict(validate_assignment=True)

    id: str
    benchmark_id: str
    benchmark_index: int
    model_name: str
    results: list[EvaluationResult]
    overall_score: float | None = None
    num_examples_evaluated: int = 0
    duration_seconds: float = 0.0
    completed_at: datetime | None = None
    evaluation_metadata: dict[str, Any] = Field(default_factory=dict)
    oci_artifact: OCIArtifactResult | None = None
    mlflow_run_id: str | None = None
    eval_card: dict[str, Any] | None = None
    env_card: dict[str, Any] | None = None
    metrics_schema: list[MetricSchema] | None = None
    additional_info: dict[str, Any] | None = None

    @field_validator("eval_card", "env_card", mode="before")
    @classmethod
    def _cards_to_dicts(cls, value: Any) -> Any:
        return _card_as_dict(value)

    @model_validator(mode="after")
    def _schema_names_known(self) -> JobResults:
        if self.metrics_schema:
            known = {r.metric_name for r in self.results}
            unknown = [m.name for m in self.metrics_schema if m.name not in known]
            if unknown:
                raise ValueError(f"metrics_schema contains names not present in results: {unknown}")
        return self


class JobCallbacks(ABC):
    """How an adapter reports: status updates, final results, OCI artifacts."""

    @abstractmethod
    def report_status(self, update: JobStatusUpdate) -> None:
        """Send a status update for this benchmark."""

    @abstractmethod
    def report_results(self, results: JobResults) -> None:
        """Send the final results of this benchmark (its terminal ``completed`` event)."""

    @abstractmethod
    def create_oci_artifact(self, spec: OCIArtifactSpec) -> OCIArtifactResult:
        """Push the files under ``spec.files_path`` as an OCI artifact and say where it went."""
