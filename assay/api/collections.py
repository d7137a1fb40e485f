"""Collection wire models: a weighted, scored set of benchmarks from one or more providers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, model_validator

from assay.api.common import (
    AgentMetadata,
    ErrorDetail,
    PassCriteria,
    PrimaryScore,
    Resource,
    ResourceId,
    Tag,
    TestDataRef,
    WireModel,
    benchmark_id_alias,
)


class BenchmarkRef(WireModel):
    """One benchmark of a collection, by ``(provider_id, id)``, with its weight and scoring."""

    id: ResourceId
    provider_id: ResourceId
    weight: float = Field(1.0, ge=0, allow_inf_nan=False)
    parameters: dict[str, Any] = Field(default_factory=dict)
    primary_score: PrimaryScore | None = None
    pass_criteria: PassCriteria | None = None
    test_data_ref: TestDataRef | None = None
    url: str | None = Field(None, description="Filled by the server from the provider's benchmark.")

    @model_validator(mode="before")
    @classmethod
    def _benchmark_id_alias(cls, data: Any) -> Any:
        return benchmark_id_alias(data)


class CollectionSpec(WireModel):
    """What a client sends to create or replace a collection (and what a YAML file holds)."""

    id: ResourceId | None = Field(None, description="Optional on create: a readable id; default a UUID.")
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    category: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    description: Annotated[str, StringConstraints(max_length=1024)] = ""
    tags: list[Tag] = Field(default_factory=list)
    custom: dict[str, Any] = Field(default_factory=dict)
    pass_criteria: PassCriteria | None = None
    benchmarks: list[BenchmarkRef] = Field(min_length=1)
    agent: AgentMetadata | None = None
    resource: dict[str, Any] | None = Field(
        None, description="Ignored on input: resource metadata is the server's.", exclude=True
    )


class Collection(BaseModel):
    """A collection as the API returns it."""

    resource: Resource
    name: str
    category: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    custom: dict[str, Any] = Field(default_factory=dict)
    pass_criteria: PassCriteria | None = None
    benchmarks: list[BenchmarkRef] = Field(default_factory=list)
    agent: AgentMetadata | None = None
    derived_from: str | None = None
    warnings: list[ErrorDetail] | None = Field(
        None,
        description="On create, replace, patch and clone only: what was accepted but deserves attention "
        "(a weighted metric with no known scale is left out of the composite score).",
    )


class CollectionPage(BaseModel):
    first: dict[str, str]
    next: dict[str, str] | None = None
    limit: int
    total_count: int
    items: list[Collection] = Field(default_factory=list)


class CloneRequest(WireModel):
    """Body of ``POST /collections/{id}/clones``: any field to change on the copy."""

    id: ResourceId | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    category: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    description: Annotated[str, StringConstraints(max_length=1024)] | None = None
    tags: list[Tag] | None = None
