"""Assay's adapter SDK: what a framework adapter is written against.

It mirrors eval-hub-sdk 1.0.6's ``evalhub.adapter`` names, fields and event bodies, so an adapter written
for EvalHub can switch its import line, and adds progress and step counts on the wire, retried delivery that
never swallows an error, ``cancelled`` on SIGTERM, ``stderr`` per metric, and group specs (one process
running several benchmarks of a job). Start with :class:`FrameworkAdapter` and :func:`run_adapter`.
"""

from __future__ import annotations

from adapters.sdk.adapter import EXIT_CANCELLED, FrameworkAdapter, run_adapter
from adapters.sdk.callbacks import DefaultCallbacks
from adapters.sdk.errors import (
    AdapterSDKError,
    CallbackError,
    CallbackRejected,
    CallbackUndelivered,
    JobSpecError,
    OCIPushError,
)
from adapters.sdk.models import (
    ErrorInfo,
    EvaluationResult,
    GroupMember,
    JobCallbacks,
    JobPhase,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
    MessageInfo,
    MessageOrigin,
    MetricSchema,
    ModelAuth,
    ModelConfig,
    OCIArtifactResult,
    OCIArtifactSpec,
    OCICoordinates,
    PrimaryScore,
    ResultType,
)
from adapters.sdk.settings import AdapterSettings, EvalHubMode

__all__ = [
    "EXIT_CANCELLED",
    "AdapterSDKError",
    "AdapterSettings",
    "CallbackError",
    "CallbackRejected",
    "CallbackUndelivered",
    "DefaultCallbacks",
    "ErrorInfo",
    "EvalHubMode",
    "EvaluationResult",
    "FrameworkAdapter",
    "GroupMember",
    "JobCallbacks",
    "JobPhase",
    "JobResults",
    "JobSpec",
    "JobSpecError",
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
    "OCIPushError",
    "PrimaryScore",
    "ResultType",
    "run_adapter",
]
