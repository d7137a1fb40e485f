"""Pydantic wire models of the EvalHub REST API v1 as Assay speaks it (requests, resources, errors)."""

from assay.api.collections import BenchmarkRef, CloneRequest, Collection, CollectionPage, CollectionSpec
from assay.api.common import (
    AgentMetadata,
    ErrorBody,
    ErrorDetail,
    Health,
    MetricScale,
    PassCriteria,
    PrimaryScore,
    Resource,
    TestDataRef,
    WireModel,
    error_path,
)
from assay.api.providers import (
    BenchmarkSpec,
    EnvVar,
    K8sRuntime,
    LocalRuntime,
    Provider,
    ProviderPage,
    ProviderRuntime,
    ProviderSpec,
)

__all__ = [
    "AgentMetadata",
    "BenchmarkRef",
    "BenchmarkSpec",
    "CloneRequest",
    "Collection",
    "CollectionPage",
    "CollectionSpec",
    "EnvVar",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "K8sRuntime",
    "LocalRuntime",
    "MetricScale",
    "PassCriteria",
    "PrimaryScore",
    "Provider",
    "ProviderPage",
    "ProviderRuntime",
    "ProviderSpec",
    "Resource",
    "TestDataRef",
    "WireModel",
    "error_path",
]
