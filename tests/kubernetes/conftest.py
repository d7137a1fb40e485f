"""The cluster as the tests see it: the test API server with Assay's RBAC, and the Knative functions (submit,
callback, dispatch, aggregate, sweep) **as the manifests deploy them**, chained by a loopback broker that
delivers every event three times.

One source: each function's environment is read from the rendered ``knative/overlays/dev`` (the
``assay-settings`` ConfigMap, the Service's own ``env``, Secret values from the rendered Secrets); the tests
add only what a cluster provides otherwise (the database, ``K_SINK`` from the SinkBinding, the API server
address) and their own timing knobs. Dispatch, sweep and submit (pod logs) reach the API server with their
own ServiceAccounts' tokens, authorised by the ClusterRoles of ``knative/`` and the tenant's RoleBindings of
``kueue/tenants/example``, so a call the manifests do not allow is 403 here as on a cluster.

Tests play Kueue, the Job controller and the kubelet by writing objects and status into the API server, then
let the sweep's watcher look (a PingSource tick or an ApiServerSource event) and read the outcome through the
public jobs API."""

from __future__ import annotations

import base64
import contextlib
import copy
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from fastapi.testclient import TestClient

from assay.core.events import (
    BENCHMARK_FINISHED,
    EVALUATION_ACCEPTED,
    EVALUATION_CANCELLED,
    EVALUATION_RETRIED,
    KUBERNETES_RESOURCE_EVENTS,
    SWEEP_REQUESTED,
)
from assay.settings import Settings
from tests.conftest import ADMIN, FIXTURES, TEST_HOSTS, LiveServer, TokenFile
from tests.function_chain.test_cloudevent_chain import Broker, _function
from tests.kubernetes.api_server import TestApiServer, rfc3339
from tests.manifests.rendering import KNATIVE, KUEUE, named, of_kind, render
from tests.support.net import free_port
from tests.support.waiting import wait_for

OVERLAY = KNATIVE / "overlays" / "dev"
FUNCTIONS_NAMESPACE = "assay"
_SETTINGS_ENV = ("ASSAY_", "DATABASE_URL", "K_SINK", "MLFLOW_", "OCI_AUTH_CONFIG_PATH")


def function_environment(service: str, overlay: Path = OVERLAY) -> dict[str, str]:
    """The environment the Knative Service ``service`` of ``overlay`` gives its container: its ConfigMap and
    Secret sources and its ``env`` (``valueFrom`` resolved against the rendered ConfigMaps and Secrets)."""
    objects = render(overlay)
    container = named(objects, "Service", service, "serving.knative.dev")["spec"]["template"]["spec"][
        "containers"
    ][0]

    def config_map(name: str) -> dict[str, str]:
        return dict(named(objects, "ConfigMap", name, "v1").get("data") or {})

    def secret(name: str) -> dict[str, str]:
        found = named(objects, "Secret", name, "v1")
        data = {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}
        return {**data, **(found.get("stringData") or {})}

    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(config_map(source["configMapRef"]["name"]))
        if "secretRef" in source:
            env.update(secret(source["secretRef"]["name"]))
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]
        if "secretKeyRef" in ref:
            env[item["name"]] = secret(ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]]
        elif "configMapKeyRef" in ref:
            env[item["name"]] = config_map(ref["configMapKeyRef"]["name"])[ref["configMapKeyRef"]["key"]]
    return env


@contextlib.contextmanager
def _only_environment(env: Mapping[str, str]) -> Iterator[None]:
    """The process environment with ``env`` as the only settings variables (nothing leaks from the test's)."""
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if n.startswith(_SETTINGS_ENV)]:
            del os.environ[name]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def deployed_settings(service: str, env: Mapping[str, str], **init: Any) -> Settings:
    """The Settings the function ``service`` reads, as deployed, plus ``env`` (what the test environment
    provides instead of the cluster) and ``init`` (the tests' authentication)."""
    with _only_environment({**function_environment(service), **env}):
        return Settings(**init)


