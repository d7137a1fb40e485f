"""Triggers: evaluation policies applied to model versions announced by registries (CloudEvents, MLflow
webhooks, the Kubeflow Model Registry poll) and CI forges (GitHub, GitLab webhooks), exactly once per
(policy, version); and the baseline each evaluation is gated against. See ``docs/triggers.md``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assay._lazy import exports

if TYPE_CHECKING:
    from assay.lifecycle import SweepStep
    from assay.settings import Settings
    from assay.triggers.baseline import GatePlan, GateRequest, plan_gate, record_baseline
    from assay.triggers.deliveries import Outcome, ingest
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
    from assay.triggers.signatures import (
        BadSignature,
        github_signature,
        verify_github,
        verify_gitlab,
        verify_mlflow,
    )
    from assay.triggers.versions import ModelVersionEvent, version_order

# Names load with their module on first use (PEP 562): the REST app serves the webhooks, but their parsers and
# what a delivery runs are imported by the first delivery, not by every function's cold start.
_HOMES = {
    "GatePlan": "baseline",
    "GateRequest": "baseline",
    "plan_gate": "baseline",
    "record_baseline": "baseline",
    "Outcome": "deliveries",
    "ingest": "deliveries",
    "Ignored": "ingress",
    "RegistryEventData": "ingress",
    "parse_github": "ingress",
    "parse_gitlab": "ingress",
    "parse_mlflow": "ingress",
    "parse_registry_event": "ingress",
    "poll_kubeflow": "kubeflow",
    "check_policy": "matching",
    "policy_document": "policy_files",
    "sync_policy_files": "policy_files",
    "WebhookSecrets": "secrets",
    "BadSignature": "signatures",
    "github_signature": "signatures",
    "verify_github": "signatures",
    "verify_gitlab": "signatures",
    "verify_mlflow": "signatures",
    "ModelVersionEvent": "versions",
    "version_order": "versions",
}

__getattr__ = exports(__name__, _HOMES)


def sweep_steps(settings: Settings) -> list[SweepStep]:
    """What the sweep does for the triggers: submit what claimed versions still lack a job, and poll the
    Kubeflow Model Registries when any is configured."""
    from assay.triggers.deliveries import retry_unsettled_claims
    from assay.triggers.kubeflow import poll_kubeflow

    return [retry_unsettled_claims, *([poll_kubeflow] if settings.kubeflow_registries else [])]


__all__ = [
    "BadSignature",
    "GatePlan",
    "GateRequest",
    "Ignored",
    "ModelVersionEvent",
    "Outcome",
    "RegistryEventData",
    "WebhookSecrets",
    "check_policy",
    "github_signature",
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
