"""kueue/: the queues agree with the Kubernetes runtime — API version, the tenant's default LocalQueue, the
WorkloadPriorityClasses the runtime labels Jobs with, in the documented order — and with each other."""

from __future__ import annotations

from assay.runtimes.kubernetes.runtime import KUEUE_GROUP, KUEUE_VERSION
from assay.settings import Settings
from tests.manifests.rendering import KUEUE, Obj, named, of_kind, render, selects

DEFAULTS = Settings(database_url="postgresql://unused")


def cluster_objects() -> list[Obj]:
    return render(KUEUE)


def tenant_objects() -> list[Obj]:
    return render(KUEUE / "tenants" / "example")


def test_every_kueue_object_uses_the_runtimes_api_version() -> None:
    kueue = [o for o in cluster_objects() + tenant_objects() if o["apiVersion"].startswith(f"{KUEUE_GROUP}/")]
    assert kueue
    assert {o["apiVersion"] for o in kueue} == {f"{KUEUE_GROUP}/{KUEUE_VERSION}"}
    assert KUEUE_VERSION == "v1beta2"  # docs/deployment.md says so


def test_the_cohort_and_tenant_queues_reference_existing_flavors_with_quota_for_each_resource() -> None:
    rendered = cluster_objects()
    flavors = {f["metadata"]["name"]: f for f in of_kind(rendered, "ResourceFlavor", KUEUE_GROUP)}
    (cohort,) = of_kind(rendered, "Cohort", KUEUE_GROUP)
    assert not of_kind(rendered, "ClusterQueue", KUEUE_GROUP), "no ClusterQueue shared by all tenants"
    (tenant_queue,) = of_kind(tenant_objects(), "ClusterQueue", KUEUE_GROUP)
    assert tenant_queue["spec"]["cohortName"] == cohort["metadata"]["name"]
    assert tenant_queue["spec"]["fairSharing"]["weight"]
    for spec in (cohort["spec"], tenant_queue["spec"]):
        covered: list[str] = []
        for group in spec["resourceGroups"]:
            covered += group["coveredResources"]
            for flavor in group["flavors"]:
                assert flavor["name"] in flavors
                assert [r["name"] for r in flavor["resources"]] == group["coveredResources"]
        assert len(covered) == len(set(covered)), "a resource is in two resource groups"
        # What the runtime's pods request: cpu and memory always, nvidia.com/gpu by default for GPUs.
        assert {"cpu", "memory", "nvidia.com/gpu"} <= set(covered)
        gpu = next(g for g in spec["resourceGroups"] if "nvidia.com/gpu" in g["coveredResources"])
        for flavor in gpu["flavors"]:
            found = flavors[flavor["name"]]["spec"]
            assert found["nodeLabels"] and found["tolerations"], "the GPU flavor places pods on GPU nodes"


def test_priority_classes_are_the_ones_the_runtime_labels_jobs_with_in_order() -> None:
    values = {c["metadata"]["name"]: c["value"] for c in of_kind(cluster_objects(), "WorkloadPriorityClass")}
    by_trigger = DEFAULTS.k8s_priority_classes
    assert set(values) == set(by_trigger.values())
    # CI gates above registry-triggered runs above interactive ones above the sweep's backfill.
    order = [values[by_trigger[t]] for t in ("ci", "registry", "user", "sweep")]
    assert order == sorted(order, reverse=True) and len(set(order)) == len(order)


def test_a_tenant_gets_the_default_local_queue_in_a_namespace_the_cluster_queue_admits() -> None:
    rendered = tenant_objects()
    (namespace,) = of_kind(rendered, "Namespace", "v1")
    tenant = namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["assay.dev/tenant"] == tenant
    assert DEFAULTS.k8s_namespace_template.replace("{tenant}", tenant) == tenant
    (local_queue,) = of_kind(rendered, "LocalQueue", KUEUE_GROUP)
    assert local_queue["metadata"]["name"] == DEFAULTS.k8s_local_queue
    assert local_queue["metadata"]["namespace"] == tenant
    cluster_queue = named(rendered, "ClusterQueue", local_queue["spec"]["clusterQueue"], KUEUE_GROUP)
    # The API server labels every namespace with its name; the tenant's queue admits its namespace only.
    labels = {**namespace["metadata"]["labels"], "kubernetes.io/metadata.name": tenant}
    assert selects(cluster_queue["spec"]["namespaceSelector"], labels)
    assert not selects(cluster_queue["spec"]["namespaceSelector"], {"kubernetes.io/metadata.name": "team-b"})
    for obj in rendered:
        if obj["kind"] not in ("Namespace", "ClusterQueue"):
            assert obj["metadata"]["namespace"] == tenant