def kubeconfig(path: Path, server: str, token: str) -> Path:
    """A kubeconfig that authenticates with ``token`` (what the in-cluster ServiceAccount token is)."""
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {"server": server}}],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "sa"}}],
                "current-context": "test",
            }
        )
    )
    return path


def install_rbac(api: TestApiServer) -> None:
    """What ``kubectl apply -k knative/overlays/dev`` installs that the API server authorises with: the
    functions' namespace, ServiceAccounts, ClusterRoles and ClusterRoleBindings."""
    objects = render(OVERLAY)
    api.apply(of_kind(objects, "Namespace", "v1"))
    api.apply(of_kind(objects, "ServiceAccount", "v1"))
    api.apply(of_kind(objects, "ClusterRole", "rbac.authorization.k8s.io"))
    api.apply(of_kind(objects, "ClusterRoleBinding", "rbac.authorization.k8s.io"))


def install_tenant(api: TestApiServer) -> None:
    """``kubectl apply -k kueue/tenants/example``: the namespace team-a, its LocalQueue and RoleBindings."""
    api.apply(render(KUEUE / "tenants" / "example"))


TENANT = "team-a"
TEAM = {"X-Tenant": TENANT}
IMAGE = "ghcr.io/assay-evals/adapter-exact:0.1.0"


def k8s_provider(provider_id: str = "exact", *, group: bool = False) -> dict[str, Any]:
    return {
        "id": provider_id,
        "name": "Exact match",
        "runtime": {
            "k8s": {
                "image": IMAGE,
                "entrypoint": ["python", "-m", "adapters.exact"],
                "cpu_request": "250m",
                "memory_request": "256Mi",
                "cpu_limit": "1",
                "memory_limit": "512Mi",
                "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
            },
            **({"group_benchmarks": True} if group else {}),
        },
        "benchmarks": [
            {"id": b, "name": b, "category": "qa", "metrics": ["exact_match"]}
            for b in ("qa", "qa_f1", "qa_long")
        ],
    }


