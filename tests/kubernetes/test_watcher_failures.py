"""The watcher's failure table, row by row, through the functions and the public jobs API.

Each test submits a job to the submit function, lets dispatch create the Job on the test API server, plays
Kueue / the Job controller / the kubelet there, lets the sweep's watcher look (a PingSource tick or an
ApiServerSource event), and reads the benchmark's state, ``message_code`` and reason with
``GET /api/v1/evaluations/jobs/{id}``, as a user would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from tests.kubernetes.api_server import ago
from tests.kubernetes.conftest import TENANT, Cluster, adapter_pod_status, condition
from tests.support.waiting import wait_for


def _failed(cluster: Cluster, job_id: str, code: str) -> dict[str, Any]:
    job = cluster.wait_state(job_id, "failed")
    entry = job["status"]["benchmarks"][0]
    assert entry["status"] == "failed"
    assert entry["error_message"]["message_code"] == code, entry
    assert entry["error_message"]["message_origin"] == "runtime"
    return dict(entry)


def _launched(cluster: Cluster, job_id: str) -> dict[str, Any]:
    return cluster.wait_jobs(job_id)[0]


def test_missing_local_queue_fails_at_dispatch_and_creates_nothing(cluster: Cluster) -> None:
    job_id = cluster.submit_job(hardware_config={"queue": {"name": "gpu-nightly"}})
    job = cluster.wait_state(job_id, "failed")
    entry = job["status"]["benchmarks"][0]
    assert entry["error_message"]["message_code"] == "local_queue_not_found"
    assert (
        "'gpu-nightly'" in entry["error_message"]["message"] and TENANT in entry["error_message"]["message"]
    )
    assert cluster.jobs(job_id) == [] and cluster.api.list("configmaps", TENANT) == []


def test_local_queue_deleted_while_queued_fails_with_the_same_code(cluster: Cluster) -> None:
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    workload = cluster.workload(
        job, condition("QuotaReserved", "False", "Inadmissible", "LocalQueue assay doesn't exist")
    )
    cluster.api._objects.pop(("localqueues", TENANT, "assay"))  # an administrator removed it
    cluster.changed(workload)
    entry = _failed(cluster, job_id, "local_queue_not_found")
    assert entry["error_message"]["reason"] == "LocalQueueNotFound"
    assert cluster.jobs(job_id) == []  # the failed launch is removed


def test_queued_then_inadmissible_past_the_deadline(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(ASSAY_K8S_ADMISSION_TIMEOUT_SECONDS="600")
    cluster.queue()
    cluster.add_provider()
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    kueue = "couldn't assign flavors to pod set main: insufficient quota for cpu in flavor default-flavor"
    workload = cluster.workload(job, condition("QuotaReserved", "False", "Pending", kueue))
    cluster.changed(workload)
    entry = cluster.benchmark(job_id)
    assert entry["status"] == "pending"
    assert entry["warning_message"]["message_code"] == "workload_queued"
    assert entry["warning_message"]["reason"] == "Pending" and kueue in entry["warning_message"]["message"]
    assert cluster.job(job_id)["status"]["state"] == "pending"

    # Kueue keeps saying so for longer than the admission timeout.
    cluster.api.update(
        "workloads", TENANT, workload["metadata"]["name"], creationTimestamp="2020-01-01T00:00:00Z"
    )
    cluster.tick()
    entry = _failed(cluster, job_id, "workload_inadmissible")
    assert entry["error_message"]["reason"] == "Pending"
    assert kueue in entry["error_message"]["message"] and "600 s" in entry["error_message"]["message"]
    assert cluster.jobs(job_id) == []  # no quota is held by a benchmark the hub gave up on


def test_eviction_requeues_and_never_fails(cluster: Cluster) -> None:
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    workload = cluster.workload(
        job, condition("QuotaReserved", age=30), condition("Admitted", age=30), admitted=True
    )
    cluster.changed(workload)
    entry = cluster.benchmark(job_id)
    assert entry["warning_message"]["message_code"] == "workload_admitted"
    cluster.report(job_id, 0, "running", phase="running_evaluation")

    # A higher-priority CI gate preempts it: Kueue evicts, suspends the Job and re-queues the Workload.
    preempted = "Preempted to accommodate a workload (UID: 1f2e) due to prioritization in the ClusterQueue"
    workload = cluster.workload(
        job,
        condition("QuotaReserved", "False", "Pending", "waiting for quota", age=1),
        condition("Admitted", "False", "NoReservation", "The workload has no reservation", age=1),
        condition("Evicted", "True", "Preempted", preempted, age=1),
        condition("Requeued", "True", "Preempted", preempted, age=1),
    )
    cluster.changed(workload)
    cluster.tick()
    entry = cluster.benchmark(job_id)
    assert entry["status"] == "running"  # not failed: it runs again when admitted
    assert entry["warning_message"]["message_code"] == "workload_evicted"
    assert (
        entry["warning_message"]["reason"] == "Preempted"
        and "re-queued" in entry["warning_message"]["message"]
    )
    assert len(cluster.jobs(job_id)) == 1  # its Job stays, for Kueue to admit again

    # Admitted again: the notice says so, and the adapter finishes normally.
    workload = cluster.workload(
        job,
        condition("QuotaReserved"),
        condition("Admitted"),
        condition("Evicted", "False", "QuotaReserved", "Previously: " + preempted),
        admitted=True,
    )
    cluster.changed(workload)
    assert cluster.benchmark(job_id)["warning_message"]["message_code"] == "workload_admitted"
    cluster.report(job_id, 0, "completed", metrics={"exact_match": 0.8})
    assert cluster.wait_state(job_id, "completed")["status"]["benchmarks"][0]["status"] == "completed"


def test_oom_killed(cluster: Cluster) -> None:
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    pod = cluster.pod(
        job,
        adapter_pod_status("Failed", {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
    )
    cluster.changed(pod)
    entry = _failed(cluster, job_id, "oom_killed")
    assert entry["error_message"]["reason"] == "OOMKilled"
    assert "512Mi" in entry["error_message"]["message"]  # the limit it hit, from the provider
    assert cluster.jobs(job_id) == []


def test_image_pull_back_off_past_its_grace(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(ASSAY_K8S_IMAGE_PULL_GRACE_SECONDS="120")
    cluster.queue()
    cluster.add_provider()
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "ghcr.io/x"'}}
    status = adapter_pod_status("Pending", waiting, image="ghcr.io/assay-evals/adapter-exact:0.1.0")
    pod = cluster.pod(job, status)
    cluster.changed(pod)
    assert cluster.benchmark(job_id)["status"] == "pending"  # a pull may still succeed within the grace

    cluster.api.update("pods", TENANT, pod["metadata"]["name"], creationTimestamp="2020-01-01T00:00:00Z")
    cluster.changed(pod, reference=True)  # Reference mode: only the pod's name travels
    entry = _failed(cluster, job_id, "image_pull_failed")
    assert entry["error_message"]["reason"] == "ImagePullBackOff"
    assert "adapter-exact:0.1.0" in entry["error_message"]["message"]


def test_unschedulable_pod(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(ASSAY_K8S_UNSCHEDULABLE_GRACE_SECONDS="60")
    cluster.queue()
    cluster.add_provider()
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    nodes = "0/3 nodes are available: 3 node(s) had untolerated taint {nvidia.com/gpu: present}"
    pod = cluster.pod(
        job,
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": nodes,
                    "lastTransitionTime": "2020-01-01T00:00:00Z",
                }
            ],
        },
    )
    cluster.changed(pod)
    entry = _failed(cluster, job_id, "unschedulable")
    assert nodes in entry["error_message"]["message"]


def test_deadline_exceeded(cluster: Cluster) -> None:
    job_id = cluster.submit_job(benchmarks=None)
    job = _launched(cluster, job_id)
    assert job["spec"]["activeDeadlineSeconds"] == 6 * 3600  # ASSAY_BENCHMARK_TIMEOUT_SECONDS by default
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    cluster.report(job_id, 0, "running", phase="running_evaluation")
    cluster.job_status(
        job,
        {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                }
            ],
            "failed": 1,
        },
    )
    cluster.changed(cluster.api.get("jobs", TENANT, job["metadata"]["name"]) or {})
    entry = _failed(cluster, job_id, "deadline_exceeded")
    assert entry["error_message"]["reason"] == "DeadlineExceeded"
    assert f"{6 * 3600} s" in entry["error_message"]["message"]


def test_pod_ended_without_a_terminal_event(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(ASSAY_K8S_RESULT_GRACE_SECONDS="30")
    cluster.queue()
    cluster.add_provider()
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    cluster.report(job_id, 0, "running", phase="loading_data")
    cluster.pod(
        job,
        adapter_pod_status("Failed", {"terminated": {"exitCode": 1, "reason": "Error"}}),
    )
    ended = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    cluster.job_status(
        job, {"conditions": [{**ended, "lastTransitionTime": "2099-01-01T00:00:00Z"}], "failed": 1}
    )
    cluster.tick()
    assert cluster.benchmark(job_id)["status"] == "running"  # its result may still be on its way

    cluster.job_status(
        job, {"conditions": [{**ended, "lastTransitionTime": "2020-01-01T00:00:00Z"}], "failed": 1}
    )
    cluster.tick()
    entry = _failed(cluster, job_id, "pod_lost_without_result")
    assert entry["error_message"]["reason"] == "BackoffLimitExceeded"
    assert "exited with status 1" in entry["error_message"]["message"]


def test_job_deleted_under_a_running_benchmark(cluster: Cluster) -> None:
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    cluster.report(job_id, 0, "running")
    with cluster.api._lock:
        cluster.api._delete_locked("jobs", TENANT, job["metadata"]["name"])  # kubectl delete job
    cluster.tick()
    entry = _failed(cluster, job_id, "pod_lost_without_result")
    assert entry["error_message"]["reason"] == "JobDeleted"


def test_a_reported_result_is_left_alone(cluster: Cluster) -> None:
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    cluster.report(job_id, 0, "completed", metrics={"exact_match": 1.0})
    cluster.job_status(
        job,
        {
            "conditions": [
                {"type": "Complete", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
            ]
        },
    )
    cluster.tick()
    job_doc = cluster.wait_state(job_id, "completed")
    assert job_doc["status"]["benchmarks"][0]["status"] == "completed"
    wait_for(lambda: cluster.job(job_id)["status"]["state"] == "completed")


def test_a_preempted_benchmark_has_no_deadline_while_it_waits_in_the_queue(
    cluster: Cluster, database_url: str
) -> None:
    """The hub's deadline counts admitted time only: a run preempted after hours of running must not time
    out while Kueue holds it (a long wait is the admission timeout's, workload_inadmissible)."""

    def deadline() -> Any:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT deadline_at FROM benchmark_runs WHERE evaluation_id = %s", [job_id]
            ).fetchone()
        assert row is not None
        return row[0]

    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    cluster.changed(cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True))
    admitted = deadline()
    assert admitted is not None
    preempted = "Preempted to accommodate a workload due to prioritization in the ClusterQueue"
    evicted = cluster.workload(
        job,
        condition("QuotaReserved", "False", "Pending", "waiting for quota"),
        condition("Admitted", "False", "NoReservation", "The workload has no reservation"),
        condition("Evicted", "True", "Preempted", preempted),
    )
    cluster.changed(evicted)
    assert deadline() is None
    assert cluster.benchmark(job_id)["warning_message"]["message_code"] == "workload_evicted"
    cluster.changed(cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True))
    assert deadline() is not None  # counting again from the new admission


