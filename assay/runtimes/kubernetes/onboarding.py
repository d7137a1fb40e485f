"""Tenant onboarding: create and repair what a tenant namespace needs (``tenants.py``), remove it when the
namespace stops being a tenant's. Idempotent: every call converges on the same objects, whatever exists.

Driven by the ``tenants`` function: an ApiServerSource event for a Namespace reconciles that namespace, a
PingSource tick reconciles all of them (a missed event, a hand-edited RoleBinding). Every call goes through
the official client in a worker thread, as the runtime's do.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, TypeVar

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from assay.runtimes.kubernetes.runtime import KUEUE_GROUP, KUEUE_VERSION, ApiUser
from assay.runtimes.kubernetes.tenants import (
    LABEL_ONBOARDED,
    TENANT_LABELS,
    same,
    tenant_objects,
    tenant_of,
    tenant_of_name,
)
from assay.settings import Settings

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass
class Outcome:
    """What one reconcile did, per object kind and name."""

    tenant: str | None = None
    created: int = 0
    repaired: int = 0
    unchanged: int = 0
    removed: int = 0


def _body(response: Any) -> dict[str, Any]:
    if isinstance(response, dict):
        return response
    data: dict[str, Any] = json.loads(response.data)
    return data


class Onboarding(ApiUser):
    """Creates, repairs and removes tenants' objects through the Kubernetes API."""

    def __init__(
        self, settings: Settings, configuration: kubernetes.client.Configuration | None = None
    ) -> None:
        super().__init__(settings, configuration)
        self._core = kubernetes.client.CoreV1Api(self._client)
        self._rbac = kubernetes.client.RbacAuthorizationV1Api(self._client)
        self._networking = kubernetes.client.NetworkingV1Api(self._client)
        self._custom = kubernetes.client.CustomObjectsApi(self._client)

    # -- one object, any kind -----------------------------------------------------------------------------

    async def _read(self, obj: dict[str, Any]) -> dict[str, Any]:
        name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace")
        kind = obj["kind"]
        if kind == "RoleBinding":
            return _body(
                await self._call(
                    self._rbac.read_namespaced_role_binding, name, namespace, _preload_content=False
                )
            )
        if kind == "NetworkPolicy":
            return _body(
                await self._call(
                    self._networking.read_namespaced_network_policy, name, namespace, _preload_content=False
                )
            )
        if kind == "ConfigMap":
            return _body(
                await self._call(
                    self._core.read_namespaced_config_map, name, namespace, _preload_content=False
                )
            )
        if kind == "LocalQueue":
            return _body(
                await self._call(
                    self._custom.get_namespaced_custom_object,
                    KUEUE_GROUP,
                    KUEUE_VERSION,
                    namespace,
                    "localqueues",
                    name,
                )
            )
        return _body(
            await self._call(
                self._custom.get_cluster_custom_object, KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", name
            )
        )

    async def _create(self, obj: dict[str, Any]) -> None:
        namespace, kind = obj["metadata"].get("namespace"), obj["kind"]
        if kind == "RoleBinding":
            await self._call(
                self._rbac.create_namespaced_role_binding, namespace, obj, _preload_content=False
            )
        elif kind == "NetworkPolicy":
            await self._call(
                self._networking.create_namespaced_network_policy, namespace, obj, _preload_content=False
            )
        elif kind == "ConfigMap":
            await self._call(self._core.create_namespaced_config_map, namespace, obj, _preload_content=False)
        elif kind == "LocalQueue":
            await self._call(
                self._custom.create_namespaced_custom_object,
                KUEUE_GROUP,
                KUEUE_VERSION,
                namespace,
                "localqueues",
                obj,
            )
        else:
            await self._call(
                self._custom.create_cluster_custom_object, KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", obj
            )

    async def _replace(self, obj: dict[str, Any]) -> None:
        name, namespace, kind = obj["metadata"]["name"], obj["metadata"].get("namespace"), obj["kind"]
        if kind == "RoleBinding":
            await self._call(
                self._rbac.replace_namespaced_role_binding, name, namespace, obj, _preload_content=False
            )
        elif kind == "NetworkPolicy":
            await self._call(
                self._networking.replace_namespaced_network_policy,
                name,
                namespace,
                obj,
                _preload_content=False,
            )
        elif kind == "ConfigMap":
            await self._call(
                self._core.replace_namespaced_config_map, name, namespace, obj, _preload_content=False
            )
        elif kind == "LocalQueue":
            await self._call(
                self._custom.replace_namespaced_custom_object,
                KUEUE_GROUP,
                KUEUE_VERSION,
                namespace,
                "localqueues",
                name,
                obj,
            )
        else:
            await self._call(
                self._custom.replace_cluster_custom_object,
                KUEUE_GROUP,
                KUEUE_VERSION,
                "clusterqueues",
                name,
                obj,
            )

    async def _delete(self, obj: dict[str, Any]) -> None:
        name, namespace, kind = obj["metadata"]["name"], obj["metadata"].get("namespace"), obj["kind"]
        if kind == "RoleBinding":
            await self._call(
                self._rbac.delete_namespaced_role_binding, name, namespace, _preload_content=False
            )
        elif kind == "NetworkPolicy":
            await self._call(
                self._networking.delete_namespaced_network_policy, name, namespace, _preload_content=False
            )
        elif kind == "ConfigMap":
            await self._call(self._core.delete_namespaced_config_map, name, namespace, _preload_content=False)
        elif kind == "LocalQueue":
            await self._call(
                self._custom.delete_namespaced_custom_object,
                KUEUE_GROUP,
                KUEUE_VERSION,
                namespace,
                "localqueues",
                name,
            )
        else:
            await self._call(
                self._custom.delete_cluster_custom_object, KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", name
            )

    async def _ensure(self, want: dict[str, Any], outcome: Outcome) -> None:
        try:
            await self._create(want)
            outcome.created += 1
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        have = await self._read(want)
        if same(want, have):
            outcome.unchanged += 1
            return
        if want["kind"] == "RoleBinding" and have.get("roleRef") != want["roleRef"]:
            await self._delete(want)  # a RoleBinding's roleRef cannot change: make it anew
            await self._create(want)
        else:
            metadata = {**want["metadata"], "resourceVersion": have["metadata"]["resourceVersion"]}
            await self._replace({**want, "metadata": metadata})
        log.info("repaired %s %s of tenant %s", want["kind"], want["metadata"]["name"], outcome.tenant)
        outcome.repaired += 1

    async def _remove(self, want: dict[str, Any], outcome: Outcome) -> None:
        """Delete an object onboarding made (carrying its label); one made by hand stays."""
        try:
            have = await self._read(want)
            if (have.get("metadata", {}).get("labels") or {}).get(LABEL_ONBOARDED) != outcome.tenant:
                return
            await self._delete(want)
            outcome.removed += 1
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- what the function calls ---------------------------------------------------------------------------

    async def reconcile(self, namespace: str, *, deleted: bool = False) -> Outcome:
        """Make ``namespace`` what its labels say: a tenant's (create or repair everything) or not (remove
        what onboarding made for it)."""
        found: dict[str, Any] | None = None
        if not deleted:
            try:
                found = _body(await self._call(self._core.read_namespace, namespace, _preload_content=False))
            except ApiException as exc:
                if exc.status != 404:
                    raise
        tenant = tenant_of(self._settings, found) if found is not None else None
        if tenant is not None:
            outcome = Outcome(tenant=tenant)
            for want in tenant_objects(self._settings, tenant, namespace):
                await self._ensure(want, outcome)
            log.info("tenant %s in namespace %s: %s", tenant, namespace, outcome)
            return outcome
        outcome = Outcome(tenant=tenant_of_name(self._settings, namespace))
        if outcome.tenant is None:
            return outcome
        for want in reversed(tenant_objects(self._settings, outcome.tenant, namespace)):
            if found is None and want["metadata"].get("namespace"):
                continue  # the namespace is gone and took its objects with it
            await self._remove(want, outcome)
        if outcome.removed:
            log.info(
                "namespace %s is no longer tenant %s's: removed %d objects",
                namespace,
                outcome.tenant,
                outcome.removed,
            )
        return outcome

    async def resync(self) -> list[Outcome]:
        """Every tenant namespace, and every namespace that was one (a ClusterQueue onboarding made)."""
        namespaces = _body(await self._call(self._core.list_namespace, _preload_content=False))["items"]
        names = {
            n["metadata"]["name"]
            for n in namespaces
            if any(k in TENANT_LABELS for k in (n["metadata"].get("labels") or {}))
        }
        queues = _body(
            await self._call(
                self._custom.list_cluster_custom_object,
                KUEUE_GROUP,
                KUEUE_VERSION,
                "clusterqueues",
                label_selector=LABEL_ONBOARDED,
            )
        )["items"]
        existing = {n["metadata"]["name"] for n in namespaces}
        for queue in queues:
            tenant = queue["metadata"]["labels"][LABEL_ONBOARDED]
            names.add(self._settings.k8s_namespace_template.replace("{tenant}", tenant))
        return [await self.reconcile(name, deleted=name not in existing) for name in sorted(names)]


__all__ = ["Onboarding", "Outcome"]