@dataclass
class Cluster:
    api: TestApiServer
    submit: TestClient
    callback: TestClient
    broker_url: str
    hosts: list[Any] = field(default_factory=list)

    # -- the user's side ----------------------------------------------------------------------------

    def add_provider(self, provider: dict[str, Any] | None = None) -> None:
        answer = self.submit.post(
            "/api/v1/evaluations/providers", json=provider or k8s_provider(), headers=TEAM
        )
        assert answer.status_code == 201, answer.text

    def submit_job(self, benchmarks: list[str] | None = None, **extra: Any) -> str:
        body = {
            "name": "on the cluster",
            "model": {"url": "http://vllm.models.svc:8000/v1", "name": "granite"},
            "benchmarks": [{"id": b, "provider_id": "exact"} for b in benchmarks or ["qa"]],
            **extra,
        }
        answer = self.submit.post("/api/v1/evaluations/jobs", json=body, headers=TEAM)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["resource"]["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        answer = self.submit.get(f"/api/v1/evaluations/jobs/{job_id}", headers=TEAM)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def benchmark(self, job_id: str, index: int = 0) -> dict[str, Any]:
        return dict(self.job(job_id)["status"]["benchmarks"][index])

    def wait_state(self, job_id: str, *states: str) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"]["state"] in states else None

        return dict(wait_for(reached, timeout=60))

    def report(self, job_id: str, index: int, status: str, **fields: Any) -> None:
        """What the sidecar forwards for the adapter: a status event on the callback route."""
        event = {
            "provider_id": "exact",
            "id": self.benchmark(job_id, index)["id"],
            "benchmark_index": index,
            "status": status,
            **fields,
        }
        answer = self.callback.post(
            f"/api/v1/evaluations/jobs/{job_id}/events",
            json={"benchmark_status_event": event},
            headers={**TEAM, "Authorization": f"Bearer {self.launch_token(job_id, index)}"},
        )
        assert answer.status_code in (200, 204), answer.text

    def launch_token(self, job_id: str, index: int) -> str:
        """What the sidecar of the launch running benchmark ``index`` presents: its credential Secret."""

        def secret() -> dict[str, Any] | None:
            mine = [
                found
                for found in self.api.list("secrets", TENANT, f"assay.dev/evaluation-id={job_id}")
                if str(index)
                in (found["metadata"].get("annotations") or {})
                .get("assay.dev/benchmark-indices", "")
                .split(",")
            ]  # the latest attempt's launch
            return max(mine, key=lambda f: int(f["metadata"]["labels"]["assay.dev/attempt"]), default=None)

        found: dict[str, Any] = wait_for(secret)
        return base64.b64decode(found["data"]["token"]).decode()

    # -- the cluster's side -------------------------------------------------------------------------

    def tenant(self, *, queue: bool = True) -> None:
        """Set up the tenant as ``kueue/tenants/example`` does (namespace, RoleBindings, LocalQueue ``assay``);
        ``queue=False`` leaves out the LocalQueue."""
        install_tenant(self.api)
        if not queue:
            self.api.delete("localqueues", TENANT, "assay")

    def credentials_secret(self, name: str, *, labelled: bool = True) -> None:
        """A Secret in the tenant's namespace a job may name (``labelled``: marked for Assay)."""
        labels = {"assay.dev/credentials": "true"} if labelled else {}
        self.api.put(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": TENANT, "labels": labels},
                "stringData": {"api-key": "sk-test"},
            }
        )

    def queue(self, name: str = "assay", cluster_queue: str = "assay-cq") -> None:
        """A LocalQueue ``name`` in the tenant's namespace (the namespace and RoleBindings set up first)."""
        if self.api.get("namespaces", "", TENANT) is None:
            self.tenant(queue=False)
        if self.api.get("localqueues", TENANT, name) is not None:
            return
        self.api.put(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "LocalQueue",
                "metadata": {"name": name, "namespace": TENANT},
                "spec": {"clusterQueue": cluster_queue},
            }
        )

    def jobs(self, job_id: str) -> list[dict[str, Any]]:
        return self.api.list("jobs", TENANT, f"assay.dev/evaluation-id={job_id}")

    def wait_jobs(self, job_id: str, count: int = 1) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = wait_for(lambda: len(self.jobs(job_id)) >= count and self.jobs(job_id))
        return found

    def workload(
        self, job: dict[str, Any], *conditions: dict[str, Any], admitted: bool = False
    ) -> dict[str, Any]:
        """Kueue's Workload for ``job`` (owned by it, labelled with its uid), with ``conditions``."""
        meta = job["metadata"]
        name = f"job-{meta['name']}-5d8f2"
        existing = self.api.get("workloads", TENANT, name)
        if existing is None:
            self.api.put(
                {
                    "apiVersion": "kueue.x-k8s.io/v1beta2",
                    "kind": "Workload",
                    "metadata": {
                        "name": name,
                        "namespace": TENANT,
                        "labels": {"kueue.x-k8s.io/job-uid": meta["uid"]},
                        "ownerReferences": [_owner(job)],
                    },
                    "spec": {
                        "queueName": meta["labels"]["kueue.x-k8s.io/queue-name"],
                        "podSets": [
                            {"name": "main", "count": 1, "template": copy.deepcopy(job["spec"]["template"])}
                        ],
                    },
                }
            )
        status: dict[str, Any] = {"conditions": list(conditions)}
        if admitted:
            status["admission"] = {
                "clusterQueue": "assay-cq",
                "podSetAssignments": [{"name": "main", "count": 1, "flavors": {"cpu": "default-flavor"}}],
            }
        self.api.set_status("workloads", TENANT, name, status)
        return self.api.get("workloads", TENANT, name) or {}

    def pod(self, job: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """The Job controller's pod for ``job``, with the kubelet's ``status``."""
        meta = job["metadata"]
        name = f"{meta['name']}-x7k2p"
        if self.api.get("pods", TENANT, name) is None:
            template = copy.deepcopy(job["spec"]["template"])
            labels = {**template["metadata"]["labels"], "batch.kubernetes.io/job-name": meta["name"]}
            self.api.put(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "namespace": TENANT,
                        "labels": labels,
                        # The Job controller copies the template's annotations too (a group's indices).
                        "annotations": template["metadata"].get("annotations") or {},
                        "ownerReferences": [_owner(job)],
                    },
                    "spec": template["spec"],
                }
            )
        self.api.set_status("pods", TENANT, name, status)
        return self.api.get("pods", TENANT, name) or {}

    def job_status(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        self.api.set_status("jobs", TENANT, job["metadata"]["name"], status)

    def tick(self) -> None:
        """A PingSource tick: the whole sweep, watcher included."""
        self._send(
            CloudEvent({"type": SWEEP_REQUESTED, "source": "/apis/v1/namespaces/assay/pingsources/sweep"}, {})
        )

    def changed(self, obj: dict[str, Any], *, reference: bool = False) -> None:
        """An ApiServerSource event for ``obj`` (Resource mode: the object; Reference mode: its name)."""
        meta = obj["metadata"]
        data = (
            {
                "kind": obj["kind"],
                "namespace": meta["namespace"],
                "name": meta["name"],
                "apiVersion": obj["apiVersion"],
            }
            if reference
            else obj
        )
        self._send(
            CloudEvent(
                {
                    "type": KUBERNETES_RESOURCE_EVENTS[4 if reference else 1],  # ref.update / resource.update
                    "source": "https://kubernetes.default.svc",
                    "subject": f"/apis/{obj['apiVersion']}/namespaces/{meta['namespace']}/{obj['kind'].lower()}s/{meta['name']}",
                },
                data,
            )
        )

    def redeliver_cancel(self, job_id: str) -> None:
        """``evaluation.cancelled`` once more, as the broker redelivers it after a timeout, or late."""
        data = {"evaluation_id": job_id, "tenant": TENANT, "purge": False}
        self._send(CloudEvent({"type": EVALUATION_CANCELLED, "source": "/assay/team-a/submit"}, data))

    def _send(self, event: CloudEvent) -> None:
        headers, body = to_binary(event)
        answer = httpx.post(self.broker_url, headers=headers, content=body, timeout=60)
        assert answer.status_code == 202, answer.text


def _owner(job: dict[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def condition(
    kind: str, status: str = "True", reason: str = "", message: str = "", age: float = 0.0
) -> dict[str, Any]:
    from tests.kubernetes.api_server import ago

    return {
        "type": kind,
        "status": status,
        "reason": reason or kind,
        "message": message or kind,
        "lastTransitionTime": ago(age),
    }


@pytest.fixture()
def k8s_api() -> Iterator[tuple[TestApiServer, str]]:
    api = TestApiServer()
    with LiveServer(api.app) as server:  # type: ignore[arg-type]
        yield api, server.url


@pytest.fixture()
def start_cluster(
    k8s_api: tuple[TestApiServer, str],
    database_url: str,
    token_file: TokenFile,
    tmp_path: Path,
) -> Iterator[Callable[..., Cluster]]:
    """``start_cluster(**env)``: the functions as deployed, over the test API server; ``env`` sets more
    ``ASSAY_*`` variables (the tests' timing knobs). The tenant is not set up: :meth:`Cluster.tenant`."""
    api, api_url = k8s_api
    install_rbac(api)
    started: list[tuple[Cluster, LiveServer, list[Any]]] = []
    stack: list[Any] = []

    def start(**env: str) -> Cluster:
        broker_port = free_port()
        provided = {
            "DATABASE_URL": database_url,
            "K_SINK": f"http://127.0.0.1:{broker_port}/",
            "ASSAY_DATA_DIR": str(tmp_path / "functions"),
            "ASSAY_CONFIG_DIR": str(FIXTURES / "catalogue"),
            "ASSAY_LOG_FORMAT": "json",
            **env,
        }
        # Users authenticate with the tests' token file (as every hub fixture does); on a cluster the default
        # is TokenReview + SubjectAccessReview, which the test API server also serves (test_api_server.py).
        auth = {"auth_mode": "token", "auth_token_file": token_file.path, "allowed_hosts": TEST_HOSTS}

        def settings(service: str) -> Settings:
            extra = dict(provided)
            if service in ("dispatch", "sweep", "submit"):  # submit: pod logs (GET .../logs)
                token = api.service_account_token(FUNCTIONS_NAMESPACE, f"assay-{service}")
                path = kubeconfig(tmp_path / f"kubeconfig-{service}-{broker_port}", api_url, token)
                extra["ASSAY_K8S_KUBECONFIG"] = str(path)
            return deployed_settings(service, extra, **auth)

        # The entry modules build their app from the environment when imported (once per test session).
        importing = {"ASSAY_AUTH_MODE": "token", "ASSAY_AUTH_TOKEN_FILE": str(token_file.path)}
        with _only_environment({**function_environment("submit"), **provided, **importing}):
            from functions.callback.main import build as build_callback
            from functions.submit.main import build as build_submit

            dispatch_app, dispatch_host = _function("dispatch")
            aggregate_app, aggregate_host = _function("aggregate")
            sweep_app, sweep_host = _function("sweep")
        for name, host in (("dispatch", dispatch_host), ("aggregate", aggregate_host), ("sweep", sweep_host)):
            host._settings = settings(name)  # what CloudEventHost reads from the environment on a cluster
        routes: dict[str, list[tuple[str, Any]]] = {
            EVALUATION_ACCEPTED: [("dispatch", dispatch_app)],
            EVALUATION_RETRIED: [("dispatch", dispatch_app)],
            EVALUATION_CANCELLED: [("dispatch", dispatch_app)],
            BENCHMARK_FINISHED: [("aggregate", aggregate_app), ("dispatch", dispatch_app)],
            SWEEP_REQUESTED: [("sweep", sweep_app)],
            **{kind: [("sweep", sweep_app)] for kind in KUBERNETES_RESOURCE_EVENTS},
        }
        broker = Broker(routes)
        broker_server = LiveServer(broker.app, broker_port).__enter__()  # type: ignore[arg-type]
        submit = TestClient(build_submit(settings("submit")), headers=ADMIN).__enter__()
        callback = TestClient(build_callback(settings("callback")), headers=ADMIN).__enter__()
        stack.extend([submit, callback])
        cluster = Cluster(
            api=api, submit=submit, callback=callback, broker_url=f"http://127.0.0.1:{broker_port}/"
        )
        cluster.hosts = [dispatch_host, aggregate_host, sweep_host]
        cluster.broker = broker  # type: ignore[attr-defined]
        started.append((cluster, broker_server, cluster.hosts))
        return cluster

    yield start
    for _cluster, broker_server, hosts in started:
        # The function hosts opened their pools in the broker's event loop: close them there.
        if broker_server.server.servers:
            for host in hosts:
                broker_server.on_loop(host.close())
        broker_server.__exit__(None, None, None)
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture()
def cluster(start_cluster: Callable[..., Cluster]) -> Cluster:
    found = start_cluster()
    found.tenant()
    found.add_provider()
    return found


__all__ = [
    "TEAM",
    "TENANT",
    "Cluster",
    "condition",
    "deployed_settings",
    "function_environment",
    "install_rbac",
    "install_tenant",
    "k8s_provider",
    "kubeconfig",
    "rfc3339",
]


def adapter_pod_status(phase: str, state: dict[str, Any], image: str = "x") -> dict[str, Any]:
    """A pod ``status`` whose adapter container is in ``state`` (``{"terminated": {...}}``, ``{"waiting": ...}``)."""
    container = {"name": "adapter", "image": image, "imageID": "", "ready": False, "restartCount": 0}
    return {"phase": phase, "containerStatuses": [{**container, "state": state}]}
