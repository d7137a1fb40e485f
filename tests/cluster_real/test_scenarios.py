"""The scenarios of tests/kubernetes, on a real cluster: submit -> Workload admitted by Kueue -> Job unsuspended ->
an outcome -> the API's state. Kueue, the Job controller and the garbage collector are real; the functions
run as deployed (deployment.py) with their own ServiceAccounts' RBAC. Only the kubelet is played: a pod's
outcome is written into its status, and the real Job controller takes it from there.
"""

from __future__ import annotations

from typing import Any

from assay.runtimes.kubernetes import job_name
from tests.cluster_real.deployment import Deployment
from tests.cluster_real.tier import EVALUATION, Tier, condition, is_true, terminated
from tests.manifests.code_permissions import HARDWARE_PROFILES, function_permissions
from tests.support.waiting import wait_for

RAW_CLIENT_TEXT = ("HTTP response headers", "Audit-Id", "X-Kubernetes-Pf", "Reason: ", '"kind":"Status"')


def _runtime_failure(entry: dict[str, Any], code: str) -> dict[str, Any]:
    error = entry.get("error_message") or {}
    assert entry["status"] == "failed", entry
    assert error.get("message_code") == code, entry
    assert error.get("message_origin") == "runtime", entry
    for raw in RAW_CLIENT_TEXT:
        assert raw not in error.get("message", ""), f"raw client text {raw!r} in {error}"
    return dict(error)


