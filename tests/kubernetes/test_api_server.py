"""The test API server refuses what a real one refuses (RBAC by ServiceAccount, missing namespaces, objects
over 1 MiB), and serves TokenReview and SubjectAccessReview to the real ``kubernetes`` client."""

from __future__ import annotations

import json
import subprocess
import sys

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from tests.kubernetes.api_server import TestApiServer
from tests.kubernetes.conftest import install_rbac, install_tenant
from tests.manifests.rendering import REPO


def _client(url: str, token: str) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration(host=url)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return kubernetes.client.ApiClient(configuration)


def _config_map(name: str, size: int = 2) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "x" * size}}


def test_rbac_from_the_rendered_manifests_decides(k8s_api: tuple[TestApiServer, str]) -> None:
    api, url = k8s_api
    install_rbac(api)
    dispatch = _client(url, api.service_account_token("assay", "assay-dispatch"))
    sweep = _client(url, api.service_account_token("assay", "assay-sweep"))
    core = kubernetes.client.CoreV1Api(dispatch)
    # No RoleBinding in team-a yet: the ClusterRole grants nothing on its own.
    with pytest.raises(ApiException) as refused:
        core.list_namespaced_config_map("team-a")
    assert refused.value.status == 403
    assert (
        'User "system:serviceaccount:assay:assay-dispatch" cannot list resource "configmaps"'
        in (json.loads(refused.value.body)["message"])
    )
    install_tenant(api)  # kueue/tenants/example: the RoleBindings
    core.create_namespaced_config_map("team-a", _config_map("c"))
    assert [c["metadata"]["name"] for c in api.list("configmaps", "team-a")] == ["c"]
    # The sweep's role has no create on ConfigMaps, and nobody may touch another namespace.
    with pytest.raises(ApiException) as refused:
        kubernetes.client.CoreV1Api(sweep).create_namespaced_config_map("team-a", _config_map("d"))
    assert refused.value.status == 403
    with pytest.raises(ApiException) as refused:
        core.list_namespaced_config_map("kube-system")
    assert refused.value.status == 403
    # No token, or an unknown one: 401.
    with pytest.raises(ApiException) as unknown:
        kubernetes.client.CoreV1Api(_client(url, "nope")).list_namespaced_config_map("team-a")
    assert unknown.value.status == 401
    for client in (dispatch, sweep):
        client.close()


def test_missing_namespaces_and_large_objects_are_refused(k8s_api: tuple[TestApiServer, str]) -> None:
    api, url = k8s_api
    admin = _client(url, api.admin_token)
    core = kubernetes.client.CoreV1Api(admin)
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("nowhere", _config_map("c"))
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'namespaces "nowhere" not found'
    api.add_namespace("team-a")
    with pytest.raises(ApiException) as too_long:
        core.create_namespaced_config_map("team-a", _config_map("big", 1024 * 1024))
    assert too_long.value.status == 422
    assert "Too long: may not be more than 1048576 bytes" in str(too_long.value.body)
    core.create_namespaced_config_map("team-a", _config_map("fits", 1024 * 1024 - 10))
    admin.close()


def test_token_review_and_subject_access_review_through_the_real_client(
    k8s_api: tuple[TestApiServer, str],
) -> None:
    """What the hub's Kubernetes authenticator calls: who is this token, and may they do this?"""
    api, url = k8s_api
    api.add_namespace("team-a")
    # The hub's own identity needs system:auth-delegator's rights to ask.
    hub = api.service_account_token("assay", "assay-submit")
    api.grant(
        {"kind": "ServiceAccount", "name": "assay-submit", "namespace": "assay"},
        [
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["subjectaccessreviews"],
                "verbs": ["create"],
            },
        ],
    )
    alice = api.register_token("alice-token", "alice", ["team-a-viewers"], audiences=["assay"])
    api.grant(
        {"kind": "Group", "name": "team-a-viewers"},
        [{"apiGroups": ["trustyai.opendatahub.io"], "resources": ["evaluations"], "verbs": ["get", "list"]}],
        namespace="team-a",
    )
    client = _client(url, hub)
    authn = kubernetes.client.AuthenticationV1Api(client)
    review = authn.create_token_review(
        kubernetes.client.V1TokenReview(
            spec=kubernetes.client.V1TokenReviewSpec(token=alice, audiences=["assay"])
        )
    )
    assert review.status.authenticated is True
    assert review.status.user.username == "alice" and review.status.user.groups == ["team-a-viewers"]
    wrong_audience = authn.create_token_review(
        kubernetes.client.V1TokenReview(
            spec=kubernetes.client.V1TokenReviewSpec(token=alice, audiences=["x"])
        )
    )
    assert wrong_audience.status.authenticated is False
    stranger = authn.create_token_review(
        kubernetes.client.V1TokenReview(spec=kubernetes.client.V1TokenReviewSpec(token="forged"))
    )
    assert stranger.status.authenticated is False

    authz = kubernetes.client.AuthorizationV1Api(client)

    def may(verb: str, namespace: str) -> bool:
        attributes = kubernetes.client.V1ResourceAttributes(
            namespace=namespace, verb=verb, group="trustyai.opendatahub.io", resource="evaluations"
        )
        spec = kubernetes.client.V1SubjectAccessReviewSpec(
            user="alice", groups=["team-a-viewers"], resource_attributes=attributes
        )
        answer = authz.create_subject_access_review(kubernetes.client.V1SubjectAccessReview(spec=spec))
        return bool(answer.status.allowed)

    assert may("get", "team-a") and may("list", "team-a")
    assert not may("create", "team-a") and not may("get", "team-b")
    # A caller without the rights to ask is refused, as on a cluster.
    nobody = _client(url, api.register_token("nobody-token", "nobody"))
    with pytest.raises(ApiException) as refused:
        kubernetes.client.AuthenticationV1Api(nobody).create_token_review(
            kubernetes.client.V1TokenReview(spec=kubernetes.client.V1TokenReviewSpec(token=alice))
        )
    assert refused.value.status == 403
    for each in (client, nobody):
        each.close()