def test_an_oom_kill_after_the_result_left_does_not_discard_it(cluster: Cluster) -> None:
    """Killed for memory while tearing down, after reporting: the sidecar may still be delivering the result
    from its buffer. The watcher waits out the result grace, and the result wins."""
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    killed = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "finishedAt": ago(0)}}
    cluster.changed(cluster.pod(job, adapter_pod_status("Running", killed)))
    cluster.tick()
    assert cluster.benchmark(job_id)["status"] == "pending"  # not failed while the result may be on its way
    cluster.report(job_id, 0, "completed", metrics={"exact_match": 0.7})
    done = cluster.wait_state(job_id, "completed")
    assert done["status"]["benchmarks"][0]["status"] == "completed"


def _failed_mount(
    cluster: Cluster, pod: dict[str, Any], name: str = "mount-1", *, uid: str | None = None
) -> None:
    """The kubelet's Event for a volume it cannot set up (what ``kubectl describe pod`` shows)."""
    involved = {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": TENANT, "apiVersion": "v1"}
    involved["uid"] = uid or pod["metadata"]["uid"]
    cluster.api.put(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": TENANT},
            "involvedObject": involved,
            "reason": "FailedMount",
            "type": "Warning",
            "count": 4,
            "message": 'MountVolume.SetUp failed for volume "hub-ca" : configmap "assay-hub-ca" not found',
            "source": {"component": "kubelet", "host": "node-1"},
        }
    )


