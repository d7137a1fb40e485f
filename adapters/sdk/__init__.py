"""Assay's adapter SDK: what a framework adapter is written against.

It mirrors eval-hub-sdk 1.0.6's ``evalhub.adapter`` names, fields and event bodies, so an adapter written
for EvalHub can switch its import line, and adds progress and step counts on the wire, retried delivery that
never swallows an error, ``cancelled`` on SIGTERM, ``stderr`` per metric, and group specs (one process
running several benchmarks of a job). Start with :class:`FrameworkAdapter` and :func:`run_adapter`.
"""

from __future__ import annotations

from adapters.sdk._environment import package_version
from adapters.sdk.adapter import EXIT_CANCELLED, FrameworkAdapter, configure_logging, run_adapter
from adapters.sdk.callbacks import DefaultCallbacks, callbacks_for_member
from adapters.sdk.credentials import MODEL_SECRETS_DIR, model_api_key
from adapters.sdk.endpoints import openai_base_url
from adapters.sdk.errors import (
    AdapterSDKError,
    CallbackError,
    CallbackRejected,
    CallbackUndelivered,
    JobSpecError,
    OCIPushError,
    ParameterError,
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
from adapters.sdk.parameters import float_parameter, int_parameter, validate_parameters
from adapters.sdk.results import Metric, finite_number, results_from_metrics
from adapters.sdk.settings import AdapterSettings, EvalHubMode

__all__ = [
    "EXIT_CANCELLED",
    "MODEL_SECRETS_DIR",
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
    "Metric",
    "MetricSchema",
    "ModelAuth",
    "ModelConfig",
    "OCIArtifactResult",
    "OCIArtifactSpec",
    "OCICoordinates",
    "OCIPushError",
    "ParameterError",
    "PrimaryScore",
    "ResultType",
    "callbacks_for_member",
    "configure_logging",
    "finite_number",
    "float_parameter",
    "int_parameter",
    "model_api_key",
    "openai_base_url",
    "package_version",
    "results_from_metrics",
    "run_adapter",
    "validate_parameters",
]