def test_pod_logs_with_tail_and_since(k8s_api: tuple[TestApiServer, str]) -> None:
    from datetime import UTC, datetime, timedelta

    api, url = k8s_api
    api.add_namespace("team-a")
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "team-a"},
            "spec": {"containers": [{"name": "adapter", "image": "x"}]},
        }
    )
    now = datetime.now(UTC)
    api.set_log("team-a", "p", "adapter", [(now - timedelta(minutes=10), "old"), (now, "a"), (now, "b")])
    client = _client(url, api.admin_token)
    core = kubernetes.client.CoreV1Api(client)
    assert core.read_namespaced_pod_log("p", "team-a", container="adapter") == "old\na\nb\n"
    assert core.read_namespaced_pod_log("p", "team-a", container="adapter", tail_lines=1) == "b\n"
    assert core.read_namespaced_pod_log("p", "team-a", container="adapter", since_seconds=60) == "a\nb\n"
    client.close()


def test_the_pod_log_reader_finds_the_latest_attempts_adapter_and_cuts_like_local_mode(
    k8s_api: tuple[TestApiServer, str],
) -> None:
    """assay.runtimes.kubernetes.logs: what GET .../logs needs in a cluster (pods list, pods/log get)."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from assay.runtimes.kubernetes.logs import PodLogs
    from assay.settings import Settings

    api, url = k8s_api
    api.add_namespace("team-a")
    job = "00000000-0000-0000-0000-00000000000a"

    def pod(name: str, attempt: int, indices: str) -> None:
        labels = {"assay.dev/evaluation-id": job, "assay.dev/attempt": str(attempt)}
        api.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": "team-a",
                    "labels": labels,
                    "annotations": {"assay.dev/benchmark-indices": indices},
                },
                "spec": {
                    "initContainers": [{"name": "sidecar", "image": "s", "restartPolicy": "Always"}],
                    "containers": [{"name": "adapter", "image": "a"}],
                },
            }
        )

    pod("first", 1, "0,1")
    pod("retried", 2, "0,1")
    pod("other", 1, "2")
    now = datetime.now(UTC)
    api.set_log("team-a", "first", "adapter", ["attempt one"])
    api.set_log("team-a", "other", "adapter", ["benchmark two"])
    api.set_log(
        "team-a",
        "retried",
        "adapter",
        [(now - timedelta(hours=1), "early"), (now, "late 1"), (now, "late 2")],
    )
    api.set_log("team-a", "retried", "sidecar", ["not the adapter's"])
    reader = api.service_account_token("assay", "assay-submit")
    api.grant(
        {"kind": "ServiceAccount", "name": "assay-submit", "namespace": "assay"},
        [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ],
        namespace="team-a",
    )
    configuration = kubernetes.client.Configuration(host=url)
    configuration.api_key = {"authorization": f"Bearer {reader}"}
    logs = PodLogs(Settings(database_url="postgresql://unused"), configuration)

    async def read(**options: object) -> str:
        found = await logs.read("team-a", job, 1, timestamps=False, **options)  # type: ignore[arg-type]
        assert found.pod == "retried" and found.missing is None
        return found.text

    assert asyncio.run(read()) == "early\nlate 1\nlate 2\n"  # the latest attempt's pod, the adapter only
    assert asyncio.run(read(tail_lines=1)) == "late 2\n"
    assert asyncio.run(read(since=now - timedelta(minutes=5))) == "late 1\nlate 2\n"
    missing = asyncio.run(logs.read("team-a", job, 5))  # no pod runs benchmark 5
    assert missing.pod is None and missing.text == "" and missing.missing is not None
    stamped = asyncio.run(logs.read("team-a", job, 2, tail_lines=1)).text
    assert stamped.endswith(" benchmark two\n")  # with the kubelet's RFC 3339 stamp
    assert datetime.fromisoformat(stamped.split(" ")[0][:26] + "+00:00") <= datetime.now(UTC)
    asyncio.run(logs.close())

    # A fresh process (the submit function's first logs request) reads without the generated CoreV1Api, whose
    # import (0.7 s, 21 MiB) is what the first request paid, nor any of the generated models (their package only).
    probe = f"""
