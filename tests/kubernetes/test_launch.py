"""What dispatch creates on the cluster, and what cancel removes: through the functions and the real client,
against the test API server that validates every body against the official schemas."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from assay.core.credentials import LaunchSigner
from tests.kubernetes.conftest import (
    IMAGE,
    TEAM,
    TENANT,
    Cluster,
    adapter_pod_status,
    condition,
    function_environment,
    k8s_provider,
)
from tests.support.waiting import wait_for


def _containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*spec["initContainers"], *spec["containers"]]}


def test_one_suspended_kueue_job_and_its_config_map_per_benchmark(cluster: Cluster) -> None:
    job_id = cluster.submit_job(["qa", "qa_f1"], custom={"trigger": "ci"})
    jobs = cluster.wait_jobs(job_id, 2)
    wait_for(lambda: len(cluster.api.list("configmaps", TENANT)) == 2)
    assert cluster.api.rejected == []  # every body passed the schemas (an invalid one would be 422)
    kinds = sorted({(b["apiVersion"], b["kind"]) for b in cluster.api.created})
    assert kinds == [("batch/v1", "Job"), ("v1", "ConfigMap"), ("v1", "Secret")]
    # The broker delivered evaluation.accepted three times: still one Job per benchmark.
    assert len(jobs) == 2 and len([b for b in cluster.api.created if b["kind"] == "Job"]) == 2

    job = next(j for j in jobs if j["metadata"]["labels"]["assay.dev/benchmark-index"] == "0")
    assert job["metadata"]["name"] == f"assay-{job_id}-0-1"
    labels, spec = job["metadata"]["labels"], job["spec"]
    assert labels["kueue.x-k8s.io/queue-name"] == "assay"
    assert labels["kueue.x-k8s.io/priority-class"] == "assay-ci-gate"  # custom.trigger = ci
    assert labels["assay.dev/evaluation-id"] == job_id and labels["assay.dev/tenant"] == TENANT
    assert labels["assay.dev/provider-id"] == "exact" and labels["assay.dev/benchmark-id"] == "qa"
    assert job["metadata"]["annotations"]["assay.dev/benchmark-indices"] == "0"
    assert spec["suspend"] is True and spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 3600 and spec["activeDeadlineSeconds"] == 6 * 3600
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    containers = _containers(job)
    adapter, sidecar = containers["adapter"], containers["sidecar"]
    assert sidecar["restartPolicy"] == "Always"
    # Loopback only, no declared port: the probe runs inside the container (the kubelet would use the pod IP).
    assert sidecar["command"][-4:] == ["--host", "127.0.0.1", "--port", "8080"] and "ports" not in sidecar
    assert "127.0.0.1:8080/health" in sidecar["startupProbe"]["exec"]["command"][-1]
    for container in containers.values():
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["runAsNonRoot"] is True
        assert (
            context["capabilities"]["drop"] == ["ALL"]
            and context["seccompProfile"]["type"] == "RuntimeDefault"
        )
    assert adapter["image"] == IMAGE and adapter["command"] == ["python", "-m", "adapters.exact"]
    assert adapter["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    env = {e["name"]: e["value"] for e in adapter["env"]}
    assert env["EVALHUB_MODE"] == "k8s" and env["HF_HUB_OFFLINE"] == "1"
    assert env["MLFLOW_TRACKING_URI"] == "http://localhost:8080" and env["MLFLOW_WORKSPACE"] == TENANT
    mounts = {m["mountPath"]: m for m in adapter["volumeMounts"]}
    assert mounts["/meta/job.json"]["subPath"] == "job.json"
    assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts  # the namespace file only (X-Tenant)

    config_map = cluster.api.get("configmaps", TENANT, f"assay-{job_id}-0-1-spec")
    assert config_map is not None
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    spec_json = json.loads(config_map["data"]["job.json"])
    assert spec_json["id"] == job_id and spec_json["benchmark_id"] == "qa" and spec_json["parameters"] == {}
    assert spec_json["callback_url"] == "http://localhost:8080"
    assert spec_json["model"]["url"] == "http://localhost:8080/v1"  # through the sidecar, path kept
    sidecar_config = json.loads(config_map["data"]["sidecar_config.json"])
    assert sidecar_config["model"]["url"] == "http://vllm.models.svc:8000/v1"
    assert sidecar_config["eval_hub"]["base_url"] == "http://callback.assay.svc.cluster.local"
    assert sidecar_config["eval_hub"]["token_path"] == "/var/run/secrets/assay/token"


def test_each_launch_gets_its_own_credential_mounted_into_the_sidecar_only(cluster: Cluster) -> None:
    job_id = cluster.submit_job(["qa"], custom={"trigger": "ci"})
    (job,) = cluster.wait_jobs(job_id)
    name = job["metadata"]["name"]
    secret = wait_for(lambda: cluster.api.get("secrets", TENANT, f"{name}-token"))
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]  # collected with the Job
    assert secret["metadata"]["labels"]["assay.dev/evaluation-id"] == job_id
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "hub-token")
    assert volume["secret"]["secretName"] == f"{name}-token"  # no projected ServiceAccount token any more
    containers = _containers(job)
    assert {m["name"]: m["mountPath"] for m in containers["sidecar"]["volumeMounts"]}["hub-token"] == (
        "/var/run/secrets/assay"
    )
    assert "hub-token" not in {m["name"] for m in containers["adapter"]["volumeMounts"]}
    # The token is a launch credential for this tenant, job, benchmark and attempt, signed with the key the
    # manifests give dispatch and callback, valid for the timeout + the admission timeout + an hour.
    token = base64.b64decode(secret["data"]["token"]).decode()
    key = function_environment("callback")["ASSAY_LAUNCH_SIGNING_KEY"]
    assert key == function_environment("dispatch")["ASSAY_LAUNCH_SIGNING_KEY"]
    claims = LaunchSigner(key.encode()).verify(token, datetime.now(UTC))
    assert (claims.tenant, claims.evaluation_id, claims.runs) == (TENANT, job_id, ((0, 1),))
    lifetime = claims.expires_at - datetime.now(UTC).timestamp()
    assert 6 * 3600 + 3600 + 3600 - 120 < lifetime <= 6 * 3600 + 3600 + 3600
    # Cancel removes it with the rest.
    assert cluster.submit.delete(f"/api/v1/evaluations/jobs/{job_id}", headers=TEAM).status_code == 204
    wait_for(lambda: cluster.api.list("secrets", TENANT, f"assay.dev/evaluation-id={job_id}") == [])


def test_model_credentials_reach_only_the_sidecar(cluster: Cluster) -> None:
    cluster.credentials_secret("model-key")
    job_id = cluster.submit_job(
        model={"url": "https://api.example/v1", "name": "m", "auth": {"secret_ref": "model-key"}}
    )
    job = cluster.wait_jobs(job_id)[0]
    pod = job["spec"]["template"]["spec"]
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    assert secret_volumes == {"model-auth", "hub-token"}
    containers = _containers(job)
    sidecar_mounts = {m["name"]: m["mountPath"] for m in containers["sidecar"]["volumeMounts"]}
    adapter_mounts = {m["name"]: m["mountPath"] for m in containers["adapter"]["volumeMounts"]}
    assert sidecar_mounts["model-auth"] == "/var/run/secrets/model"
    assert "model-auth" not in adapter_mounts and "hub-token" not in adapter_mounts
    assert adapter_mounts["model-auth-refs"] == "/var/run/secrets/model"  # "api-key:ref", nothing secret
    config_map = wait_for(lambda: cluster.api.get("configmaps", TENANT, f"{job['metadata']['name']}-spec"))
    assert config_map["data"]["api-key"] == "api-key:ref"


def test_a_group_runs_as_one_job(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster()
    cluster.queue("gpu")
    cluster.add_provider(k8s_provider(group=True))
    job_id = cluster.submit_job(
        ["qa", "qa_f1"], hardware_config={"queue": {"name": "gpu"}, "gpu": {"count": 2}}
    )
    job = cluster.wait_jobs(job_id)[0]
    assert job["metadata"]["annotations"]["assay.dev/benchmark-indices"] == "0,1"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu"
    resources = _containers(job)["adapter"]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "2" == resources["requests"]["nvidia.com/gpu"]
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    cluster.pod(
        job,
        adapter_pod_status("Failed", {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
    )
    cluster.tick()
    done = cluster.wait_state(job_id, "failed")
    assert [b["error_message"]["message_code"] for b in done["status"]["benchmarks"]] == ["oom_killed"] * 2


def test_creation_is_parallel_and_bounded(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(ASSAY_K8S_MAX_PARALLEL_REQUESTS="2")
    cluster.api.create_delay = 0.2
    cluster.queue()
    cluster.add_provider()
    job_id = cluster.submit_job(["qa", "qa_f1", "qa_long", "qa", "qa_f1", "qa_long"])
    cluster.wait_jobs(job_id, 6)
    wait_for(lambda: len(cluster.api.list("configmaps", TENANT)) == 6)
    assert cluster.api.max_in_flight == 2


def test_a_launch_the_api_server_does_not_answer_fails_within_the_request_timeout(
    start_cluster: Callable[..., Cluster],
) -> None:
    """Before ASSAY_K8S_REQUEST_TIMEOUT_SECONDS a stalled API server held the dispatch (and the job's row lock) for
    as long as the connection stayed open; now the benchmark fails in bounded time, saying why."""
    cluster = start_cluster(ASSAY_K8S_REQUEST_TIMEOUT_SECONDS="1")
    cluster.queue()
    cluster.add_provider()
    cluster.api.create_delay = (
        4.0  # longer than the hub waits; what it creates late is the retry's business below
    )
    began = time.monotonic()
    job_id = cluster.submit_job()
    failed = cluster.wait_state(job_id, "failed")
    assert time.monotonic() - began < 4.0
    entry = failed["status"]["benchmarks"][0]
    assert entry["error_message"]["message_code"] == "runtime_start_failed"
    assert entry["error_message"]["message"] == (
        "The runtime could not start the benchmark: the Kubernetes API did not answer (no answer within 1 s)"
    )
    cluster.api.create_delay = 0.0
    retried = cluster.submit.post(f"/api/v1/evaluations/jobs/{job_id}/retry", headers=TEAM)
    assert retried.status_code == 202, retried.text  # the job was not left locked
    wait_for(lambda: any(j["metadata"]["labels"]["assay.dev/attempt"] == "2" for j in cluster.jobs(job_id)))


def test_a_job_created_after_the_hub_gave_up_on_its_launch_is_removed(
    start_cluster: Callable[..., Cluster],
) -> None:
    """The API server may take a create after the hub's request timed out: the benchmark failed at its launch,
    yet its Job appears, and would run to its activeDeadlineSeconds holding Kueue quota with its callbacks
    fenced off. The sweep removes such a Job when its event arrives (and one a retry replaced); the retry's
    own Job stays."""
    cluster = start_cluster(ASSAY_K8S_REQUEST_TIMEOUT_SECONDS="1")
    cluster.queue()
    cluster.add_provider()
    cluster.api.create_delay = 2.0
    job_id = cluster.submit_job()
    cluster.wait_state(job_id, "failed")
    assert cluster.benchmark(job_id)["error_message"]["message_code"] == "runtime_start_failed"
    (late,) = cluster.wait_jobs(job_id)  # created once the hub had given it up
    assert late["metadata"]["labels"]["assay.dev/attempt"] == "1"
    cluster.api.create_delay = 0.0
    cluster.changed(late)
    assert cluster.jobs(job_id) == []
    assert ("jobs", TENANT, late["metadata"]["name"]) in cluster.api.deleted

    cluster.api.create_delay = 2.0  # once more, now replaced by a retry before its event arrives
    cluster.submit.post(f"/api/v1/evaluations/jobs/{job_id}/retry", headers=TEAM)
    cluster.wait_state(job_id, "failed")
    (late,) = cluster.wait_jobs(job_id)
    cluster.api.create_delay = 0.0
    retried = cluster.submit.post(f"/api/v1/evaluations/jobs/{job_id}/retry", headers=TEAM)
    assert retried.status_code == 202, retried.text
    wait_for(lambda: len(cluster.jobs(job_id)) == 2)
    (current,) = [j for j in cluster.jobs(job_id) if j["metadata"]["labels"]["assay.dev/attempt"] == "3"]
    cluster.changed(current)
    cluster.changed(late)
    assert [j["metadata"]["name"] for j in cluster.jobs(job_id)] == [current["metadata"]["name"]]
    cluster.changed(current)  # a running launch the hub made is never a leftover
    assert len(cluster.jobs(job_id)) == 1


def test_cancel_deletes_what_was_created_and_a_refused_cancel_deletes_nothing(cluster: Cluster) -> None:
    running = cluster.submit_job(["qa", "qa_f1"])
    finished = cluster.submit_job(["qa"])
    cluster.wait_jobs(running, 2)
    done_job = cluster.wait_jobs(finished)[0]
    cluster.report(finished, 0, "completed", metrics={"exact_match": 1.0})
    cluster.wait_state(finished, "completed")

    refused = cluster.submit.delete(f"/api/v1/evaluations/jobs/{finished}", headers=TEAM)
    assert refused.status_code == 409
    assert cluster.api.get("jobs", TENANT, done_job["metadata"]["name"]) is not None
    assert cluster.api.get("configmaps", TENANT, f"{done_job['metadata']['name']}-spec") is not None

    assert cluster.submit.delete(f"/api/v1/evaluations/jobs/{running}", headers=TEAM).status_code == 204
    wait_for(lambda: cluster.jobs(running) == [])
    assert cluster.api.list("configmaps", TENANT, f"assay.dev/evaluation-id={running}") == []
    assert cluster.benchmark(running)["status"] == "cancelled"
    assert len(cluster.jobs(finished)) == 1  # another job's objects stay


def test_a_provider_without_a_k8s_image_is_refused_at_submit(cluster: Cluster) -> None:
    provider = k8s_provider("local_only")
    provider["runtime"] = {"k8s": {"cpu_request": "1"}}  # no image
    cluster.add_provider(provider)
    answer = cluster.submit.post(
        "/api/v1/evaluations/jobs",
        json={
            "name": "x",
            "model": {"url": "http://m:8000/v1", "name": "m"},
            "benchmarks": [{"id": "qa", "provider_id": "local_only"}],
        },
        headers=TEAM,
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "k8s_runtime_not_enabled"


def test_a_cancel_delivered_after_a_retry_stops_only_what_it_was_about(cluster: Cluster) -> None:
    job_id = cluster.submit_job()
    cluster.wait_jobs(job_id)
    assert cluster.submit.delete(f"/api/v1/evaluations/jobs/{job_id}", headers=TEAM).status_code == 204
    wait_for(lambda: cluster.jobs(job_id) == [])
    assert cluster.submit.post(f"/api/v1/evaluations/jobs/{job_id}/retry", headers=TEAM).status_code == 202
    (retried,) = cluster.wait_jobs(job_id)
    assert retried["metadata"]["labels"]["assay.dev/attempt"] == "2"

    cluster.redeliver_cancel(job_id)  # the broker delivers the old cancel again, after the retry
    assert [j["metadata"]["name"] for j in cluster.jobs(job_id)] == [retried["metadata"]["name"]]
    assert cluster.api.get("configmaps", TENANT, f"{retried['metadata']['name']}-spec") is not None
    assert cluster.benchmark(job_id)["status"] == "pending"


def test_passing_trouble_at_launch_is_tried_again(cluster: Cluster) -> None:
    """An API server that answers 503 (etcd electing a leader), 429 (too many requests) or 500 after it stored
    the object does not fail the benchmark: each call is tried again, and a create the server had made is found
    (409) and kept. Before, the first such answer failed the benchmark with runtime_start_failed."""
    cluster.api.fail_creates["jobs"] = [503, 429]
    cluster.api.fail_after_create["configmaps"] = [500]
    job_id = cluster.submit_job()
    (job,) = cluster.wait_jobs(job_id)
    name = job["metadata"]["name"]
    wait_for(lambda: cluster.api.get("secrets", TENANT, f"{name}-token") is not None)
    assert cluster.api.get("configmaps", TENANT, f"{name}-spec") is not None
    assert [b["kind"] for b in cluster.api.created].count("ConfigMap") == 2  # made, then found on the retry
    assert cluster.benchmark(job_id)["status"] == "pending"
    assert cluster.job(job_id)["status"]["state"] != "failed"


def test_a_launch_that_fails_half_way_leaves_no_job_holding_quota(cluster: Cluster) -> None:
    cluster.api.fail_creates["configmaps"] = [
        500
    ] * 4  # the Job is made, then its ConfigMap is refused (each try)
    job_id = cluster.submit_job()
    failed = cluster.wait_state(job_id, "failed")
    entry = failed["status"]["benchmarks"][0]
    assert entry["error_message"]["message_code"] == "runtime_start_failed"
    assert "500" in entry["error_message"]["message"]
    assert entry["error_message"]["message_origin"] == "runtime"
    # One clean sentence: the client's exception text (HTTP headers, Audit-Id, the raw body) stays in the log.
    for raw in ("HTTP response headers", "Audit-Id", "Reason:", '"kind"', "{"):
        assert raw not in entry["error_message"]["message"]
    assert any(b["kind"] == "Job" for b in cluster.api.created)  # it had been created
    assert cluster.jobs(job_id) == []  # and was removed with the failed launch
