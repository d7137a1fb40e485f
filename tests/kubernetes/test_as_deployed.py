"""What a real control plane found (issue 18) and the cluster side of trust (issue 14), on the test API server
that refuses what a real one refuses: the functions as the manifests configure them, with their own
ServiceAccounts' RBAC."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.kubernetes.conftest import (
    TEAM,
    TENANT,
    Cluster,
    adapter_pod_status,
    condition,
    function_environment,
)
from tests.support.waiting import wait_for

SERVICES = ("submit", "callback", "dispatch", "aggregate", "sweep")


@pytest.mark.parametrize("service", SERVICES)
def test_every_function_validates_and_runs_against_the_kubernetes_runtime(service: str) -> None:
    """Item 1: submit and policy sync validate providers against the runtime the benchmarks run on."""
    assert function_environment(service)["ASSAY_RUNTIME"] == "kubernetes"


def test_a_kubernetes_only_provider_is_accepted_by_submit_as_deployed(
    start_cluster: Callable[..., Cluster],
) -> None:
    cluster = start_cluster()  # submit's settings come from the rendered manifests alone
    cluster.tenant()
    cluster.add_provider()  # runtime.k8s only
    job_id = cluster.submit_job()
    assert cluster.wait_jobs(job_id)


def _submit_with(cluster: Cluster, benchmark: dict[str, object]) -> str:
    body = {
        "name": "x",
        "model": {"url": "http://vllm.models.svc:8000/v1", "name": "granite"},
        "benchmarks": [benchmark],
    }
    answer = cluster.submit.post("/api/v1/evaluations/jobs", json=body, headers=TEAM)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["resource"]["id"])


def _failure(cluster: Cluster, job_id: str) -> dict[str, str]:
    failed = cluster.wait_state(job_id, "failed")
    return dict(failed["status"]["benchmarks"][0]["error_message"])


def test_a_tenant_without_role_bindings_is_told_it_is_not_set_up(
    start_cluster: Callable[..., Cluster],
) -> None:
    """Item 2: real RBAC answers 403 in a namespace without Assay's RoleBindings."""
    cluster = start_cluster()
    cluster.api.add_namespace(TENANT)  # a namespace, but nobody set the tenant up
    cluster.add_provider()
    error = _failure(cluster, cluster.submit_job())
    assert error["message_code"] == "tenant_not_set_up" and error["message_origin"] == "runtime"
    assert error["reason"] == "Forbidden" and "assay.dev/tenant" in error["message"]
    assert "system:serviceaccount" not in error["message"]  # no raw RBAC text
    assert cluster.api.forbidden  # the API server did refuse: dispatch may not act there