def _admitted_pod(tier: Tier, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    (job,) = tier.wait_job(job_id)
    tier.wait_admitted(job)
    tier.wait_job_where(job, lambda j: j["spec"].get("suspend") is False)  # Kueue unsuspended it
    return job, tier.wait_pod(job)  # and the Job controller made its pod


def test_the_manifests_apply_and_only_dispatch_may_launch(deployment: Deployment) -> None:
    assert all("Warning" not in w for w in deployment.applied_warnings), deployment.applied_warnings
    kube, tenant = deployment.kube, deployment.tenants[0]
    launchers = []
    for name, function in sorted(deployment.functions.items()):
        who = f"--as=system:serviceaccount:assay:{function.service_account}"
        can = kube.run("auth", "can-i", "create", "jobs.batch", "-n", tenant, who, check=False)
        if can.stdout.strip() == "yes":
            launchers.append(name)
    assert launchers == ["dispatch"]
    who = "--as=system:serviceaccount:assay:assay-sweep"
    assert kube.run("auth", "can-i", "get", "secrets", "-n", "assay", who, check=False).stdout.strip() == "no"


def test_the_real_rbac_allows_every_call_the_code_makes_in_a_tenant_namespace(deployment: Deployment) -> None:
    """What tests/manifests checks on the rendered YAML, asked of the real API server: each function's
    ServiceAccount may make every call its code makes in a tenant's namespace (submit reading pod logs,
    sweep listing FailedMount Events, ...) and none of them in a namespace that is not a tenant's."""
    kube, tenant = deployment.kube, deployment.tenants[0]

    def can(account: str, verb: str, resource: str, namespace: str) -> bool:
        # kubectl reads "pods/log" as the pod named "log": a subresource is its own flag.
        kind, _, sub = resource.partition("/")
        extra = [f"--subresource={sub}"] if sub else []
        who = f"--as=system:serviceaccount:assay:{account}"
        answer = kube.run("auth", "can-i", verb, kind, *extra, "-n", namespace, who, check=False)
        return answer.stdout.strip() == "yes"

    checked = 0
    for name, function in sorted(deployment.functions.items()):
        if name not in ("dispatch", "sweep", "submit"):
            continue
        for group, resource, verb in sorted(function_permissions(name)):
            if group == HARDWARE_PROFILES:
                continue  # granted where the profiles live (knative/hardware-profiles), not per tenant
            kind, slash, sub = resource.partition("/")
            qualified = (f"{kind}.{group}" if group else kind) + slash + sub
            assert can(function.service_account, verb, qualified, tenant), (
                f"{name} may not {verb} {qualified}"
            )
            assert not can(function.service_account, verb, qualified, "default"), (
                f"{name}: {verb} {qualified}"
            )
            checked += 1
    assert checked >= 10
    assert can("assay-submit", "get", "pods/log", tenant)
    assert not can("assay-submit", "create", "pods", tenant)


def test_success_admitted_unsuspended_completed(tier: Tier) -> None:
    job_id = tier.submit()
    (job,) = tier.wait_job(job_id)
    labels = job["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "assay"
    assert labels["kueue.x-k8s.io/priority-class"] == "assay-interactive"
    workload = tier.wait_admitted(job)
    assert workload["status"]["admission"]["clusterQueue"] == f"assay-{tier.tenant}"  # kueue/tenants/example
    assert workload["spec"].get("priority") == 500  # kueue/base/priority-classes.yaml
    job = tier.wait_job_where(job, lambda j: j["spec"].get("suspend") is False)
    assert job["status"].get("startTime")  # the Job controller started it on resume
    config_map = tier.kube.get("configmaps", tier.tenant, f"{job['metadata']['name']}-spec")
    assert (
        config_map is not None
        and config_map["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    )
    pod = tier.wait_pod(job)

    entry = tier.wait_benchmark(
        job_id, lambda b: (b.get("warning_message") or {}).get("message_code") == "workload_admitted"
    )
    assert "'assay'" in entry["warning_message"]["message"]
    tier.report(job_id, 0, "running", phase="running_evaluation")
    tier.report(job_id, 0, "completed", metrics={"exact_match": 1.0})
    tier.play_pod(pod, terminated("Succeeded", 0, "Completed"))
    tier.wait_job_where(job, lambda j: is_true(j, "Complete"))  # the real Job controller's verdict

    done = tier.wait_state(job_id, "completed")
    entry = done["status"]["benchmarks"][0]
    assert entry["status"] == "completed"
    notice = (entry.get("warning_message") or {}).get("message_code", "")
    assert not notice.startswith("workload_"), f"a finished benchmark keeps the queue notice: {entry}"


def test_oom_killed(tier: Tier) -> None:
    job_id = tier.submit()
    job, pod = _admitted_pod(tier, job_id)
    tier.play_pod(pod, terminated("Failed", 137, "OOMKilled"))
    tier.wait_job_where(job, lambda j: is_true(j, "Failed"))  # backoffLimit 0: the Job controller fails it
    error = _runtime_failure(tier.wait_failed(job_id, tick=True), "oom_killed")
    assert error["reason"] == "OOMKilled" and "512Mi" in error["message"]
    wait_for(lambda: tier.leftovers(job_id) == {}, timeout=120, interval=0.5)  # the failed launch is removed


def test_deadline_exceeded_by_the_job_controller(tier: Tier) -> None:
    job_id = tier.submit([{"id": "qa", "provider_id": "exact", "timeout_seconds": 3}])
    job, _pod = _admitted_pod(tier, job_id)
    assert job["spec"]["activeDeadlineSeconds"] == 3
    tier.report(job_id, 0, "running", phase="running_evaluation")
    # The real Job controller ends it: its Event, since Assay removes the failed Job as soon as it read why (often
    # before a poll of the Job would see its Failed condition).
    event = tier.wait_job_event(job, "DeadlineExceeded")
    assert (
        event["source"].get("component") == "job-controller"
        or event.get("reportingComponent") == "job-controller"
    )
    error = _runtime_failure(tier.wait_failed(job_id), "deadline_exceeded")  # an ApiServerSource event
    assert error["reason"] == "DeadlineExceeded" and "3 s" in error["message"]


def test_exit_without_a_result(tier: Tier) -> None:
    job_id = tier.submit()
    job, pod = _admitted_pod(tier, job_id)
    tier.report(job_id, 0, "running", phase="loading_data")
    tier.play_pod(pod, terminated("Failed", 1, "Error"))
    failed = tier.wait_job_where(job, lambda j: is_true(j, "Failed"))
    assert (condition(failed, "Failed") or {}).get("reason") == "BackoffLimitExceeded"
    error = _runtime_failure(tier.wait_failed(job_id, tick=True), "pod_lost_without_result")
    assert error["reason"] == "BackoffLimitExceeded" and "exited with status 1" in error["message"]


def test_cancel_removes_everything(tier: Tier) -> None:
    job_id = tier.submit([{"id": "qa", "provider_id": "exact"}, {"id": "qa_f1", "provider_id": "exact"}])
    jobs = tier.wait_job(job_id, 2)
    for job in jobs:
        tier.wait_admitted(job)
        tier.wait_pod(job)
    assert tier.leftovers(job_id).keys() >= {"jobs", "configmaps", "pods", "workloads"}
    assert tier.cancel(job_id) == 204
    wait_for(lambda: tier.leftovers(job_id) == {}, timeout=120, interval=0.5)
    assert [b["status"] for b in tier.job(job_id)["status"]["benchmarks"]] == ["cancelled", "cancelled"]


def test_preemption_requeues_and_readmits(tier: Tier) -> None:
    """kueue/tenants/example: a CI gate preempts a sweep's backfill within the tenant's ClusterQueue. Kueue
    preempts within a ClusterQueue only for a workload that then fits its nominal quota, so the backfill takes
    all the cohort but 2.4 CPUs, and the gate asks for a little less than the tenant's nominal quota."""
    sidecar = 0.1  # the sidecar's CPU request (docs/cluster.md), counted by Kueue with the adapter's
    gate_cpus = min(3.0, tier.nominal_cpus() - 2 * sidecar)
    # What the backfill leaves free: 0.6 CPUs short of what the gate needs.
    backfill_cpus = tier.cohort_cpus() - sidecar - (gate_cpus + sidecar - 0.6)
    backfill = {"cpu": {"request": f"{backfill_cpus:g}", "limit": f"{backfill_cpus:g}"}}
    gate = {"cpu": {"request": f"{gate_cpus:g}", "limit": f"{gate_cpus:g}"}}
    low_id = tier.submit(
        [{"id": "qa", "provider_id": "exact", "hardware_config": backfill}], custom={"trigger": "sweep"}
    )
    (low,) = tier.wait_job(low_id)
    tier.wait_admitted(low)
    high_id = tier.submit(
        [{"id": "qa", "provider_id": "exact", "hardware_config": gate}], custom={"trigger": "ci"}
    )
    (high,) = tier.wait_job(high_id)
    tier.wait_admitted(high)

    evicted = tier.wait_workload(low, lambda w: is_true(w, "Evicted") or not is_true(w, "Admitted"))
    assert (condition(evicted, "Evicted") or {}).get("reason") == "Preempted", evicted["status"]
    tier.wait_job_where(low, lambda j: j["spec"].get("suspend") is True)  # Kueue suspended it again
    entry = tier.wait_benchmark(
        low_id, lambda b: (b.get("warning_message") or {}).get("message_code") == "workload_evicted"
    )
    assert entry["status"] in ("pending", "running") and entry["warning_message"]["reason"] == "Preempted"
    assert len(tier.jobs(low_id)) == 1  # kept, for Kueue to admit again

    assert tier.cancel(high_id) == 204  # the gate is gone: the backfill gets its quota back
    tier.wait_admitted(low)
    tier.wait_benchmark(
        low_id, lambda b: (b.get("warning_message") or {}).get("message_code") == "workload_admitted"
    )
    assert tier.cancel(low_id) == 204
    wait_for(
        lambda: tier.leftovers(low_id) == {} and tier.leftovers(high_id) == {}, timeout=120, interval=0.5
    )


def test_missing_local_queue_fails_at_dispatch_and_creates_nothing(tier: Tier) -> None:
    job_id = tier.submit(hardware_config={"queue": {"name": "gpu-nightly"}})
    error = _runtime_failure(tier.wait_failed(job_id), "local_queue_not_found")
    assert "'gpu-nightly'" in error["message"] and tier.tenant in error["message"]
    assert error.get("reason") == "LocalQueueNotFound"
    assert tier.leftovers(job_id) == {}


def test_a_job_made_after_its_launch_failed_is_removed(tier: Tier) -> None:
    """The API server may apply a create the hub gave up on (the request timed out, or was answered an error):
    the benchmark failed at its launch, yet its Job exists, and Kueue would run it until its deadline. Played by
    creating, as an administrator, the Job dispatch would have made for a launch that failed; the watch, the
    Broker and the sweep, as deployed, remove it."""
    job_id = tier.submit(hardware_config={"queue": {"name": "gpu-nightly"}})
    _runtime_failure(tier.wait_failed(job_id), "local_queue_not_found")
    labels = {  # as build_launch labels a Job (the ApiServerSource watches those managed by assay)
        "app.kubernetes.io/managed-by": "assay",
        EVALUATION: job_id,
        "assay.dev/benchmark-index": "0",
        "assay.dev/attempt": "1",
        "kueue.x-k8s.io/queue-name": "assay",
    }
    container = {
        "name": "adapter",
        "image": "registry.invalid/adapter:1",
        "resources": {"requests": {"cpu": "100m"}},
    }
    late = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(job_id, 0, 1), "namespace": tier.tenant, "labels": labels},
        "spec": {
            "suspend": True,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }
    # kubectl fails the test unless the API server made the Job; the sweep may remove it at once.
    tier.kube.apply([late])
    wait_for(lambda: tier.leftovers(job_id) == {}, timeout=120, interval=0.5)


def test_a_request_over_the_cluster_queue_fails_fast(tier: Tier) -> None:
    job_id = tier.submit(hardware_config={"cpu": {"request": "40", "limit": "40"}})  # > 4 + 32 to borrow
    error = _runtime_failure(tier.wait_failed(job_id), "workload_exceeds_quota")
    assert "40" in error["message"]
    wait_for(lambda: tier.leftovers(job_id) == {}, timeout=120, interval=0.5)


def test_a_job_spec_over_the_object_limit_is_refused_at_submit(tier: Tier) -> None:
    """The apiserver refuses a ConfigMap over 1 MiB: the API says so at submit, not at dispatch."""
    answer = tier.submit_answer(
        [{"id": "qa", "provider_id": "exact", "parameters": {"blob": "x" * (1 << 20)}}]
    )
    assert 400 <= answer.status_code < 500, f"{answer.status_code} {answer.text[:300]}"


def test_an_unprovisioned_tenant_is_told_so(deployment: Deployment) -> None:
    """A tenant with no namespace, hence no RoleBinding: the real RBAC answers 403, not 404."""
    stranger = Tier(deployment, f"{deployment.tenants[0]}-none")
    stranger.add_provider()
    job_id = stranger.submit()
    error = _runtime_failure(stranger.wait_failed(job_id), "tenant_not_set_up")
    assert stranger.tenant in error["message"]
