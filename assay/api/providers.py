"""Provider wire models: a framework adapter, how to run it, and the benchmarks it offers."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from assay.api.common import (
    AgentMetadata,
    BenchmarkAgentMetadata,
    PassCriteria,
    PrimaryScore,
    Resource,
    ResourceId,
    Tag,
    WireModel,
)

_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$")


def _quantity(value: str | int | float) -> str:
    text = str(value)
    if not _QUANTITY.match(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (for example 500m, 2, 4Gi)")
    return text


Quantity = Annotated[str, Field(json_schema_extra={"examples": ["500m", "4Gi"]})]


def _canonical_keys(data: Any, canonical: tuple[str, ...]) -> Any:
    """Map EvalHub 1.0.2's Go-style keys (``CPURequest``, ``Env``) onto snake_case, case-insensitively.

    Keys that match neither spelling are left alone, so ``extra="forbid"`` names them in the error.
    """
    if not isinstance(data, dict):
        return data
    by_squashed = {name.replace("_", ""): name for name in canonical}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = by_squashed.get(str(key).replace("_", "").lower(), key) if isinstance(key, str) else key
        out[name] = value
    return out


class EnvVar(WireModel):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]
    value: str = ""

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, data: Any) -> Any:
        return _canonical_keys(data, ("name", "value"))


class GpuRequest(WireModel):
    resource: Annotated[str, StringConstraints(min_length=1)] = "nvidia.com/gpu"
    count: int = Field(1, ge=0)
    node_selector: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, data: Any) -> Any:
        return _canonical_keys(data, ("resource", "count", "node_selector"))


class K8sRuntime(WireModel):
    """How the adapter runs as a Kubernetes Job. Accepts snake_case and EvalHub 1.0.2's Go-style keys;
    always emitted as snake_case."""

    image: str | None = None
    entrypoint: list[str] = Field(default_factory=list)
    cpu_request: Quantity | None = None
    memory_request: Quantity | None = None
    cpu_limit: Quantity | None = None
    memory_limit: Quantity | None = None
    gpu: GpuRequest | None = None
    env: list[EnvVar] = Field(default_factory=list)
    image_pull_policy: Literal["if_not_present", "always"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, data: Any) -> Any:
        data = _canonical_keys(
            data,
            (
                "image",
                "entrypoint",
                "cpu_request",
                "memory_request",
                "cpu_limit",
                "memory_limit",
                "gpu",
                "env",
                "image_pull_policy",
            ),
        )
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if v not in (None, "")}
            policy = data.get("image_pull_policy")
            if isinstance(policy, str):
                data["image_pull_policy"] = {"ifnotpresent": "if_not_present"}.get(
                    policy.replace("_", "").lower(), policy.lower()
                )
        return data

    @field_validator("cpu_request", "memory_request", "cpu_limit", "memory_limit", mode="before")
    @classmethod
    def _is_quantity(cls, value: Any) -> Any:
        return _quantity(value) if isinstance(value, str | int | float) else value


class LocalRuntime(WireModel):
    """How the adapter runs on the local hub: ``sh -c <command>`` with ``env`` added."""

    command: Annotated[str, StringConstraints(min_length=1)]
    env: list[EnvVar] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, data: Any) -> Any:
        return _canonical_keys(data, ("command", "env"))


class ProviderRuntime(WireModel):
    k8s: K8sRuntime | None = None
    local: LocalRuntime | None = None
    # Assay: the adapter runs all of a job's benchmarks of this provider in ONE process (lm-eval batches its
    # tasks in one harness call); its job.json lists the others under ``group``.
    group_benchmarks: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _spellings(cls, data: Any) -> Any:
        return _canonical_keys(data, ("k8s", "local", "group_benchmarks"))


class BenchmarkSpec(WireModel):
    """One benchmark a provider offers (EvalHub ``Benchmark``)."""

    id: ResourceId
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    category: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    url: str | None = None
    description: Annotated[str, StringConstraints(max_length=4096)] | None = None
    metrics: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default_factory=list)
    num_few_shot: int = Field(0, ge=0)
    dataset_size: int = Field(0, ge=0)
    tags: list[Tag] = Field(default_factory=list)
    primary_score: PrimaryScore | None = None
    pass_criteria: PassCriteria | None = None
    agent: BenchmarkAgentMetadata | None = None

    @model_validator(mode="after")
    def _primary_metric_is_offered(self) -> BenchmarkSpec:
        if self.primary_score and self.metrics and self.primary_score.metric not in self.metrics:
            raise ValueError(
                f"primary_score.metric {self.primary_score.metric!r} is not one of metrics {self.metrics}"
            )
        return self


class ProviderSpec(WireModel):
    """What a client sends to create or replace a provider (and what a YAML file holds)."""

    id: ResourceId | None = Field(None, description="Optional on create: a readable id; default a UUID.")
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    title: Annotated[str, StringConstraints(max_length=256)] = ""
    description: Annotated[str, StringConstraints(max_length=1024)] | None = None
    tags: list[Tag] = Field(default_factory=list)
    runtime: ProviderRuntime | None = None
    benchmarks: list[BenchmarkSpec] = Field(min_length=1)
    agent: AgentMetadata | None = None
    custom: dict[str, Any] = Field(default_factory=dict)
    resource: dict[str, Any] | None = Field(
        None, description="Ignored on input: resource metadata is the server's.", exclude=True
    )

    @model_validator(mode="after")
    def _unique_benchmark_ids(self) -> ProviderSpec:
        seen: set[str] = set()
        for benchmark in self.benchmarks:
            if benchmark.id in seen:
                raise ValueError(f"benchmark id {benchmark.id!r} appears twice")
            seen.add(benchmark.id)
        return self

    def benchmark(self, benchmark_id: str) -> BenchmarkSpec | None:
        return next((b for b in self.benchmarks if b.id == benchmark_id), None)


class Provider(BaseModel):
    """A provider as the API returns it."""

    resource: Resource
    name: str
    title: str = ""
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    runtime: ProviderRuntime | None = None
    benchmarks: list[BenchmarkSpec] = Field(default_factory=list)
    agent: AgentMetadata | None = None
    custom: dict[str, Any] = Field(default_factory=dict)


class ProviderPage(BaseModel):
    first: dict[str, str]
    next: dict[str, str] | None = None
    limit: int
    total_count: int
    items: list[Provider] = Field(default_factory=list)
