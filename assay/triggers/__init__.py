"""Triggers: evaluation policies applied to model versions announced by registries (CloudEvents, MLflow
webhooks, the Kubeflow Model Registry poll) and CI forges (GitHub, GitLab webhooks), exactly once per
(policy, version); and the baseline each evaluation is gated against. See ``docs/triggers.md``."""

from assay.lifecycle import SweepStep
from assay.settings import Settings
from assay.triggers.baseline import GatePlan, GateRequest, plan_gate, record_baseline
from assay.triggers.deliveries import Outcome, ingest, retry_unsettled_claims
from assay.triggers.ingress import (
    Ignored,
    RegistryEventData,
    parse_github,
    parse_gitlab,
    parse_mlflow,
    parse_registry_event,
)
from assay.triggers.kubeflow import poll_kubeflow
from assay.triggers.matching import check_policy
from assay.triggers.policy_files import policy_document, sync_policy_files
from assay.triggers.secrets import WebhookSecrets
from assay.triggers.signatures import BadSignature, verify_github, verify_gitlab, verify_mlflow
from assay.triggers.versions import ModelVersionEvent, version_order


def sweep_steps(settings: Settings) -> list[SweepStep]:
    """What the sweep does for the triggers: submit what claimed versions still lack a job, and poll the
    Kubeflow Model Registries when any is configured."""
    return [retry_unsettled_claims, *([poll_kubeflow] if settings.kubeflow_registries else [])]


__all__ = [
    "BadSignature",
    "GatePlan",
    "GateRequest",
    "Ignored",
    "ModelVersionEvent",
    "Outcome",
    "RegistryEventData",
    "SweepStep",
    "WebhookSecrets",
    "check_policy",
    "ingest",
    "parse_github",
    "parse_gitlab",
    "parse_mlflow",
    "parse_registry_event",
    "plan_gate",
    "policy_document",
    "poll_kubeflow",
    "record_baseline",
    "sweep_steps",
    "sync_policy_files",
    "verify_github",
    "verify_gitlab",
    "verify_mlflow",
    "version_order",
]