def _creating(cluster: Cluster, job: dict[str, Any], age: float) -> dict[str, Any]:
    """The pod as the kubelet leaves it while a volume cannot mount: Pending, nothing started."""
    waiting = {"waiting": {"reason": "PodInitializing"}}
    sidecar = {
        "name": "sidecar",
        "image": "s",
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": waiting,
    }
    pod = cluster.pod(
        job,
        {
            "phase": "Pending",
            "initContainerStatuses": [sidecar],
            **adapter_pod_status("Pending", {"waiting": {"reason": "PodInitializing"}}),
        },
    )
    cluster.api.update("pods", TENANT, pod["metadata"]["name"], creationTimestamp=ago(age))
    return cluster.api.get("pods", TENANT, pod["metadata"]["name"]) or {}


def test_a_volume_that_cannot_mount_fails_fast_after_the_start_grace(
    start_cluster: Callable[..., Cluster],
) -> None:
    """Not at activeDeadlineSeconds hours later (deadline_exceeded), but once the pod has waited
    ASSAY_K8S_POD_START_GRACE_SECONDS with a FailedMount Event: only Events say why it is stuck."""
    cluster = start_cluster(ASSAY_K8S_POD_START_GRACE_SECONDS="120")
    cluster.queue()
    cluster.add_provider()
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    pod = _creating(cluster, job, age=30)
    _failed_mount(cluster, pod)
    _failed_mount(cluster, pod, "someone-else", uid="an-earlier-pod-of-the-same-name")
    cluster.tick()
    assert cluster.benchmark(job_id)["status"] == "pending"  # within the grace: the kubelet keeps retrying

    pod = _creating(cluster, job, age=300)
    cluster.changed(pod)
    entry = _failed(cluster, job_id, "pod_volume_mount_failed")
    assert entry["error_message"]["reason"] == "FailedMount"
    assert 'configmap "assay-hub-ca" not found' in entry["error_message"]["message"]
    assert "120 s" in entry["error_message"]["message"]
    wait_for(lambda: cluster.jobs(job_id) == [])  # it holds no quota
    assert cluster.api.forbidden == []  # the sweep may list Events (knative/base/rbac.yaml)


def test_a_pod_stuck_without_a_failed_mount_is_left_to_the_other_rows(cluster: Cluster) -> None:
    """No FailedMount Event (e.g. a slow image pull not yet reported): nothing to say yet."""
    job_id = cluster.submit_job()
    job = _launched(cluster, job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    pod = _creating(cluster, job, age=3600)
    cluster.changed(pod)
    entry = cluster.benchmark(job_id)
    assert entry["status"] == "pending"
    assert entry["warning_message"]["message_code"] == "workload_admitted"