import asyncio, sys, kubernetes.client
from assay.runtimes.kubernetes.logs import PodLogs
from assay.settings import Settings
configuration = kubernetes.client.Configuration(host={url!r})
configuration.api_key = {{"authorization": "Bearer {reader}"}}
logs = PodLogs(Settings(database_url="postgresql://unused"), configuration)
found = asyncio.run(logs.read("team-a", {job!r}, 1, timestamps=False, tail_lines=1))
print(found.text.strip(), sorted(m for m in sys.modules if m.startswith(("kubernetes.client.api.", "kubernetes.client.models."))))
"""
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "late 2 []"


def test_a_container_that_never_ran_has_no_log_yet_and_events_filter_by_field(
    k8s_api: tuple[TestApiServer, str],
) -> None:
    """What a cluster answers for a log of a container still waiting (400), and a field selector on Events."""
    api, url = k8s_api
    api.add_namespace("team-a")
    api.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "team-a"},
            "spec": {"containers": [{"name": "adapter", "image": "x"}]},
        }
    )
    waiting = {"name": "adapter", "image": "x", "imageID": "", "ready": False, "restartCount": 0}
    api.set_status(
        "pods",
        "team-a",
        "p",
        {
            "phase": "Pending",
            "containerStatuses": [{**waiting, "state": {"waiting": {"reason": "PodInitializing"}}}],
        },
    )
    client = _client(url, api.admin_token)
    core = kubernetes.client.CoreV1Api(client)
    with pytest.raises(ApiException) as refused:
        core.read_namespaced_pod_log("p", "team-a", container="adapter")
    assert refused.value.status == 400
    message = json.loads(refused.value.body)["message"]
    assert message == 'container "adapter" in pod "p" is waiting to start: PodInitializing'
    for name, reason in (("e1", "FailedMount"), ("e2", "Scheduled")):
        api.put(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": "team-a"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "team-a"},
                "reason": reason,
                "message": reason,
            }
        )
    found = core.list_namespaced_event(
        "team-a", field_selector="involvedObject.kind=Pod,reason=FailedMount", _preload_content=False
    )
    assert [e["metadata"]["name"] for e in json.loads(found.data)["items"]] == ["e1"]
    others = core.list_namespaced_event(
        "team-a", field_selector="reason!=FailedMount", _preload_content=False
    )
    assert [e["metadata"]["name"] for e in json.loads(others.data)["items"]] == ["e2"]
    client.close()


def test_a_call_the_api_server_does_not_answer_fails_within_its_timeout(
    k8s_api: tuple[TestApiServer, str],
) -> None:
    """assay.kubeapi bounds every call (ASSAY_K8S_REQUEST_TIMEOUT_SECONDS): a stalled or unreachable API server is an
    ApiException with status 0 and a clean Status saying why, never a wait without end nor urllib3's own text."""
    import time

    from assay.kubeapi import CoreV1
    from assay.runtimes.kubernetes.runtime import api_said
    from tests.support.net import free_port

    api, url = k8s_api
    api.add_namespace("team-a")
    api.create_delay = 5.0  # the server takes longer than the caller waits
    core = CoreV1(_client(url, api.admin_token), 0.5)
    began = time.monotonic()
    with pytest.raises(ApiException) as stalled:
        core.create_namespaced_config_map("team-a", _config_map("slow"))
    assert time.monotonic() - began < 3.0
    assert (stalled.value.status, stalled.value.reason) == (0, "Timeout")
    assert api_said(stalled.value) == (
        "the Kubernetes API did not answer (no answer within 0.5 s)",
        "Timeout",
    )
    api.create_delay = 0.0
    assert (
        core.list_namespaced_pod("team-a")["items"] == []
    )  # the same client answers again once the server does

    gone = CoreV1(_client(f"http://127.0.0.1:{free_port()}", api.admin_token), 0.5)
    with pytest.raises(ApiException) as refused:
        gone.list_namespaced_pod("team-a")
    assert (refused.value.status, refused.value.reason) == (0, "Unreachable")
    said, _ = api_said(refused.value)
    assert said == "the Kubernetes API did not answer (the connection failed or was cut)"
    assert "127.0.0.1" not in said and "Errno" not in said


def test_what_urllib3_raises_is_named_a_timeout_only_when_it_is_one() -> None:
    """The pod-log reader converts what a streamed answer raises mid-way with the same function."""
    import urllib3

    from assay.kubeapi import unanswered

    read = urllib3.exceptions.ReadTimeoutError(None, "/log", "Read timed out.")
    cut = urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead(10 bytes read)")
    refused = urllib3.exceptions.NewConnectionError(None, "[Errno 111] Connection refused")
    assert [unanswered(e, 2.0).reason for e in (read, cut, refused)] == [
        "Timeout",
        "Unreachable",
        "Unreachable",
    ]
    retried = urllib3.exceptions.MaxRetryError(None, "/log", read)
    assert json.loads(unanswered(retried, 2.0).body)["message"] == "no answer within 2 s"
