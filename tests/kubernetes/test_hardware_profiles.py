"""OpenDataHub HardwareProfiles (``infrastructure.opendatahub.io/v1``, the CRD in tests/k8s-schemas): a job's
``hardware_config.hardware_profile_name`` is read by dispatch, as deployed (its own ServiceAccount, the
RoleBinding of ``knative/hardware-profiles`` in the profiles' namespace), and gives the adapter its resources,
its queue and priority, or its node placement; a missing or disabled profile fails the benchmark with
EvalHub's code. Pure reading: tests/kubernetes/test_pure.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.kubernetes.conftest import TENANT, Cluster
from tests.manifests.rendering import KNATIVE, render

PROFILES = "opendatahub"


def _profile(
    name: str, scheduling: dict[str, Any] | None = None, *, disabled: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "identifiers": [
            {
                "displayName": "CPU",
                "identifier": "cpu",
                "minCount": 1,
                "defaultCount": 2,
                "maxCount": 4,
                "resourceType": "CPU",
            },
            {
                "displayName": "Memory",
                "identifier": "memory",
                "minCount": "2Gi",
                "defaultCount": "8Gi",
                "maxCount": "16Gi",
                "resourceType": "Memory",
            },
            {
                "displayName": "GPU",
                "identifier": "nvidia.com/gpu",
                "minCount": 1,
                "defaultCount": 1,
                "resourceType": "Accelerator",
            },
        ]
    }
    if scheduling is not None:
        spec["scheduling"] = scheduling
    return {
        "apiVersion": "infrastructure.opendatahub.io/v1",
        "kind": "HardwareProfile",
        "metadata": {
            "name": name,
            "namespace": PROFILES,
            "annotations": {"opendatahub.io/disabled": "true" if disabled else "false"},
        },
        "spec": spec,
    }


NODE = {
    "type": "Node",
    "node": {
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


@pytest.fixture()
def profiled(start_cluster: Callable[..., Cluster]) -> Cluster:
    cluster = start_cluster(ASSAY_K8S_HARDWARE_PROFILES_NAMESPACE=PROFILES)
    cluster.tenant()
    cluster.add_provider()
    cluster.api.add_namespace(PROFILES)
    cluster.api.apply(render(KNATIVE / "hardware-profiles"))  # the RoleBinding for dispatch there
    cluster.api.put(_profile("a100-node", NODE))
    cluster.api.put(
        _profile(
            "a100-queued",
            {"type": "Queue", "kueue": {"localQueueName": "gpu", "priorityClass": "assay-ci-gate"}},
        )
    )
    cluster.api.put(_profile("retired", NODE, disabled=True))
    return cluster


def _pod_spec(cluster: Cluster, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    (job,) = cluster.wait_jobs(job_id)
    return job["metadata"], job["spec"]["template"]["spec"]


def test_a_node_profile_gives_resources_and_placement(profiled: Cluster) -> None:
    job_id = profiled.submit_job(hardware_config={"hardware_profile_name": "a100-node"})
    metadata, spec = _pod_spec(profiled, job_id)
    (adapter,) = spec["containers"]
    assert adapter["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
    }
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert metadata["labels"]["kueue.x-k8s.io/queue-name"] == "assay"  # still queued by Kueue
    assert profiled.api.forbidden == []


def test_a_queue_profile_gives_the_queue_and_its_priority(profiled: Cluster) -> None:
    profiled.queue("gpu")
    job_id = profiled.submit_job(hardware_config={"hardware_profile_name": "a100-queued"})
    metadata, spec = _pod_spec(profiled, job_id)
    assert metadata["labels"]["kueue.x-k8s.io/queue-name"] == "gpu"
    assert metadata["labels"]["kueue.x-k8s.io/priority-class"] == "assay-ci-gate"
    assert "nodeSelector" not in spec and "tolerations" not in spec
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize(
    ("name", "code", "said"),
    [
        ("a100-nowhere", "hardware_profile_not_found", f"does not exist in namespace {PROFILES!r}"),
        ("retired", "hardware_profile_disabled", "is disabled"),
    ],
)
def test_a_missing_or_disabled_profile_fails_the_benchmark_and_creates_nothing(
    profiled: Cluster, name: str, code: str, said: str
) -> None:
    job_id = profiled.submit_job(hardware_config={"hardware_profile_name": name})
    job = profiled.wait_state(job_id, "failed")
    error = job["status"]["benchmarks"][0]["error_message"]
    assert error["message_code"] == code and said in error["message"] and repr(name) in error["message"]
    assert profiled.jobs(job_id) == [] and profiled.api.list("configmaps", TENANT) == []


def test_without_the_rolebinding_the_failure_names_the_right(profiled: Cluster) -> None:
    profiled.api.delete("rolebindings", PROFILES, "assay-dispatch-hardware-profiles")
    job_id = profiled.submit_job(hardware_config={"hardware_profile_name": "a100-node"})
    job = profiled.wait_state(job_id, "failed")
    error = job["status"]["benchmarks"][0]["error_message"]
    assert error["message_code"] == "hardware_profile_fetch_failed" and error["reason"] == "Forbidden"
    assert "'get' on hardwareprofiles.infrastructure.opendatahub.io" in error["message"]
    assert "Audit-Id" not in error["message"]
