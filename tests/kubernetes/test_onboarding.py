"""Tenant onboarding (functions/tenants), tested like dispatch: the function as the manifests deploy it, with
its own ServiceAccount's RBAC from knative/, fed the ApiServerSource's Namespace events (each delivered
twice) and PingSource ticks, against the test API server."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from assay.runtimes.kubernetes.tenants import tenant_objects
from tests.kubernetes.api_server import TestApiServer
from tests.kubernetes.conftest import (
    FUNCTIONS_NAMESPACE,
    TENANT,
    Cluster,
    deployed_settings,
    install_rbac,
    kubeconfig,
)

Send = Callable[..., str]


@pytest.fixture()
def onboard(k8s_api: tuple[TestApiServer, str], tmp_path: Path) -> Iterator[Send]:
    """``onboard(namespace, type=...)``: an ApiServerSource event about ``namespace`` (None: a PingSource tick),
    delivered twice to the tenants function."""
    api, url = k8s_api
    install_rbac(api)
    token = api.service_account_token(FUNCTIONS_NAMESPACE, "assay-tenants")
    settings = deployed_settings(
        "tenants", {"ASSAY_K8S_KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", url, token))}
    )
    # What `uvicorn functions.tenants.main:app` serves (knative/base/tenants.yaml), its module fresh.
    module = importlib.reload(importlib.import_module("functions.tenants.main"))
    app, host = module.app, module.host
    host.settings = settings
    answers: list[int] = []
    said: list[str] = []

    async def deliver(event: CloudEvent) -> None:
        headers, body = to_binary(event)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tenants"
        ) as client:
            for _ in range(2):  # at least once: every event may come again
                answer = await client.post("/", headers=headers, content=body)
                answers.append(answer.status_code)
                said.append(answer.text)
        await host.close()

    def send(namespace: str | None, kind: str = "update", *, expect: int | None = None) -> str:
        """Delivers the event; every answer is 200 or 204, or ``expect``. Returns the last answer's body."""
        if namespace is None:
            event = CloudEvent(
                {"type": "dev.knative.sources.ping", "source": "/pingsources/assay-tenants"}, {}
            )
        else:
            found = api.get("namespaces", "", namespace) or {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace},
            }
            event = CloudEvent(
                {
                    "type": f"dev.knative.apiserver.resource.{kind}",
                    "source": "https://kubernetes.default.svc",
                    "subject": f"/api/v1/namespaces/{namespace}",
                },
                found,
            )
        import asyncio

        asyncio.run(deliver(event))
        assert set(answers) <= ({200, 204} if expect is None else {expect}), answers
        answers.clear()
        return said.pop() if said else ""

    yield send


def _owned(api: TestApiServer, namespace: str = TENANT) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for plural in ("rolebindings", "localqueues", "networkpolicies", "configmaps"):
        found[plural] = [
            o["metadata"]["name"] for o in api.list(plural, namespace, "assay.dev/onboarded-tenant")
        ]
    found["clusterqueues"] = [
        o["metadata"]["name"] for o in api.list("clusterqueues", None, "assay.dev/onboarded-tenant")
    ]
    return found


def _versions(api: TestApiServer) -> dict[tuple[str, str], tuple[str, str]]:
    return {
        (plural, o["metadata"]["name"]): (o["metadata"]["uid"], o["metadata"]["resourceVersion"])
        for plural in ("rolebindings", "localqueues", "networkpolicies", "clusterqueues")
        for o in api.list(plural, None, "assay.dev/onboarded-tenant")
    }


EXPECTED = {
    "rolebindings": ["assay-apiserversource", "assay-dispatch", "assay-submit", "assay-sweep"],
    "localqueues": ["assay"],
    "networkpolicies": ["assay-default-deny", "assay-evaluation-egress"],
    "configmaps": [],
    "clusterqueues": ["assay-team-a"],
}


@pytest.mark.parametrize("label", ["assay.dev/tenant", "evalhub.trustyai.opendatahub.io/tenant"])
def test_a_labelled_namespace_gets_everything_once(
    k8s_api: tuple[TestApiServer, str], onboard: Send, label: str
) -> None:
    api, _ = k8s_api
    api.add_namespace(TENANT, {label: "true"})
    onboard(TENANT, "add")
    assert _owned(api) == EXPECTED
    queue = api.get("clusterqueues", "", "assay-team-a") or {}
    assert queue["spec"]["cohortName"] == "assay"
    assert queue["spec"]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": TENANT}}
    assert queue["spec"]["fairSharing"] == {"weight": "1"}
    assert (api.get("localqueues", TENANT, "assay") or {})["spec"]["clusterQueue"] == "assay-team-a"
    before = _versions(api)
    onboard(TENANT)  # again: nothing new, nothing rewritten
    assert _versions(api) == before and _owned(api) == EXPECTED


