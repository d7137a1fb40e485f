"""Tenant onboarding: create and repair what a tenant namespace needs (``tenants.py``), remove it when the
namespace stops being a tenant's. Idempotent: every call converges on the same objects, whatever exists.

Driven by the ``tenants`` function: an ApiServerSource event for a Namespace reconciles that namespace, a
PingSource tick reconciles all of them (a missed event, a hand-edited RoleBinding). Every call goes through
the official client in a worker thread, as the runtime's do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from assay.kubeapi import Objects
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


@dataclass
class Outcome:
    """What one reconcile did, per object kind and name."""

    tenant: str | None = None
    created: int = 0
    repaired: int = 0
    unchanged: int = 0
    removed: int = 0


# Where each kind onboarding makes lives (``tenants.tenant_objects``): its collection's path.
_COLLECTIONS = {
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies",
    "ConfigMap": "/api/v1/namespaces/{namespace}/configmaps",
    "LocalQueue": f"/apis/{KUEUE_GROUP}/{KUEUE_VERSION}/namespaces/{{namespace}}/localqueues",
    "ClusterQueue": f"/apis/{KUEUE_GROUP}/{KUEUE_VERSION}/clusterqueues",
}
_NAMESPACES = "/api/v1/namespaces"


def _where(obj: dict[str, Any]) -> tuple[str, dict[str, str], str]:
    """(collection path, its parameters, name) of ``obj``."""
    collection = _COLLECTIONS[obj["kind"]]
    params = {"namespace": obj["metadata"]["namespace"]} if "{namespace}" in collection else {}
    return collection, params, obj["metadata"]["name"]


class Onboarding(ApiUser):
    """Creates, repairs and removes tenants' objects through the Kubernetes API."""

    def __init__(
        self, settings: Settings, configuration: kubernetes.client.Configuration | None = None
    ) -> None:
        super().__init__(settings, configuration)
        # By path through the client's ApiClient, as the runtime: the generated API classes would import their
        # models (about 0.7 s of the tenants function's first event; assay.kubeapi).
        self._objects = Objects(self._client, settings.k8s_request_timeout_seconds)

    # -- one object, any kind -----------------------------------------------------------------------------

    async def _read(self, obj: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = await self._call(self._objects.read, *_where(obj))
        return found

    async def _create(self, obj: dict[str, Any]) -> None:
        collection, params, _ = _where(obj)
        await self._call(self._objects.create, collection, params, obj)

    async def _replace(self, obj: dict[str, Any]) -> None:
        await self._call(self._objects.replace, *_where(obj), obj)

    async def _delete(self, obj: dict[str, Any]) -> None:
        await self._call(self._objects.delete, *_where(obj))

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
                found = await self._call(self._objects.read, _NAMESPACES, {}, namespace)
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
        namespaces = (await self._call(self._objects.list, _NAMESPACES, {}))["items"]
        names = {
            n["metadata"]["name"]
            for n in namespaces
            if any(k in TENANT_LABELS for k in (n["metadata"].get("labels") or {}))
        }
        queues = (
            await self._call(
                self._objects.list, _COLLECTIONS["ClusterQueue"], {}, label_selector=LABEL_ONBOARDED
            )
        )["items"]
        existing = {n["metadata"]["name"] for n in namespaces}
        for queue in queues:
            tenant = queue["metadata"]["labels"][LABEL_ONBOARDED]
            names.add(self._settings.k8s_namespace_template.replace("{tenant}", tenant))
        return [await self.reconcile(name, deleted=name not in existing) for name in sorted(names)]


__all__ = ["Onboarding", "Outcome"]
