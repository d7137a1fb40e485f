"""GET .../logs in a cluster: the submit function, as deployed (its own ServiceAccount's token, the RBAC of
``knative/`` and the tenant's RoleBindings), reads the adapter container's log of each benchmark's latest pod
through the test API server, cut like local mode (tail_lines, since_seconds, timestamps, the byte cap keeping
the tail)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.kubernetes.conftest import TEAM, TENANT, Cluster, adapter_pod_status, k8s_provider


def _running(cluster: Cluster, job_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The launches' pods, their adapters running."""
    running = adapter_pod_status("Running", {"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    return [cluster.pod(job, running) for job in cluster.wait_jobs(job_id, count)]


def _logs(cluster: Cluster, path: str, **params: Any) -> Any:
    return cluster.submit.get(f"/api/v1/evaluations/jobs/{path}", params=params, headers=TEAM)


def test_the_logs_routes_read_the_adapters_pod_log_with_tail_and_since(cluster: Cluster) -> None:
    job_id = cluster.submit_job(["qa", "qa_f1"])
    first, second = _running(cluster, job_id, 2)
    now = datetime.now(UTC)
    for pod, words in ((first, "alpha"), (second, "beta")):
        name = pod["metadata"]["name"]
        lines = [(now - timedelta(hours=1), f"{words} early"), (now, f"{words} 1"), (now, f"{words} 2")]
        cluster.api.set_log(TENANT, name, "adapter", lines)
        cluster.api.set_log(TENANT, name, "sidecar", ["the sidecar's, never shown"])
    index_of = {int(p["metadata"]["labels"]["assay.dev/benchmark-index"]): p for p in (first, second)}
    assert set(index_of) == {0, 1}

    answer = _logs(cluster, f"{job_id}/benchmarks/0/logs")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    words0 = "alpha" if index_of[0] is first else "beta"
    assert answer.text == f"{words0} early\n{words0} 1\n{words0} 2\n"
    assert "X-Log-Unavailable" not in answer.headers and "X-Log-Truncated" not in answer.headers

    assert _logs(cluster, f"{job_id}/benchmarks/0/logs", tail_lines=1).text == f"{words0} 2\n"
    assert (
        _logs(cluster, f"{job_id}/benchmarks/0/logs", since_seconds=600).text == f"{words0} 1\n{words0} 2\n"
    )
    stamped = _logs(cluster, f"{job_id}/benchmarks/0/logs", tail_lines=1, timestamps="true").text
    assert stamped.endswith(f" {words0} 2\n") and stamped[:4].isdigit()  # the kubelet's RFC 3339 stamp

    whole = _logs(cluster, f"{job_id}/logs", tail_lines=1)
    assert whole.status_code == 200, whole.text
    words1 = "beta" if words0 == "alpha" else "alpha"
    assert whole.text == (
        f"=== pod={job_id}-0 container=adapter benchmark_id=qa ===\n{words0} 2\n"
        f"=== pod={job_id}-1 container=adapter benchmark_id=qa_f1 ===\n{words1} 2\n"
    )
    # What the submit function did on the API server: its own ServiceAccount, nothing refused.
    assert cluster.api.forbidden == []


def test_the_latest_attempts_pod_is_read_and_a_group_pod_serves_each_of_its_benchmarks(
    start_cluster: Callable[..., Cluster],
) -> None:
    cluster = start_cluster()
    cluster.tenant()
    cluster.add_provider(k8s_provider(group=True))
    job_id = cluster.submit_job(["qa", "qa_f1"])
    (pod,) = _running(cluster, job_id)
    cluster.api.set_log(TENANT, pod["metadata"]["name"], "adapter", ["both benchmarks' adapter"])
    for index in (0, 1):
        assert _logs(cluster, f"{job_id}/benchmarks/{index}/logs").text == "both benchmarks' adapter\n"


def test_the_byte_cap_keeps_the_tail_and_says_it_cut(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(ASSAY_MAX_LOG_BYTES="2048")
    cluster.tenant()
    cluster.add_provider()
    job_id = cluster.submit_job()
    (pod,) = _running(cluster, job_id)
    lines = [f"line {n:04d} " + "x" * 40 for n in range(200)]  # about 10 kB
    cluster.api.set_log(TENANT, pod["metadata"]["name"], "adapter", lines)

    answer = _logs(cluster, f"{job_id}/benchmarks/0/logs", tail_lines=-1)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Log-Truncated"] == "true"
    assert len(answer.content) <= 2048
    kept = answer.text.splitlines()
    assert kept[-1] == lines[-1] and kept == lines[-len(kept) :]  # whole lines, the newest ones
    assert len(kept) == 2048 // (len(lines[0]) + 1)

    whole = _logs(cluster, f"{job_id}/logs", tail_lines=-1)
    assert whole.headers["X-Log-Truncated"] == "true" and len(whole.content) <= 2048 + 100
    small = _logs(cluster, f"{job_id}/benchmarks/0/logs", tail_lines=3)
    assert "X-Log-Truncated" not in small.headers and small.text.splitlines() == lines[-3:]


def test_no_pod_or_an_adapter_not_started_is_an_empty_log_that_says_why(cluster: Cluster) -> None:
    job_id = cluster.submit_job(["qa", "qa_f1"])
    cluster.wait_jobs(job_id, 2)

    answer = _logs(cluster, f"{job_id}/benchmarks/1/logs")  # Kueue has not admitted it: no pod yet
    assert answer.status_code == 200 and answer.text == ""
    assert "no pod runs this benchmark" in answer.headers["X-Log-Unavailable"]

    first = cluster.wait_jobs(job_id, 2)[0]
    index = int(first["metadata"]["labels"]["assay.dev/benchmark-index"])
    creating = adapter_pod_status("Pending", {"waiting": {"reason": "ContainerCreating"}})
    cluster.pod(first, creating)
    answer = _logs(cluster, f"{job_id}/benchmarks/{index}/logs")
    assert answer.status_code == 200 and answer.text == ""
    unavailable = answer.headers["X-Log-Unavailable"]
    assert "has not started yet" in unavailable and "ContainerCreating" in unavailable

    whole = _logs(cluster, f"{job_id}/logs")
    assert whole.status_code == 200
    assert whole.text.count("=== pod=") == 2
    assert (
        f"benchmark {index}: the adapter container has not started yet" in whole.headers["X-Log-Unavailable"]
    )
    assert f"benchmark {1 - index}: no pod runs this benchmark" in whole.headers["X-Log-Unavailable"]

    # The pod is gone (the Job's TTL, a cancel): the log is empty, never a 5xx.
    cluster.api.delete("pods", TENANT, f"{first['metadata']['name']}-x7k2p")
    answer = _logs(cluster, f"{job_id}/benchmarks/{index}/logs")
    assert answer.status_code == 200 and answer.text == ""
    assert "no pod runs this benchmark" in answer.headers["X-Log-Unavailable"]
    # A bad index is still 404, as in local mode.
    assert _logs(cluster, f"{job_id}/benchmarks/7/logs").status_code == 404


def test_a_namespace_without_submits_rolebinding_is_a_clear_403_naming_the_right(cluster: Cluster) -> None:
    job_id = cluster.submit_job()
    (pod,) = _running(cluster, job_id)
    cluster.api.set_log(TENANT, pod["metadata"]["name"], "adapter", ["hello"])
    cluster.api.delete("rolebindings", TENANT, "assay-submit")  # a tenant set up before submit read logs

    answer = _logs(cluster, f"{job_id}/benchmarks/0/logs")
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["message_code"] == "pod_logs_forbidden"
    assert "'list' on 'pods'" in body["message"] and repr(TENANT) in body["message"]
    assert "assay-submit" in body["message"]
    assert "Audit-Id" not in body["message"] and "HTTP response headers" not in body["message"]
    assert _logs(cluster, f"{job_id}/logs").status_code == 403

    # Only the log read refused: list allowed, pods/log not.
    cluster.api.grant(
        {"kind": "ServiceAccount", "name": "assay-submit", "namespace": "assay"},
        [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        namespace=TENANT,
    )
    answer = _logs(cluster, f"{job_id}/benchmarks/0/logs")
    assert answer.status_code == 403 and "'get' on 'pods/log'" in answer.json()["message"]
