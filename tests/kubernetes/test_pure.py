"""The pure parts: object names and labels, queue and priority choice, the watcher's judgement at its edges,
and the test API server's own strictness (a test server that accepted anything would prove nothing)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import kubernetes.client
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from adapters.sidecar import SidecarConfig
from assay.core.plan import FrozenRuntime, PlannedBenchmark
from assay.runtimes.kubernetes import WatchLimits, build_launch, job_name, judge
from assay.runtimes.kubernetes.objects import (
    evaluation_of_name,
    label_value,
    local_queue_for,
    priority_class_for,
)
from assay.settings import Settings
from tests.k8s_schemas import K8sSchemas
from tests.kubernetes.api_server import TestApiServer, matches, rfc3339

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LIMITS = WatchLimits(admission_timeout=600, image_pull_grace=120, unschedulable_grace=60, result_grace=30)


def _planned(**hardware: Any) -> PlannedBenchmark:
    return PlannedBenchmark(
        index=3,
        provider_id="lm_evaluation_harness",
        id="mmlu/abstract algebra",
        hardware_config=hardware or None,
        runtime=FrozenRuntime(k8s={"image": "ghcr.io/x/y:1"}),
    )


def _at(seconds_ago: float) -> str:
    return rfc3339(NOW - timedelta(seconds=seconds_ago))


def _cond(kind: str, status: str = "True", reason: str = "", age: float = 0) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason or kind,
        "message": f"{kind} says so",
        "lastTransitionTime": _at(age),
    }


def _job(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "assay-x", "namespace": "t", "creationTimestamp": _at(10)},
        "spec": {"activeDeadlineSeconds": 100},
        "status": status,
    }


def test_names_are_deterministic_dns_labels_short_enough_for_pods() -> None:
    evaluation = str(uuid.uuid4())
    assert job_name(evaluation, 12, 3) == job_name(evaluation, 12, 3) == f"assay-{evaluation}-12-3"
    assert len(job_name(evaluation, 999, 99)) <= 52
    odd = job_name("Not/A_UUID" * 10, 0, 1)
    assert len(odd) <= 52 and odd == job_name("Not/A_UUID" * 10, 0, 1) and odd.startswith("assay-")
    name = job_name(evaluation, 2, 1)
    for found in (name, f"{name}-x7k2p", f"job-{name}-5d8f2"):  # the Job, its pod, its Workload
        assert evaluation_of_name(found) == evaluation
    assert evaluation_of_name("some-other-job") is None


def test_label_values_and_queue_and_priority_choice() -> None:
    assert label_value("mmlu/abstract algebra") == "mmlu-abstract-algebra"
    assert len(label_value("x" * 100)) == 63
    settings = Settings(k8s_hardware_profile_queues={"a100": "gpu-a100"}, k8s_local_queue="team-default")
    assert local_queue_for(_planned(queue={"name": "mine"}), {"queue": {"name": "top"}}, settings) == "mine"
    assert local_queue_for(_planned(hardware_profile_name="a100"), {}, settings) == "gpu-a100"
    assert local_queue_for(_planned(), {"queue": {"name": "top"}}, settings) == "top"
    assert local_queue_for(_planned(), {}, settings) == "team-default"
    assert priority_class_for({"custom": {"trigger": "registry"}}, settings) == "assay-registry"
    assert priority_class_for({"custom": {"trigger": "nonsense"}}, settings) == "assay-interactive"
    assert priority_class_for({}, Settings(k8s_priority_classes={})) is None


def test_every_built_object_validates_and_labels_are_label_values() -> None:
    objects = build_launch(
        evaluation_id=str(uuid.uuid4()),
        tenant="team-a",
        request={"model": {"url": "", "name": "m"}},
        runs=[(_planned(cpu={"request": "2"}, memory={"limit": "8Gi"}), 2)],
        settings=Settings(),
        timeout_seconds=90.5,
        launch_token="assay-launch.v1.test",
    )
    schemas = K8sSchemas.load()
    schemas.validate(objects.job)
    schemas.validate(objects.config_map)
    assert objects.job["spec"]["activeDeadlineSeconds"] == 91
    assert objects.job["metadata"]["labels"]["assay.dev/benchmark-id"] == "mmlu-abstract-algebra"
    assert objects.job["metadata"]["annotations"]["assay.dev/benchmarks"] == '["mmlu/abstract algebra"]'
    adapter = objects.job["spec"]["template"]["spec"]["containers"][0]
    assert adapter["resources"] == {"requests": {"cpu": "2"}, "limits": {"memory": "8Gi"}}


def test_judge_orders_eviction_and_readmission_by_time() -> None:
    readmitted = {
        "status": {
            "conditions": [_cond("Admitted", age=5), _cond("Evicted", age=50)],
            "admission": {"clusterQueue": "cq"},
        },
        "metadata": {"creationTimestamp": _at(100)},
    }
    verdict = judge(_job(), readmitted, [], local_queue="q", queue_exists=None, now=NOW, limits=LIMITS)
    assert verdict.notice is not None and verdict.notice.message_code == "workload_admitted"
    assert verdict.admitted_at == NOW - timedelta(seconds=5)
    # Re-queued 500 s ago after 700 s of life: the admission clock restarted at the eviction.
    evicted = {
        "status": {
            "conditions": [
                _cond("Evicted", reason="Preempted", age=500),
                _cond("QuotaReserved", "False", "Pending", age=500),
            ]
        },
        "metadata": {"creationTimestamp": _at(700)},
    }
    verdict = judge(_job(), evicted, [], local_queue="q", queue_exists=True, now=NOW, limits=LIMITS)
    assert verdict.failure is None and verdict.notice is not None and verdict.notice.reason == "Preempted"
    verdict = judge(
        _job(),
        evicted,
        [],
        local_queue="q",
        queue_exists=True,
        now=NOW + timedelta(seconds=101),
        limits=LIMITS,
    )
    assert verdict.failure is not None and verdict.failure.message_code == "workload_inadmissible"


def test_judge_edges() -> None:
    hopeless = {
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "adapter",
                    "image": "bad image",
                    "state": {"waiting": {"reason": "InvalidImageName"}},
                }
            ],
        },
        "metadata": {"creationTimestamp": _at(1)},
    }
    verdict = judge(_job(), None, [hopeless], local_queue="q", queue_exists=True, now=NOW, limits=LIMITS)
    assert verdict.failure is not None and verdict.failure.message_code == "image_pull_failed"  # no grace
    deactivated = {
        "spec": {"active": False},
        "status": {"conditions": [_cond("Evicted", reason="Deactivated")]},
        "metadata": {"creationTimestamp": _at(1)},
    }
    verdict = judge(_job(), deactivated, [], local_queue="q", queue_exists=True, now=NOW, limits=LIMITS)
    assert verdict.failure is not None and verdict.failure.reason == "Deactivated"
    no_workload = _job()
    verdict = judge(no_workload, None, [], local_queue="q", queue_exists=True, now=NOW, limits=LIMITS)
    assert verdict.notice is not None and verdict.notice.message_code == "workload_queued"
    no_workload["metadata"]["creationTimestamp"] = _at(601)
    verdict = judge(no_workload, None, [], local_queue="q", queue_exists=True, now=NOW, limits=LIMITS)
    assert verdict.failure is not None and "is Kueue installed" in verdict.failure.message
    finished_ok = _job(conditions=[_cond("Complete", age=31)])
    verdict = judge(finished_ok, None, [], local_queue="q", queue_exists=None, now=NOW, limits=LIMITS)
    assert verdict.failure is not None and verdict.failure.message_code == "pod_lost_without_result"


def test_label_selectors() -> None:
    labels = {"a": "1", "b": "x"}
    assert (
        matches("a=1,b in (x,y)", labels) and matches("a==1,c notin (z),!c", labels) and matches("b", labels)
    )
    assert not matches("a!=1", labels) and not matches("b in (y)", labels) and not matches("c", labels)


def test_the_test_api_server_is_strict(k8s_api: tuple[TestApiServer, str]) -> None:
    api, url = k8s_api
    api.add_namespace("t")
    admin = {"Authorization": f"Bearer {api.admin_token}"}
    assert api.rejected == []
    # Raw HTTP for the refused body: the kubernetes client itself would refuse the unknown field first.
    body = {"apiVersion": "v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {}}}
    refused = httpx.post(f"{url}/api/v1/namespaces/t/configmaps", json=body, headers=admin)
    assert refused.status_code == 400  # a Job sent to the ConfigMaps collection
    invalid = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x", "colour": "red"}]}}},
    }
    refused = httpx.post(f"{url}/apis/batch/v1/namespaces/t/jobs", json=invalid, headers=admin)
    assert (
        refused.status_code == 422
        and refused.json()["reason"] == "Invalid"
        and "colour" in refused.json()["message"]
    )
    configuration = kubernetes.client.Configuration(host=url)
    configuration.api_key = {"authorization": f"Bearer {api.admin_token}"}
    client = kubernetes.client.ApiClient(configuration)
    core = kubernetes.client.CoreV1Api(client)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    core.create_namespaced_config_map("t", body)
    with pytest.raises(ApiException) as conflict:
        core.create_namespaced_config_map("t", body)
    assert conflict.value.status == 409
    assert any("colour" in problem for problem in api.rejected)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "t")
    assert missing.value.status == 404
    client.close()


def test_mlflow_and_registry_credentials_are_mounted_into_the_sidecar_only() -> None:
    settings = Settings(
        mlflow_tracking_uri="https://mlflow.example:5000",
        k8s_mlflow_token_audience="mlflow",
        k8s_mlflow_ca_config_map="mlflow-ca",
        oci_insecure_registries="registry.local:5000",
    )
    oci = {"coordinates": {"oci_host": "registry.local:5000", "oci_repository": "evals"}}
    objects = build_launch(
        evaluation_id=str(uuid.uuid4()),
        tenant="team-a",
        request={
            "model": {"url": "", "name": "m"},
            "exports": {"oci": {**oci, "k8s": {"connection": "push"}}},
        },
        runs=[(_planned(), 1)],
        settings=settings,
        timeout_seconds=60,
        launch_token="assay-launch.v1.test",
    )
    schemas = K8sSchemas.load()
    schemas.validate(objects.job)
    schemas.validate(objects.config_map)
    pod = objects.job["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["oci-credentials"]["secret"] == {
        "secretName": "push",
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
    }
    token = volumes["mlflow-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "mlflow" and token["expirationSeconds"] == 3600
    sidecar, adapter = pod["initContainers"][0], pod["containers"][0]
    sidecar_mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    adapter_mounts = {m["name"]: m["mountPath"] for m in adapter["volumeMounts"]}
    assert sidecar_mounts["oci-credentials"] == "/etc/evalhub/.docker"
    assert sidecar_mounts["mlflow-token"] == "/var/run/secrets/mlflow"
    assert sidecar_mounts["mlflow-ca"] == "/etc/evalhub/mlflow-ca"
    assert sidecar_mounts["shared"] == adapter_mounts["shared"] == "/shared"  # docs/compatibility.md
    assert not {"oci-credentials", "mlflow-token", "mlflow-ca", "hub-token"} & set(adapter_mounts)

    # The sidecar reads exactly these paths: its own config model accepts the file and points at the mounts.
    config = SidecarConfig.model_validate(json.loads(objects.config_map["data"]["sidecar_config.json"]))
    assert config.mlflow.tracking_uri == "https://mlflow.example:5000"
    assert str(config.mlflow.token_path) == "/var/run/secrets/mlflow/token"
    assert str(config.mlflow.ca_cert_path) == "/etc/evalhub/mlflow-ca/ca.crt"
    assert config.mlflow.workspace == "team-a"
    assert str(config.oci.docker_config_path) == "/etc/evalhub/.docker/config.json"
    assert config.oci.plain_http is True  # the hub's insecure registries reach the sidecar
    assert config.report_undelivered is False  # the watcher reports a missing result, with the pod's reason


def test_without_mlflow_or_oci_exports_no_credentials_are_mounted() -> None:
    objects = build_launch(
        evaluation_id=str(uuid.uuid4()),
        tenant="team-a",
        request={"model": {"url": "", "name": "m"}},
        runs=[(_planned(), 1)],
        settings=Settings(),
        timeout_seconds=60,
        launch_token="assay-launch.v1.test",
    )
    names = {v["name"] for v in objects.job["spec"]["template"]["spec"]["volumes"]}
    assert names == {"job-spec", "data", "shared", "pod-namespace", "hub-token"}
    config = SidecarConfig.model_validate(json.loads(objects.config_map["data"]["sidecar_config.json"]))
    assert config.mlflow.tracking_uri == "" and config.mlflow.token_path is None


def test_a_job_ttl_shorter_than_the_result_grace_is_refused() -> None:
    with pytest.raises(ValueError, match="k8s_ttl_seconds_after_finished must be at least"):
        Settings(k8s_ttl_seconds_after_finished=0)
    assert (
        Settings(
            k8s_ttl_seconds_after_finished=60, k8s_result_grace_seconds=60
        ).k8s_ttl_seconds_after_finished
        == 60
    )


def test_the_log_byte_cap_keeps_the_last_whole_lines_of_a_stream() -> None:
    from assay.runtimes.kubernetes.logs import tail_bytes

    lines = [f"{n:03d} {'y' * 10}\n".encode() for n in range(50)]  # 15 bytes each
    chunks = [b"".join(lines[i : i + 7]) for i in range(0, 50, 7)]  # chunks cut across lines too
    split = [c[j : j + 11] for c in chunks for j in range(0, len(c), 11)]
    assert tail_bytes(split, None) == (b"".join(lines), False)
    assert tail_bytes(split, 10_000) == (b"".join(lines), False)
    kept, cut = tail_bytes(split, 100)
    assert cut and kept == b"".join(lines[-6:])  # 6 whole lines (90 bytes), not a torn seventh
    kept, cut = tail_bytes(split, 90)
    assert cut and kept == b"".join(lines[-6:])  # the cut falls on a line boundary
    kept, cut = tail_bytes([b"x" * 50 + b"\n"], 10)
    assert cut and kept == b"x" * 9 + b"\n"  # a single line over the cap: cut from its start


def test_judge_fails_a_failed_mount_only_for_a_pod_that_never_started_past_the_grace() -> None:
    from assay.runtimes.kubernetes.watch import waiting_for_volumes

    def pod(age: float, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "metadata": {"name": "p", "uid": "u1", "creationTimestamp": _at(age)},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "adapter", "state": state}]},
        }

    creating = {"waiting": {"reason": "ContainerCreating"}}
    mount = {
        "reason": "FailedMount",
        "message": 'MountVolume.SetUp failed for volume "model" : secret "key" not found',
        "involvedObject": {"kind": "Pod", "name": "p", "uid": "u1"},
    }

    def verdict(pods: list[dict[str, Any]], events: list[dict[str, Any]]) -> str | None:
        found = judge(
            _job(), None, pods, local_queue="q", queue_exists=True, now=NOW, limits=LIMITS, events=events
        )
        return found.failure.message_code if found.failure is not None else None

    stuck = pod(121, creating)
    assert waiting_for_volumes([stuck], NOW, LIMITS) == ["p"]
    assert verdict([stuck], [mount]) == "pod_volume_mount_failed"
    assert verdict([stuck], []) is None  # nothing says why: left to the deadline
    assert waiting_for_volumes([pod(119, creating)], NOW, LIMITS) == []  # within the grace
    assert verdict([pod(119, creating)], [mount]) is None
    another = {**mount, "involvedObject": {"kind": "Pod", "name": "p", "uid": "an-earlier-p"}}
    assert verdict([stuck], [another]) is None
    started = pod(121, {"running": {"startedAt": _at(5)}})  # a mount that failed once, then worked
    assert waiting_for_volumes([started], NOW, LIMITS) == [] and verdict([started], [mount]) is None


def test_a_hardware_profile_is_read_as_evalhub_reads_it_and_refused_when_unusable() -> None:
    from assay.runtimes.kubernetes.objects import HardwareProfileRefused, read_hardware_profile

    def profile(spec: dict[str, Any], **annotations: str) -> dict[str, Any]:
        return {"metadata": {"name": "p", "annotations": annotations}, "spec": spec}

    cpu = {"identifier": "cpu", "resourceType": "CPU", "defaultCount": 2, "maxCount": "3500m"}
    found = read_hardware_profile(
        profile({"identifiers": [cpu, {"identifier": "amd.com/gpu", "defaultCount": 2}]})
    )
    assert found.requests == {"cpu": "2", "amd.com/gpu": "2"} and found.limits == {
        "cpu": "3500m",
        "amd.com/gpu": "2",
    }
    assert found.queue is None and found.node_selector is None and not found.tolerations
    no_gpu = read_hardware_profile(
        profile({"identifiers": [{"identifier": "nvidia.com/gpu", "defaultCount": 0}]})
    )
    assert no_gpu.requests == {} and no_gpu.limits == {}

    def refused(obj: dict[str, Any]) -> str:
        with pytest.raises(HardwareProfileRefused) as caught:
            read_hardware_profile(obj)
        return f"{caught.value.code}: {caught.value.message}"

    assert refused(profile({}, **{"opendatahub.io/disabled": "true"})).startswith("hardware_profile_disabled")
    assert refused(profile({"enabled": False})).startswith("hardware_profile_disabled")  # the v1alpha1 field
    assert "localQueueName is missing" in refused(profile({"scheduling": {"type": "Queue", "kueue": {}}}))
    assert "not a whole count" in refused(
        profile({"identifiers": [{"identifier": "nvidia.com/gpu", "defaultCount": "1.5"}]})
    )
    assert "is not a quantity" in refused(profile({"identifiers": [{**cpu, "defaultCount": "two"}]}))
    assert refused(profile({"scheduling": {"type": "Anywhere"}})).startswith("hardware_profile_invalid")


def test_the_launch_a_job_event_is_about() -> None:
    """What the sweep reads from a Job's event to tell a leftover launch: only Jobs named as Assay names the
    launch their labels describe, and whether the Job still runs."""
    from assay.runtimes.kubernetes.runtime import KubernetesRuntime

    runtime = KubernetesRuntime(Settings(mode="cluster", k8s_api_url="https://127.0.0.1:9"), None)
    runtime.retry_delays = ()  # an API server that is not there: at once, not after three more tries
    evaluation = str(uuid.uuid4())

    def job(name: str, **extra: Any) -> dict[str, Any]:
        labels = {
            "assay.dev/evaluation-id": evaluation,
            "assay.dev/benchmark-index": "2",
            "assay.dev/attempt": "3",
        }
        metadata = {"name": name, "namespace": "team-a", "labels": labels, **extra.pop("metadata", {})}
        return {"kind": "Job", "metadata": metadata, **extra}

    name = job_name(evaluation, 2, 3)
    seen = runtime.launch_of(job(name, metadata={"annotations": {"assay.dev/benchmark-indices": "2,4"}}))
    assert seen is not None
    assert (seen.evaluation_id, seen.attempt, seen.indices, seen.running) == (evaluation, 3, (2, 4), True)
    assert seen.runtime_ref == f"k8s:team-a/{name}"
    finished = runtime.launch_of(job(name, status={"conditions": [_cond("Complete")]}))
    assert finished is not None and not finished.running
    failing = runtime.launch_of(job(name, status={"conditions": [_cond("FailureTarget")]}))
    assert failing is not None and not failing.running
    not_yet = runtime.launch_of(job(name, status={"conditions": [_cond("Failed", status="False")]}))
    assert not_yet is not None and not_yet.running
    going = runtime.launch_of(job(name, metadata={"deletionTimestamp": _at(1)}))
    assert going is not None and not going.running
    assert runtime.launch_of(job(job_name(evaluation, 2, 4))) is None  # labels and name disagree
    assert runtime.launch_of({**job(name), "kind": "Pod"}) is None
    odd = job(name)
    odd["metadata"]["labels"]["assay.dev/attempt"] = "\u00b3"  # a digit to str.isdigit, not to int()
    assert runtime.launch_of(odd) is None
    assert runtime.launch_of({"kind": "Job", "namespace": "team-a", "name": name}) is None  # Reference mode
    # Removed only from the namespace of the evaluation's tenant: a Job elsewhere that claims the evaluation is
    # left alone (no call is made); in the tenant's own the delete goes out (here to an API server not there).
    assert asyncio.run(runtime.remove(seen, "team-b")) is None
    with pytest.raises(ApiException) as refused:
        asyncio.run(runtime.remove(seen, "team-a"))
    assert refused.value.status == 0 and refused.value.reason == "Unreachable"


def test_which_api_answers_are_tried_again() -> None:
    from assay.kubeapi import unanswered
    from assay.runtimes.kubernetes.runtime import passing

    for status in (429, 500, 502, 503, 504):
        assert passing(ApiException(status=status, reason="x"))
    for status in (400, 401, 403, 404, 409, 410, 422):
        assert not passing(ApiException(status=status, reason="x"))
    refused = urllib3.exceptions.NewConnectionError(None, "refused")  # type: ignore[arg-type]
    assert passing(unanswered(refused, 30))  # an API server restarting
    stalled = urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")  # type: ignore[arg-type]
    assert not passing(unanswered(stalled, 30))  # it already waited its whole timeout


def test_numbers_in_labels_and_annotations_are_ascii_digits() -> None:
    from assay.runtimes.kubernetes.objects import launch_indices, whole

    odd = ("12", " 3 ", "\u00b3", "\u0663", "-1", "", "1.0", "9" * 5000)
    assert [whole(t) for t in odd] == [12, 3, None, None, None, None, None, None]
    job = {"metadata": {"annotations": {"assay.dev/benchmark-indices": "0,\u00b3,2"}, "labels": {}}}
    assert launch_indices(job) == (0, 2)  # an annotation is free text: what is not a number is skipped
    assert launch_indices({"metadata": {"labels": {"assay.dev/benchmark-index": "\u00b9"}}}) == ()


def test_calls_are_tried_again_and_once_only_while_the_api_server_is_down() -> None:
    from assay.runtimes.kubernetes.runtime import KubernetesRuntime

    runtime = KubernetesRuntime(Settings(mode="cluster", k8s_api_url="https://127.0.0.1:9"), None)
    runtime.retry_delays = (0.01, 0.01, 0.01)
    tries: list[int] = []

    def answering(*statuses: int) -> Any:
        pending = list(statuses)

        def call() -> str:
            tries.append(1)
            status = pending.pop(0) if pending else 0
            if status:
                raise ApiException(status=status, reason="x")
            return "ok"

        return call

    assert asyncio.run(runtime._call(answering(503, 429))) == "ok" and len(tries) == 3
    tries.clear()
    with pytest.raises(ApiException):
        asyncio.run(runtime._call(answering(404)))  # a refusal of the request: once
    assert len(tries) == 1
    tries.clear()
    with pytest.raises(ApiException):
        asyncio.run(runtime._call(answering(503, 503, 503, 503)))  # every try: the server counts as down
    assert len(tries) == 4
    tries.clear()
    with pytest.raises(ApiException):
        asyncio.run(runtime._call(answering(503)))  # while down: once, at once
    assert len(tries) == 1
    tries.clear()
    assert asyncio.run(runtime._call(answering())) == "ok"  # it answers again
    assert asyncio.run(runtime._call(answering(500))) == "ok" and len(tries) == 3  # tried again as usual
