"""Kubernetes mode: callers' tokens reviewed (TokenReview) and each request authorised in the tenant's namespace
(SubjectAccessReview, EvalHub's resource/verb table), through the real ``kubernetes`` client, by the submit
function's own ServiceAccount with the RBAC of knative/, against the RBAC-checking test API server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import LiveServer
from tests.kubernetes.api_server import TestApiServer
from tests.kubernetes.conftest import FUNCTIONS_NAMESPACE, install_rbac, kubeconfig

P = "/api/v1/evaluations/providers"
C = "/api/v1/evaluations/collections"
GROUP = "trustyai.opendatahub.io"


@pytest.fixture()
def cluster() -> Iterator[tuple[TestApiServer, str]]:
    api = TestApiServer()
    with LiveServer(api.app) as server:  # type: ignore[arg-type]
        install_rbac(api)
        api.apply(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ("team-a", "team-b")]
        )
        yield api, server.url


@pytest.fixture()
def hub(
    cluster: tuple[TestApiServer, str], make_client: Callable[..., TestClient], tmp_path: Path
) -> TestClient:
    api, url = cluster
    token = api.service_account_token(FUNCTIONS_NAMESPACE, "assay-submit")
    config = kubeconfig(tmp_path / "submit-kubeconfig", url, token)
    # An EvalHub Role: read and create in team-a, plus the MLflow experiments EvalHub's proxy also checks.
    api.register_token("alice-token", "alice", ["system:authenticated"])
    api.grant(
        "alice",
        [
            {
                "apiGroups": [GROUP],
                "resources": ["providers", "collections", "evaluations"],
                "verbs": ["get", "list", "create"],
            },
            {"apiGroups": ["mlflow.kubeflow.org"], "resources": ["experiments"], "verbs": ["create", "get"]},
        ],
        namespace="team-a",
    )
    return make_client(mode="cluster", auth_mode="kubernetes", k8s_kubeconfig=config, auth_cache_seconds=0)


def test_token_review_and_access_review(hub: TestClient) -> None:
    alice = {"Authorization": "Bearer alice-token", "X-Tenant": "team-a"}
    assert hub.get(P, headers=alice).status_code == 200
    created = hub.post(
        C,
        headers=alice,
        json={"name": "c", "category": "x", "benchmarks": [{"id": "bench_a", "provider_id": "demo"}]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["resource"]["owner"] == "alice"
    # No delete verb in her Role; nothing at all in team-b; a token the API server does not know.
    assert hub.delete(f"{C}/{created.json()['resource']['id']}", headers=alice).status_code == 403
    assert hub.get(P, headers={**alice, "X-Tenant": "team-b"}).status_code == 403
    assert hub.get(P, headers={"Authorization": "Bearer nobody", "X-Tenant": "team-a"}).status_code == 401


def test_a_reviewer_without_rbac_cannot_authenticate_anyone(
    cluster: tuple[TestApiServer, str], make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    api, url = cluster
    # The aggregate function's account has no review rights: the hub answers 503 (retry), never lets the caller in.
    token = api.service_account_token(FUNCTIONS_NAMESPACE, "assay-aggregate")
    config = kubeconfig(tmp_path / "aggregate-kubeconfig", url, token)
    api.register_token("alice-token", "alice")
    client = make_client(mode="cluster", auth_mode="kubernetes", k8s_kubeconfig=config, auth_cache_seconds=0)
    answer = client.get(P, headers={"Authorization": "Bearer alice-token", "X-Tenant": "team-a"})
    assert answer.status_code == 503


def test_the_client_is_built_on_the_first_review_and_a_cluster_is_required_at_start(
    cluster: tuple[TestApiServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kubernetes client (0.3 s to import) is built by the first review, in its worker thread: submit and
    callback start, and answer probes and launch credentials, without it. What names no API server is still
    refused at start, not on some user's first request."""
    import asyncio

    from assay.auth._kubernetes import KubernetesGuard
    from assay.settings import Settings

    api, url = cluster
    config = kubeconfig(
        tmp_path / "kubeconfig", url, api.service_account_token(FUNCTIONS_NAMESPACE, "assay-submit")
    )
    api.register_token("alice-token", "alice", ["system:authenticated"])
    guard = KubernetesGuard(Settings(mode="cluster", k8s_kubeconfig=config, auth_cache_seconds=0))
    assert guard._reviews._objects is None
    assert asyncio.run(guard.authenticate("alice-token", {})).subject == "alice"
    assert guard._reviews._objects is not None

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ValueError, match="needs an API server"):
        KubernetesGuard(Settings(mode="cluster"))
    with pytest.raises(ValueError, match="k8s_kubeconfig"):
        KubernetesGuard(Settings(mode="cluster", k8s_kubeconfig=tmp_path / "missing"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(ValueError, match="service account token"):
        KubernetesGuard(Settings(mode="cluster"))


def test_a_review_the_cluster_does_not_answer_is_a_503_whose_log_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An API server that cannot be reached: the request is answered 503 (TemporaryError), and the hub's log says
    why (assay.kubeapi's Unreachable), never the token."""
    import asyncio
    import logging

    from assay.auth._kubernetes import KubernetesGuard
    from assay.errors import TemporaryError
    from assay.settings import Settings
    from tests.support.net import free_port

    url = f"http://127.0.0.1:{free_port()}"
    guard = KubernetesGuard(Settings(mode="cluster", k8s_api_url=url, k8s_request_timeout_seconds=1))
    with caplog.at_level(logging.WARNING, logger="assay.auth._kubernetes"), pytest.raises(TemporaryError):
        asyncio.run(guard.authenticate("secret-token-value", {}))
    said = [r.getMessage() for r in caplog.records if r.name == "assay.auth._kubernetes"]
    assert said == ["TokenReview failed: Unreachable"]
