"""What a tenant needs on the cluster, as plain dicts: tenant onboarding creates these (pure: no client, no I/O).

A namespace becomes a tenant's when it carries Assay's tenant label (``assay.dev/tenant``) or EvalHub's
(``evalhub.trustyai.opendatahub.io/tenant``); the tenant's name is the namespace read back through
``ASSAY_K8S_NAMESPACE_TEMPLATE``. It then gets, all labelled ``assay.dev/onboarded-tenant: <tenant>``:

- RoleBindings of the functions' ClusterRoles (dispatch, sweep, submit's pod logs, the ApiServerSource) in the
  namespace;
- its own Kueue ClusterQueue ``assay-<tenant>`` (nominal quota ``ASSAY_K8S_TENANT_QUOTA``, borrowing from
  the cohort ``ASSAY_K8S_COHORT`` under fair sharing) and the LocalQueue ``ASSAY_K8S_LOCAL_QUEUE`` on it;
- NetworkPolicies: nothing may connect to the evaluation pods (the sidecar listens on loopback), and they
  may reach DNS and anything but link-local addresses (cloud metadata);
- with ``ASSAY_K8S_HUB_CA_CONFIG_MAP``, that ConfigMap annotated for OpenShift's service-CA injection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from assay.runtimes.kubernetes.objects import LABEL_MANAGED_BY, MANAGER
from assay.settings import Settings

TENANT_LABELS = ("assay.dev/tenant", "evalhub.trustyai.opendatahub.io/tenant")
"""A namespace with either label is a tenant's (Assay's own, and the one EvalHub's operator sets)."""
LABEL_ONBOARDED = "assay.dev/onboarded-tenant"
FUNCTION_ROLES = ("assay-dispatch", "assay-sweep", "assay-submit", "assay-apiserversource")
CPU_FLAVOR = "assay-cpu"
GPU_FLAVOR = "assay-gpu"
_GPU = "nvidia.com/gpu"
_INJECT_CA = "service.beta.openshift.io/inject-cabundle"
_TENANT = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def tenant_of(settings: Settings, namespace: Mapping[str, Any]) -> str | None:
    """The tenant a Namespace object belongs to: labelled as a tenant's, and named by the namespace template."""
    metadata = namespace.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if not any(label in labels for label in TENANT_LABELS):
        return None
    return tenant_of_name(settings, str(metadata.get("name") or ""))


def tenant_of_name(settings: Settings, namespace: str) -> str | None:
    prefix, _, suffix = settings.k8s_namespace_template.partition("{tenant}")
    if not (namespace.startswith(prefix) and namespace.endswith(suffix)):
        return None
    tenant = namespace[len(prefix) : len(namespace) - len(suffix)]
    return tenant if _TENANT.fullmatch(tenant) else None


def cluster_queue_name(tenant: str) -> str:
    return f"assay-{tenant}"


def _metadata(tenant: str, name: str, namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {LABEL_MANAGED_BY: MANAGER, LABEL_ONBOARDED: tenant, "app.kubernetes.io/part-of": "assay"},
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def _quota(settings: Settings) -> list[dict[str, Any]]:
    quota = settings.k8s_tenant_quota
    cpu = [
        {"name": resource, "nominalQuota": str(quota.get(resource, "0"))} for resource in ("cpu", "memory")
    ]
    gpu = [{"name": _GPU, "nominalQuota": str(quota.get(_GPU, "0"))}]
    return [
        {"coveredResources": ["cpu", "memory"], "flavors": [{"name": CPU_FLAVOR, "resources": cpu}]},
        {"coveredResources": [_GPU], "flavors": [{"name": GPU_FLAVOR, "resources": gpu}]},
    ]


def tenant_objects(settings: Settings, tenant: str, namespace: str) -> list[dict[str, Any]]:
    """Everything onboarding creates for ``tenant`` in ``namespace``, in creation order (the ClusterQueue before
    the LocalQueue that points at it)."""
    functions = settings.k8s_functions_namespace
    rbac = "rbac.authorization.k8s.io"
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(tenant, role, namespace),
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": role, "namespace": functions}],
        }
        for role in FUNCTION_ROLES
    ]
    queue = cluster_queue_name(tenant)
    objects.append(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": _metadata(tenant, queue, None),
            "spec": {
                "cohortName": settings.k8s_cohort,
                # Only this tenant's namespace may queue here.
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "queueingStrategy": "BestEffortFIFO",
                # Its priorities (a CI gate over a sweep's backfill) act within the tenant's own queue; across
                # tenants, fair sharing decides who borrows, and each reclaims its nominal quota.
                "preemption": {
                    "withinClusterQueue": "LowerPriority",
                    "reclaimWithinCohort": "Any",
                    "borrowWithinCohort": {"policy": "Never"},
                },
                "fairSharing": {"weight": "1"},
                "resourceGroups": _quota(settings),
            },
        }
    )
    objects.append(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": _metadata(tenant, settings.k8s_local_queue, namespace),
            "spec": {"clusterQueue": queue},
        }
    )
    objects.extend(network_policies(tenant, namespace))
    if settings.k8s_hub_ca_config_map:
        metadata = _metadata(tenant, settings.k8s_hub_ca_config_map, namespace)
        metadata["annotations"] = {_INJECT_CA: "true"}
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})
    return objects


def network_policies(tenant: str, namespace: str) -> list[dict[str, Any]]:
    """Default deny for a tenant namespace: no ingress at all; egress to DNS, and to anything but link-local
    addresses (169.254.0.0/16: cloud metadata), since models, MLflow and registries live anywhere."""
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(tenant, "assay-default-deny", namespace),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    egress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(tenant, "assay-evaluation-egress", namespace),
        "spec": {
            "podSelector": {"matchLabels": {LABEL_MANAGED_BY: MANAGER}},
            "policyTypes": ["Egress"],
            "egress": [
                {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}]},
            ],
        },
    }
    return [deny, egress]


def same(want: Any, have: Any) -> bool:
    """Whether the stored ``have`` says what ``want`` says: every field onboarding sets has its value (fields
    the server or a controller adds, such as defaults, metadata and status, are not onboarding's)."""
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return False
        return all(
            key in ("apiVersion", "kind", "name", "namespace") or same(value, have.get(key))
            for key, value in want.items()
        )
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(same, want, have))
    return bool(want == have)


__all__ = [
    "FUNCTION_ROLES",
    "LABEL_ONBOARDED",
    "TENANT_LABELS",
    "cluster_queue_name",
    "network_policies",
    "same",
    "tenant_objects",
    "tenant_of",
    "tenant_of_name",
]