def test_a_tenant_without_a_namespace_is_told_it_is_not_set_up(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster()
    cluster.add_provider()
    error = _failure(cluster, cluster.submit_job())
    assert error["message_code"] == "tenant_not_set_up"
    assert cluster.jobs("") == [] and cluster.api.list("jobs") == []


def test_a_missing_local_queue_is_the_runtimes_judgement_with_its_reason(cluster: Cluster) -> None:
    """Item 5: local_queue_not_found at dispatch reads as docs/cluster.md says."""
    error = _failure(cluster, cluster.submit_job(hardware_config={"queue": {"name": "nope"}}))
    assert error == {
        "message": error["message"],
        "message_code": "local_queue_not_found",
        "message_origin": "runtime",
        "reason": "LocalQueueNotFound",
    }


def test_a_workload_over_the_queues_maximum_fails_at_once(cluster: Cluster) -> None:
    """Item 5: Kueue says the request exceeds the maximum capacity: waiting an hour cannot help."""
    job_id = cluster.submit_job()
    (job,) = cluster.wait_jobs(job_id)
    message = (
        "couldn't assign flavors to pod set main: insufficient quota for cpu in flavor assay-cpu, "
        "request > maximum capacity (64 > 32)"
    )
    cluster.workload(job, condition("QuotaReserved", "False", "Pending", message))
    cluster.tick()
    error = _failure(cluster, job_id)
    assert error["message_code"] == "workload_exceeds_quota" and error["reason"] == "ExceedsMaxQuota"
    assert "64 > 32" in error["message"]
    wait_for(lambda: cluster.jobs(job_id) == [])  # it holds no place in the queue


def test_a_finished_benchmark_drops_the_queue_notice(cluster: Cluster) -> None:
    """Item 5: workload_admitted is where it waited, not news once it completed."""
    job_id = cluster.submit_job()
    (job,) = cluster.wait_jobs(job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    cluster.tick()
    wait_for(
        lambda: (
            (cluster.benchmark(job_id).get("warning_message") or {}).get("message_code")
            == "workload_admitted"
        )
    )
    cluster.report(job_id, 0, "completed", metrics={"exact_match": 1.0})
    done = cluster.wait_state(job_id, "completed")
    assert done["status"]["benchmarks"][0].get("warning_message") is None


@pytest.mark.parametrize(
    ("container", "reason", "code"),
    [
        ("adapter", "CreateContainerConfigError", "pod_start_failed"),
        ("sidecar", "CrashLoopBackOff", "sidecar_crash_looping"),
    ],
)
def test_a_pod_that_can_never_start_fails_fast_with_its_own_code(
    start_cluster: Callable[..., Cluster], container: str, reason: str, code: str
) -> None:
    """Item 6: not at the deadline hours later, but after ASSAY_K8S_POD_START_GRACE_SECONDS."""
    cluster = start_cluster(ASSAY_K8S_POD_START_GRACE_SECONDS="0")
    cluster.queue()
    cluster.add_provider()
    job_id = cluster.submit_job()
    (job,) = cluster.wait_jobs(job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    waiting = {"waiting": {"reason": reason, "message": 'secret "model-key" not found'}}
    status = {
        "name": container,
        "image": "x",
        "imageID": "",
        "ready": False,
        "restartCount": 5,
        "state": waiting,
    }
    pod_status = {"phase": "Pending"}
    pod_status["initContainerStatuses" if container == "sidecar" else "containerStatuses"] = [status]  # type: ignore[assignment]
    cluster.pod(job, pod_status)
    cluster.tick()
    error = _failure(cluster, job_id)
    assert error["message_code"] == code and error["reason"] == reason


def test_the_start_grace_is_waited_out_first(start_cluster: Callable[..., Cluster]) -> None:
    cluster = start_cluster(ASSAY_K8S_POD_START_GRACE_SECONDS="3600")
    cluster.queue()
    cluster.add_provider()
    job_id = cluster.submit_job()
    (job,) = cluster.wait_jobs(job_id)
    cluster.workload(job, condition("QuotaReserved"), condition("Admitted"), admitted=True)
    cluster.pod(job, adapter_pod_status("Pending", {"waiting": {"reason": "CreateContainerConfigError"}}))
    cluster.tick()
    assert cluster.benchmark(job_id)["status"] == "pending"


@pytest.mark.parametrize(("labelled", "reason"), [(False, "SecretNotLabelled"), (None, "SecretNotFound")])
def test_a_job_may_name_only_the_tenants_secrets_marked_for_assay(
    cluster: Cluster, labelled: bool | None, reason: str
) -> None:
    """Trust: model.auth.secret_ref cannot send any other Secret of the namespace to a model server."""
    if labelled is not None:
        cluster.credentials_secret("someone-elses-key", labelled=labelled)
    job_id = cluster.submit_job(
        model={"url": "https://api.example/v1", "name": "m", "auth": {"secret_ref": "someone-elses-key"}}
    )
    error = _failure(cluster, job_id)
    assert error["message_code"] == "credentials_secret_refused" and error["reason"] == reason
    assert "model.auth.secret_ref" in error["message"]
    assert cluster.jobs(job_id) == []  # nothing was created


def test_an_oci_connection_must_be_marked_for_assay_too(cluster: Cluster) -> None:
    cluster.credentials_secret("registry", labelled=False)
    job_id = cluster.submit_job(
        exports={
            "oci": {
                "coordinates": {"oci_host": "registry.example:5000", "oci_repository": "team-a/results"},
                "k8s": {"connection": "registry"},
            }
        }
    )
    error = _failure(cluster, job_id)
    assert error["message_code"] == "credentials_secret_refused"
    assert "exports.oci.k8s.connection" in error["message"]


def test_a_marked_secret_is_mounted(cluster: Cluster) -> None:
    cluster.credentials_secret("model-key")
    job_id = cluster.submit_job(
        model={"url": "https://api.example/v1", "name": "m", "auth": {"secret_ref": "model-key"}}
    )
    (job,) = cluster.wait_jobs(job_id)
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-auth"]["secret"]["secretName"] == "model-key"
    assert cluster.submit.get(f"/api/v1/evaluations/jobs/{job_id}", headers=TEAM).status_code == 200


def test_a_job_spec_over_a_config_maps_limit_is_refused_at_submit(cluster: Cluster) -> None:
    """Item 4: 400 naming the field, before the 202, not a failure at dispatch."""
    body = {
        "name": "too big",
        "model": {"url": "http://vllm.models.svc:8000/v1", "name": "granite"},
        "benchmarks": [{"id": "qa", "provider_id": "exact", "parameters": {"few_shot": "x" * (1024 * 1024)}}],
    }
    answer = cluster.submit.post("/api/v1/evaluations/jobs", json=body, headers=TEAM)
    assert answer.status_code == 400, answer.text
    assert answer.json()["message_code"] == "job_spec_too_large"
    assert answer.json()["errors"][0]["path"] == "benchmarks[0].parameters"
    listed = cluster.submit.get("/api/v1/evaluations/jobs", headers=TEAM).json()
    assert listed.get("items", []) == [] and cluster.api.created == []
    # Just under the limit is accepted and dispatched.
    body["benchmarks"][0]["parameters"] = {"few_shot": "x" * (900 * 1024)}  # type: ignore[index]
    answer = cluster.submit.post("/api/v1/evaluations/jobs", json=body, headers=TEAM)
    assert answer.status_code == 202, answer.text
    assert cluster.wait_jobs(answer.json()["resource"]["id"])


def test_the_hubs_service_ca_reaches_the_sidecar_only(start_cluster: Callable[..., Cluster]) -> None:
    """Item 6: an HTTPS ASSAY_PUBLIC_URL the pod trusts through the service CA."""
    cluster = start_cluster(ASSAY_K8S_HUB_CA_CONFIG_MAP="assay-service-ca")
    cluster.queue()
    cluster.add_provider()
    (job,) = cluster.wait_jobs(cluster.submit_job())
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "hub-ca")
    assert volume["configMap"] == {
        "name": "assay-service-ca",
        "items": [{"key": "service-ca.crt", "path": "service-ca.crt"}],
    }
    mounts = {
        c["name"]: {m["name"] for m in c["volumeMounts"]}
        for c in [*pod["initContainers"], *pod["containers"]]
    }
    assert "hub-ca" in mounts["sidecar"] and "hub-ca" not in mounts["adapter"]
    spec = wait_for(lambda: cluster.api.get("configmaps", TENANT, f"{job['metadata']['name']}-spec"))
    import json

    sidecar = json.loads(spec["data"]["sidecar_config.json"])
    assert sidecar["eval_hub"]["ca_cert_path"] == "/etc/evalhub/hub-ca/service-ca.crt"


def test_test_data_on_a_pvc_is_mounted_read_only(cluster: Cluster) -> None:
    """Item 6: test_data_ref on a PVC: no init container, /test_data read-only in the adapter."""
    ref = {"pvc": {"claim_name": "qa-data", "sub_path": "v2"}}
    job_id = _submit_with(cluster, {"id": "qa", "provider_id": "exact", "test_data_ref": ref})
    (job,) = cluster.wait_jobs(job_id)
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["sidecar"]
    volume = next(v for v in pod["volumes"] if v["name"] == "test-data")
    assert volume["persistentVolumeClaim"] == {"claimName": "qa-data", "readOnly": True}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "test-data")
    assert mount == {"name": "test-data", "mountPath": "/test_data", "readOnly": True, "subPath": "v2"}


def test_test_data_from_s3_is_downloaded_by_the_init_container(start_cluster: Callable[..., Cluster]) -> None:
    """Item 6: EvalHub's init container (docs/compatibility.md): TEST_DATA_* variables, its credentials mounted into
    it alone, the data in an emptyDir the adapter reads at /test_data; the Secret must be marked for Assay."""
    cluster = start_cluster(ASSAY_K8S_DATA_INIT_IMAGE="quay.io/evalhub/eval-runtime-init:1.0.2")
    cluster.queue()
    cluster.add_provider()
    cluster.credentials_secret("s3-creds")
    ref = {"s3": {"bucket": "evals", "key": "qa/test.jsonl", "secret_ref": "s3-creds"}}
    job_id = _submit_with(cluster, {"id": "qa", "provider_id": "exact", "test_data_ref": ref})
    (job,) = cluster.wait_jobs(job_id)
    assert cluster.api.rejected == []
    pod = job["spec"]["template"]["spec"]
    init, sidecar = pod["initContainers"]
    assert (init["name"], sidecar["name"]) == (
        "init",
        "sidecar",
    )  # the download ends before the sidecar starts
    assert init["image"] == "quay.io/evalhub/eval-runtime-init:1.0.2"
    assert {e["name"]: e["value"] for e in init["env"]} == {
        "TEST_DATA_S3_BUCKET": "evals",
        "TEST_DATA_S3_KEY": "qa/test.jsonl",
    }
    init_mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert init_mounts == {"test-data": "/test_data", "test-data-credentials": "/var/run/secrets/test-data"}
    adapter_mounts = {m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert "test-data" in adapter_mounts and "test-data-credentials" not in adapter_mounts


def test_test_data_needing_the_init_image_fails_clearly_without_one(cluster: Cluster) -> None:
    ref = {"hf": {"repo_id": "org/qa"}}
    job_id = _submit_with(cluster, {"id": "qa", "provider_id": "exact", "test_data_ref": ref})
    error = _failure(cluster, job_id)
    assert (
        error["message_code"] == "test_data_unsupported" and "ASSAY_K8S_DATA_INIT_IMAGE" in error["message"]
    )
