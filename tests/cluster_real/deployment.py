"""Assay as `knative/` and `kueue/` deploy it, on a real cluster, with Knative played on loopback.

What is real: the Kubernetes API (RBAC, namespaces, admission, object-size limits), the Job controller and
garbage collector, Kueue (Workloads, admission, preemption), and the repository's manifests: the RBAC of
``knative/base/rbac.yaml``, the settings ConfigMap, the queues of ``kueue/base`` and a tenant made with
``kueue/components/tenant`` are applied as they are. The five functions run as their own processes, each with
the command, arguments and environment of its Service in ``knative/base/services.yaml``; dispatch and sweep
reach the API with their own ServiceAccount's token (``kubectl create token``), as a pod's automounted token
would, and the functions whose Service says ``automountServiceAccountToken: false`` get no credential at all.

What is played here (no Knative controller runs): the Broker and its Triggers (routes read from
``knative/base/triggers.yaml``: each event goes to every subscriber of its type, twice, as an at-least-once
broker may), the PingSource (``tick``: a ping posted straight to the sweep, as ``sources.yaml`` says), the
ApiServerSource (``kubectl get --watch`` with the ``assay-apiserversource`` ServiceAccount's token, each
change posted to the Broker in Resource mode), the SinkBinding (``K_SINK`` = the Broker) and the Service's
URL (``ASSAY_PUBLIC_URL`` = the callback process). Without a kubelet or scheduler, a test plays a pod's
outcome by writing its status (``Kube.patch_status``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent, from_http
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import REPO, LiveServer
from tests.support.net import free_port
from tests.support.waiting import wait_for

KNATIVE_KINDS = ("serving.knative.dev", "eventing.knative.dev", "sources.knative.dev")
REDELIVERIES = 2
SYSTEM_NAMESPACE = "assay"  # knative/base/kustomization.yaml


class Kube:
    """``kubectl`` with one kubeconfig: what a person at the cluster types."""

    def __init__(self, kubeconfig: Path, kubectl: str = "kubectl") -> None:
        self.kubeconfig = kubeconfig
        self.kubectl = kubectl

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.kubectl, f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def apply(self, objects: list[dict[str, Any]]) -> str:
        document = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
        done = self.run(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=assay-tests",
            "-f",
            "-",
            stdin=document,
        )
        return done.stderr  # warnings (Pod Security, deprecations) come on stderr

    def list(self, resource: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", resource, "-n", namespace, "-o", "json"]
        if selector:
            args += ["-l", selector]
        items: list[dict[str, Any]] = json.loads(self.run(*args).stdout)["items"]
        return items

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        done = self.run("get", resource, name, "-n", namespace, "-o", "json", "--ignore-not-found")
        return json.loads(done.stdout) if done.stdout.strip() else None

    def patch_status(self, resource: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        patch = json.dumps({"status": status})
        self.run(
            "patch", resource, name, "-n", namespace, "--subresource=status", "--type=merge", "-p", patch
        )

    def served(self, group: str) -> bool:
        done = self.run("api-resources", f"--api-group={group}", "-o", "name", check=False)
        return done.returncode == 0 and bool(done.stdout.strip())

    def token(self, service_account: str, namespace: str) -> str:
        return self.run("create", "token", service_account, "-n", namespace, "--duration=2h").stdout.strip()

    def token_kubeconfig(self, token: str, path: Path) -> Path:
        """A kubeconfig for the same cluster that authenticates with ``token`` only (a pod's credential)."""
        raw = json.loads(self.run("config", "view", "--raw", "--minify", "-o", "json").stdout)
        cluster = dict(raw["clusters"][0]["cluster"])
        authority = cluster.pop("certificate-authority", None)
        if authority is not None:
            cluster["certificate-authority-data"] = base64.b64encode(Path(authority).read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path


def render(kube: Kube, directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize directory`` as objects."""
    text = kube.run("kustomize", str(directory)).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def tenant_objects(kube: Kube, tenant: str, work: Path) -> list[dict[str, Any]]:
    """A tenant made as ``kueue/tenants/example`` says: that directory copied, every ``team-a`` changed."""
    example = REPO / "kueue" / "tenants" / "example"
    overlay = work / f"tenant-{tenant}"
    for source in example.rglob("*.yaml"):
        target = overlay / source.relative_to(example)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text().replace("team-a", tenant))
    # Its relative references (to ../../components/tenant) must still resolve from the copy.
    for kustomization in overlay.rglob("kustomization.yaml"):
        original = example / kustomization.relative_to(overlay)
        document = yaml.safe_load(kustomization.read_text())
        for key in ("resources", "components"):
            document[key] = [
                ref
                if (kustomization.parent / ref).exists()
                else os.path.relpath((original.parent / ref).resolve(), kustomization.parent)
                for ref in document.get(key, [])
            ]
        kustomization.write_text(yaml.safe_dump(document))
    return render(kube, overlay)


# -- the Broker and its Triggers ------------------------------------------------------------------------------


class Broker:
    """Knative's Broker + the Triggers of ``knative/base/triggers.yaml``, over HTTP to the function processes."""

    def __init__(self, triggers: list[dict[str, Any]]) -> None:
        self.routes: dict[str, list[tuple[str, str]]] = {}
        for trigger in triggers:
            spec = trigger["spec"]
            kind = spec["filter"]["attributes"]["type"]
            service = spec["subscriber"]["ref"]["name"]
            self.routes.setdefault(kind, []).append((service, spec["subscriber"].get("uri", "/")))
        self.urls: dict[str, str] = {}
        self.received: list[CloudEvent] = []
        self.answers: list[tuple[str, str, int]] = []
        self.app = Starlette(routes=[Route("/", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        event = from_http(dict(request.headers), await request.body())
        self.received.append(event)
        headers, body = to_binary(event)
        async with httpx.AsyncClient(timeout=300) as client:
            for _ in range(REDELIVERIES):
                for service, path in self.routes.get(event["type"], []):
                    status = await self._deliver(client, self.urls[service] + path, headers, body)
                    self.answers.append((service, event["type"], status))
        return Response(status_code=202)

    @staticmethod
    async def _deliver(client: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes) -> int:
        """Knative's delivery: retry a 5xx or a refused connection with exponential backoff (broker.yaml)."""
        status = 0
        for attempt in range(5):
            try:
                status = (await client.post(url, headers=headers, content=body)).status_code
            except httpx.TransportError:
                status = 0
            if status and status < 500:
                return status
            await asyncio.sleep(0.2 * 2**attempt)
        return status


# -- the ApiServerSource ----------------------------------------------------------------------------------------


class Watcher(threading.Thread):
    """The ApiServerSource of ``knative/base/sources.yaml`` in Resource mode, for one tenant namespace: a watch
    with the source's own ServiceAccount, each change posted to the Broker as Knative's adapter posts it."""

    TYPES = {
        "ADDED": "dev.knative.apiserver.resource.add",
        "MODIFIED": "dev.knative.apiserver.resource.update",
        "DELETED": "dev.knative.apiserver.resource.delete",
    }

    def __init__(self, kube: Kube, resource: str, namespace: str, selector: str, broker_url: str) -> None:
        super().__init__(daemon=True, name=f"watch-{resource}")
        args = ["get", resource, "-n", namespace, "--watch", "--output-watch-events", "-o", "json"]
        if selector:
            args += ["-l", selector]
        self.process = subprocess.Popen(
            [kube.kubectl, f"--kubeconfig={kube.kubeconfig}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.broker_url = broker_url
        self.sent = 0
        self.failures: list[str] = []

    def run(self) -> None:
        assert self.process.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        with httpx.Client(timeout=300) as client:
            for line in self.process.stdout:
                buffer += line
                while buffer.strip():
                    try:
                        change, end = decoder.raw_decode(buffer.lstrip())
                    except json.JSONDecodeError:
                        break  # an object spans lines: read on
                    buffer = buffer.lstrip()[end:]
                    self._post(client, change)

    def _post(self, client: httpx.Client, change: dict[str, Any]) -> None:
        kind = self.TYPES.get(change.get("type", ""))
        obj = change.get("object", {})
        if kind is None:
            return
        meta = obj["metadata"]
        plural = obj["kind"].lower() + "s"
        prefix = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
        scope = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
        event = CloudEvent(
            {
                "type": kind,
                "source": "https://kubernetes.default.svc",
                "subject": f"{prefix}{scope}/{plural}/{meta['name']}",
            },
            obj,
        )
        headers, body = to_binary(event)
        try:
            answer = client.post(self.broker_url, headers=headers, content=body)
            if answer.status_code != 202:
                self.failures.append(f"{answer.status_code}: {answer.text[:200]}")
        except httpx.TransportError as error:
            self.failures.append(str(error))
        self.sent += 1

    def stop(self) -> str:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        return self.process.stderr.read() if self.process.stderr else ""


# -- the functions ---------------------------------------------------------------------------------------------


@dataclass
class Function:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    service_account: str
    has_token: bool


def _venv_program(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _service_command(container: dict[str, Any], port: int) -> list[str]:
    command = [_venv_program(container["command"][0]), *container["command"][1:]]
    args = list(container.get("args", []))
    for flag, value in (("--port", str(port)), ("--host", "127.0.0.1")):
        if flag in args:
            args[args.index(flag) + 1] = value
    return command + args


def _service_env(
    container: dict[str, Any], config_maps: dict[str, dict[str, str]], secrets_: dict[str, dict[str, str]]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            # The operator's Secrets (docs/deployment.md): the database URL, else a fresh random key.
            values = secrets_.setdefault(ref["name"], {})
            env[item["name"]] = values.setdefault(ref["key"], secrets.token_urlsafe(32))
    return env


@dataclass
class Deployment:
    kube: Kube
    work: Path
    database_url: str
    user_token: str
    settings: dict[str, str]
    functions: dict[str, Function] = field(default_factory=dict)
    broker: Broker | None = None
    broker_server: LiveServer | None = None
    watchers: list[Watcher] = field(default_factory=list)
    applied_warnings: list[str] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)
    cluster_scoped: list[tuple[str, str]] = field(default_factory=list)
    manifests: list[dict[str, Any]] = field(default_factory=list)

    # -- set up -----------------------------------------------------------------------------------------

    def install(self) -> None:
        """Apply ``knative/`` (the Kubernetes kinds; Knative's only where its CRDs are served) and ``kueue/``."""
        self.manifests = render(self.kube, REPO / "knative")
        served = {group: self.kube.served(group) for group in KNATIVE_KINDS}
        applied = [
            obj
            for obj in self.manifests
            if obj["apiVersion"].split("/")[0] not in KNATIVE_KINDS or served[obj["apiVersion"].split("/")[0]]
        ]
        # Secrets are the operator's (docs/deployment.md): the database URL the Services reference.
        self.applied_warnings.append(self.kube.apply(applied))
        self.applied_warnings.append(self.kube.apply(render(self.kube, REPO / "kueue")))

    def add_tenant(self, tenant: str) -> None:
        objects = tenant_objects(self.kube, tenant, self.work)
        self.applied_warnings.append(self.kube.apply(objects))
        self.tenants.append(tenant)
        # Cluster-scoped (the tenant's ClusterQueue): not removed with the namespace.
        self.cluster_scoped += [
            (o["kind"].lower() + "s." + o["apiVersion"].split("/")[0], o["metadata"]["name"])
            for o in objects
            if "/" in o["apiVersion"]
            and o["kind"] not in ("Namespace",)
            and not o["metadata"].get("namespace")
        ]

    def start(self, watch_tenant: str) -> None:
        triggers = [o for o in self.manifests if o["kind"] == "Trigger"]
        broker = Broker(triggers)
        port = free_port()
        self.broker = broker
        self.broker_server = LiveServer(broker.app, port).__enter__()  # type: ignore[arg-type]
        broker_url = f"http://127.0.0.1:{port}/"
        config_maps = {
            o["metadata"]["name"]: dict(o.get("data", {})) for o in self.manifests if o["kind"] == "ConfigMap"
        }
        secrets_ = {"assay-database": {"url": self.database_url}}
        services = [o for o in self.manifests if o["kind"] == "Service" and "knative" in o["apiVersion"]]
        ports = {s["metadata"]["name"]: free_port() for s in services}
        for service in services:
            name = service["metadata"]["name"]
            pod = service["spec"]["template"]["spec"]
            container = pod["containers"][0]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSAY_", "K_", "DATABASE_URL"))}
            env.update(_service_env(container, config_maps, secrets_))
            env.update(self.settings)
            env["K_SINK"] = broker_url  # the SinkBinding
            env["ASSAY_PUBLIC_URL"] = f"http://127.0.0.1:{ports['callback']}"  # callback.assay.svc
            env["ASSAY_DATA_DIR"] = str(self.work / name / "tmp")  # the /tmp emptyDir
            has_token = pod.get("automountServiceAccountToken", True) is not False
            if has_token:  # what the pod's automounted ServiceAccount token gives it
                token = self.kube.token(pod["serviceAccountName"], SYSTEM_NAMESPACE)
                env["ASSAY_K8S_KUBECONFIG"] = str(
                    self.kube.token_kubeconfig(token, self.work / f"{name}.kubeconfig")
                )
            log = self.work / f"{name}.log"
            process = subprocess.Popen(
                _service_command(container, ports[name]),
                cwd=REPO,
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            url = f"http://127.0.0.1:{ports[name]}"
            self.functions[name] = Function(name, url, process, log, pod["serviceAccountName"], has_token)
            broker.urls[name] = url
        for function in self.functions.values():
            wait_for(functools.partial(self._listening, function), timeout=120, interval=0.2)
        # The ApiServerSource, with its own ServiceAccount's token.
        # (Sources that post straight to a Service, like the tenants function's, are not played: the tier
        # makes its tenant with kueue/components/tenant.)
        source = next(
            o
            for o in self.manifests
            if o["kind"] == "ApiServerSource" and o["spec"]["sink"]["ref"]["kind"] == "Broker"
        )
        token = self.kube.token(source["spec"]["serviceAccountName"], SYSTEM_NAMESPACE)
        source_kube = Kube(self.kube.token_kubeconfig(token, self.work / "apiserversource.kubeconfig"))
        for resource in source["spec"]["resources"]:
            selector = ",".join(
                f"{k}={v}" for k, v in resource.get("selector", {}).get("matchLabels", {}).items()
            )
            group = resource["apiVersion"].split("/")[0] if "/" in resource["apiVersion"] else ""
            plural = resource["kind"].lower() + "s" + (f".{group}" if group else "")
            watcher = Watcher(source_kube, plural, watch_tenant, selector, broker_url)
            watcher.start()
            self.watchers.append(watcher)

    @staticmethod
    def _listening(function: Function) -> bool:
        if function.process.poll() is not None:
            raise AssertionError(f"{function.name} exited: {function.log.read_text()[-3000:]}")
        try:
            httpx.get(function.url + "/", timeout=2)
        except httpx.TransportError:
            return False
        return True

    def stop(self) -> None:
        for watcher in self.watchers:
            watcher.stop()
        for function in self.functions.values():
            function.process.terminate()
        for function in self.functions.values():
            try:
                function.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                function.process.kill()
        if self.broker_server is not None:
            self.broker_server.__exit__(None, None, None)
        for tenant in self.tenants:
            self.kube.run("delete", "namespace", tenant, "--wait=false", "--ignore-not-found", check=False)
        for resource, name in self.cluster_scoped:
            self.kube.run("delete", resource, name, "--wait=false", "--ignore-not-found", check=False)

    # -- use --------------------------------------------------------------------------------------------

    def user(self, tenant: str) -> httpx.Client:
        """A user of ``tenant`` at the submit Service (the only one reachable from outside)."""
        headers = {"X-Tenant": tenant, "Authorization": f"Bearer {self.user_token}"}
        return httpx.Client(base_url=self.functions["submit"].url, headers=headers, timeout=60)

    def sidecar(self, tenant: str) -> httpx.Client:
        """What the sidecar in a pod posts status events with, at the callback Service."""
        headers = {"X-Tenant": tenant, "Authorization": f"Bearer {self.user_token}"}
        return httpx.Client(base_url=self.functions["callback"].url, headers=headers, timeout=60)

    def tick(self) -> None:
        """The PingSource: a ping straight to the sweep Service."""
        event = CloudEvent(
            {
                "type": "dev.knative.sources.ping",
                "source": "/apis/v1/namespaces/assay/pingsources/assay-sweep",
            },
            {"reason": "schedule"},
        )
        headers, body = to_binary(event)
        answer = httpx.post(self.functions["sweep"].url + "/", headers=headers, content=body, timeout=300)
        assert answer.status_code == 200, answer.text

    def logs(self, name: str) -> str:
        return self.functions[name].log.read_text(errors="replace")


def user_token_file(work: Path) -> tuple[str, Path]:
    """A bearer token for the tests' user, admin of every tenant (``ASSAY_AUTH_MODE=token``)."""
    token = "assay-real-tier-" + secrets.token_hex(16)
    digest = hashlib.sha256(token.encode()).hexdigest()
    path = work / "tokens.yaml"
    path.write_text(
        yaml.safe_dump({"tokens": [{"subject": "real-tier", "sha256": digest, "tenants": {"*": "admin"}}]})
    )
    return token, path


@contextlib.contextmanager
def deployed(
    kube: Kube, work: Path, database_url: str, tenant: str, settings: dict[str, str]
) -> Iterator[Deployment]:
    token, tokens = user_token_file(work)
    auth = {"ASSAY_AUTH_MODE": "token", "ASSAY_AUTH_TOKEN_FILE": str(tokens)}
    deployment = Deployment(kube, work, database_url, token, {**auth, **settings})
    deployment.install()
    deployment.add_tenant(tenant)
    try:
        deployment.start(watch_tenant=tenant)
        yield deployment
    finally:
        deployment.stop()