def test_what_was_changed_or_deleted_by_hand_is_repaired(
    k8s_api: tuple[TestApiServer, str], onboard: Send
) -> None:
    api, _ = k8s_api
    api.add_namespace(TENANT, {"assay.dev/tenant": TENANT})
    onboard(TENANT)
    api.delete("rolebindings", TENANT, "assay-dispatch")
    queue = api.get("localqueues", TENANT, "assay") or {}
    api.apply([{**queue, "spec": {"clusterQueue": "someone-elses"}}])
    onboard(None)  # the PingSource's repair
    assert _owned(api) == EXPECTED
    assert (api.get("localqueues", TENANT, "assay") or {})["spec"]["clusterQueue"] == "assay-team-a"
    binding = api.get("rolebindings", TENANT, "assay-dispatch") or {}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "assay-dispatch", "namespace": "assay"}]


def test_removing_the_label_removes_what_onboarding_made_and_nothing_else(
    k8s_api: tuple[TestApiServer, str], onboard: Send
) -> None:
    api, _ = k8s_api
    api.add_namespace(TENANT, {"assay.dev/tenant": TENANT})
    onboard(TENANT)
    api.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine", "namespace": TENANT}})
    api.update("namespaces", "", TENANT, labels={})
    onboard(TENANT)
    assert _owned(api) == {k: [] for k in EXPECTED}
    assert api.get("configmaps", TENANT, "mine") is not None  # not onboarding's
    # A namespace deleted outright: its ClusterQueue goes too (the rest went with the namespace).
    api.update("namespaces", "", TENANT, labels={"assay.dev/tenant": TENANT})
    onboard(TENANT)
    api.delete("namespaces", "", TENANT)
    onboard(TENANT, "delete")
    assert api.list("clusterqueues") == []


def test_an_unlabelled_namespace_is_left_alone(k8s_api: tuple[TestApiServer, str], onboard: Send) -> None:
    api, _ = k8s_api
    api.add_namespace("kube-public")
    onboard("kube-public")
    onboard(None)
    assert api.list("rolebindings") == [] and api.list("clusterqueues") == []


def test_an_onboarded_tenant_runs_benchmarks(start_cluster: Callable[..., Cluster], onboard: Send) -> None:
    """Onboarding gives dispatch what it needs: its RoleBinding and a LocalQueue (403 without them)."""
    cluster = start_cluster()
    cluster.api.add_namespace(TENANT, {"assay.dev/tenant": TENANT})
    onboard(TENANT, "add")
    cluster.add_provider()
    job_id = cluster.submit_job()
    (job,) = cluster.wait_jobs(job_id)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "assay"


def test_the_tenant_component_says_what_onboarding_creates() -> None:
    """kueue/components/tenant (the manual path) and onboarding create the same objects for team-a."""
    from tests.kubernetes.conftest import function_environment
    from tests.manifests.rendering import KUEUE, render

    settings = deployed_settings("tenants", {})
    rendered = render(KUEUE / "tenants" / "example")
    built = tenant_objects(settings, TENANT, TENANT)

    def key(obj: dict[str, Any]) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    by_key = {key(o): o for o in rendered if o["kind"] != "Namespace"}
    assert sorted(by_key) == sorted(key(o) for o in built)
    for obj in built:
        mine = by_key[key(obj)]
        assert {k: v for k, v in mine.items() if k not in ("metadata",)} == {
            k: v for k, v in obj.items() if k not in ("metadata",)
        }, key(obj)
    assert function_environment("tenants")["ASSAY_RUNTIME"] == "kubernetes"


def test_an_api_error_that_remains_is_answered_in_one_clean_sentence(
    k8s_api: tuple[TestApiServer, str], onboard: Send
) -> None:
    """A 500 passes after a retry; one that remains is a 503 for the broker to redeliver, saying why (the
    Status message), never the client's text; the next delivery completes what the first could not."""
    api, _ = k8s_api
    api.add_namespace(TENANT, {"assay.dev/tenant": "true"})
    api.fail_creates["rolebindings"] = [500]
    onboard(TENANT, "add")
    assert _owned(api) == EXPECTED
    api.add_namespace("team-b", {"assay.dev/tenant": "true"})
    api.fail_creates["localqueues"] = [503] * 8  # each of the two deliveries tries four times
    said = onboard("team-b", "add", expect=503)
    assert "Tenant onboarding failed: the Kubernetes API answered 503" in said, said
    assert "injected: creating localqueues failed" in said
    for raw in ("HTTP response headers", "Audit-Id", "Reason:"):
        assert raw not in said
    onboard("team-b", "update")
    assert [q["metadata"]["name"] for q in api.list("localqueues", "team-b")] == ["assay"]
