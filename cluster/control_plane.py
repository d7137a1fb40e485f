"""A bare Kubernetes control plane with Kueue, on loopback, from binaries you built: for tests/cluster_real.

    KUBE_APISERVER=... KUBE_CONTROLLER_MANAGER=... ETCD=... KUEUE=... KUEUE_SRC=... \\
        python cluster/control_plane.py up STATE_DIR        # prints the admin kubeconfig's path
    python cluster/control_plane.py down STATE_DIR

What runs (each a host process, logs and pid files in STATE_DIR): etcd (the etcd binary, or any program taking
its ``--data-dir``/``--listen-client-urls`` flags); kube-apiserver with RBAC, client certificates and
ServiceAccount token signing (so ``kubectl create token`` works); kube-controller-manager without the
node-lifecycle and node-ipam controllers (the Job controller, garbage collector and TTL controller run for
real); Kueue with only the ``batch/job`` integration, its webhooks served on 127.0.0.1:9443 with this
script's own CA, the webhook configurations and CRD conversion webhooks rewritten to that URL. There is no
kubelet and no scheduler: a Node is created and patched Ready with allocatable CPU and memory, and pods stay
unscheduled until a test writes their status (``kubectl patch pod --subresource=status``).

Inputs (environment): ``KUBE_APISERVER``, ``KUBE_CONTROLLER_MANAGER``, ``ETCD``, ``KUEUE`` (paths to binaries;
without ``KUEUE`` only Kueue's CRDs are installed, enough to check a deployment but nothing is admitted);
Kueue's CRDs and webhook configurations from ``KUEUE_SRC`` (a Kueue source tree: ``config/components``) or
``KUEUE_MANIFESTS`` (a release's ``manifests.yaml``); ``KUBECTL`` (default ``kubectl``), ``OPENSSL``
(default ``openssl``). Ports: ``ASSAY_CP_PORT_BASE`` (default 16440: apiserver +0, etcd +1/+2, Kueue
webhooks 9443 as its configuration says). Only loopback addresses are used. Nothing here is downloaded.

Build notes: give kube-apiserver a version (``-ldflags "-X k8s.io/component-base/version.gitVersion=v1.36.2"``
and gitMajor/gitMinor): Kueue exits when the server's version does not parse. An unpatched Kueue reads its metrics certificate from ``/etc/kueue/metrics/certs``; this script
writes one to ``STATE_DIR/kueue/metrics`` and sets ``KUEUE_METRICS_CERT_DIR`` (honoured by a build that reads
it), so for an unpatched build link that directory there. ``VisibilityOnDemand`` is turned off (it wants its own
serving certificate).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ENV = os.environ  # noqa: TID251 - a standalone script: its inputs are environment variables
NODE = "assay-node"
WEBHOOK_PORT = 9443


def _need(name: str) -> str:
    value = ENV.get(name)
    if not value:
        sys.exit(f"control_plane.py: set {name} (see the docstring)")
    if name != "KUEUE_SRC" and not Path(value).is_file():
        sys.exit(f"control_plane.py: {name}={value} is not a file")
    return value


def _run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _wait(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# -- certificates -----------------------------------------------------------------------------------------


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.openssl = ENV.get("OPENSSL", "openssl")
        root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / name

    def ca(self) -> None:
        if self.path("ca.crt").exists():
            return
        _run(self.openssl, "genrsa", "-out", str(self.path("ca.key")), "2048")
        _run(
            self.openssl, "req", "-x509", "-new", "-nodes", "-key", str(self.path("ca.key")),
            "-subj", "/CN=assay-test-ca", "-days", "3650", "-out", str(self.path("ca.crt")),
        )  # fmt: skip

    def issue(
        self, name: str, subject: str, *, server_names: tuple[str, ...] = (), client: bool = False
    ) -> None:
        if self.path(f"{name}.crt").exists():
            return
        key, csr, ext = self.path(f"{name}.key"), self.path(f"{name}.csr"), self.path(f"{name}.ext")
        _run(self.openssl, "genrsa", "-out", str(key), "2048")
        _run(self.openssl, "req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        lines = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature,keyEncipherment"]
        lines.append("extendedKeyUsage=" + ("clientAuth" if client else "serverAuth,clientAuth"))
        if server_names:
            alt = [f"IP:{n}" if n[0].isdigit() else f"DNS:{n}" for n in server_names]
            lines.append("subjectAltName=" + ",".join(alt))
        ext.write_text("\n".join(lines) + "\n")
        _run(
            self.openssl, "x509", "-req", "-in", str(csr), "-CA", str(self.path("ca.crt")),
            "-CAkey", str(self.path("ca.key")), "-CAcreateserial", "-days", "3650",
            "-extfile", str(ext), "-out", str(self.path(f"{name}.crt")),
        )  # fmt: skip

    def service_account_key(self) -> None:
        if not self.path("sa.key").exists():
            _run(self.openssl, "genrsa", "-out", str(self.path("sa.key")), "2048")
            _run(
                self.openssl,
                "rsa",
                "-in",
                str(self.path("sa.key")),
                "-pubout",
                "-out",
                str(self.path("sa.pub")),
            )

    def b64(self, name: str) -> str:
        return base64.b64encode(self.path(name).read_bytes()).decode()


# -- processes --------------------------------------------------------------------------------------------


def _start(state: Path, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
    pid_file = state / f"{name}.pid"
    if pid_file.exists() and _alive(int(pid_file.read_text())):
        return
    log = (state / f"{name}.log").open("ab")
    process = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
    )
    pid_file.write_text(str(process.pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def down(state: Path) -> None:
    for name in ("kueue", "kube-controller-manager", "kube-apiserver", "etcd"):
        pid_file = state / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            end = time.monotonic() + 20
            while _alive(pid) and time.monotonic() < end:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        pid_file.unlink()


# -- up ---------------------------------------------------------------------------------------------------


def _kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "assay-test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "assay-test", "context": {"cluster": "assay-test", "user": user}}],
        "current-context": "assay-test",
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML


def _kueue_objects(kubectl: str) -> list[dict[str, Any]]:
    """Kueue's CRDs and webhook configurations, as JSON objects."""
    if ENV.get("KUEUE_MANIFESTS"):
        text = Path(ENV["KUEUE_MANIFESTS"]).read_text()
    else:
        src = Path(_need("KUEUE_SRC")) / "config" / "components"
        text = (
            _run(kubectl, "kustomize", str(src / "crd"))
            + "\n---\n"
            + (src / "webhook" / "manifests.yaml").read_text()
        )
    items: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(text) if doc]
    wanted = ("CustomResourceDefinition", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
    return [item for item in items if item["kind"] in wanted]


def _webhooked(objects: list[dict[str, Any]], ca_bundle: str) -> list[dict[str, Any]]:
    """Point every webhook at the host process: Kueue's own kinds and batch/v1 Jobs only (other frameworks
    are not enabled, so their webhooks would refuse every object they match)."""
    base = f"https://127.0.0.1:{WEBHOOK_PORT}"
    out: list[dict[str, Any]] = []
    for obj in objects:
        obj.get("metadata", {}).pop("annotations", None)  # cert-manager injection and the like
        if obj["kind"] == "CustomResourceDefinition":
            conversion = obj["spec"].get("conversion") or {}
            if conversion.get("strategy") == "Webhook":
                conversion["webhook"]["clientConfig"] = {"url": f"{base}/convert", "caBundle": ca_bundle}
            out.append(obj)
            continue
        hooks = []
        for hook in obj.get("webhooks", []):
            path = hook["clientConfig"].get("service", {}).get("path", "")
            if "kueue-x-k8s-io" in path or "batch-v1-job" in path:
                hook["clientConfig"] = {"url": base + path, "caBundle": ca_bundle}
                hooks.append(hook)
        obj["metadata"]["name"] = "kueue-" + obj["metadata"]["name"]
        obj["webhooks"] = hooks
        out.append(obj)
    return out


def up(state: Path) -> Path:
    apiserver, kcm, etcd = (_need(n) for n in ("KUBE_APISERVER", "KUBE_CONTROLLER_MANAGER", "ETCD"))
    kueue = _need("KUEUE") if ENV.get("KUEUE") else None  # without: Kueue's CRDs only, nothing admits
    kubectl = ENV.get("KUBECTL", "kubectl")
    base = int(ENV.get("ASSAY_CP_PORT_BASE", "16440"))
    api_port, etcd_port, peer_port = base, base + 1, base + 2
    state = state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    pki = Pki(state / "pki")
    pki.ca()
    pki.issue("apiserver", "/CN=kube-apiserver", server_names=("127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"))  # fmt: skip
    pki.issue("admin", "/O=system:masters/CN=assay-test-admin", client=True)
    pki.issue("kueue-webhook", "/CN=kueue-webhook", server_names=("127.0.0.1", "localhost"))
    pki.service_account_key()
    admin = state / "admin.kubeconfig"
    server = f"https://127.0.0.1:{api_port}"
    _kubeconfig(admin, server, pki.path("ca.crt"), pki.path("admin.crt"), pki.path("admin.key"), "admin")

    started = time.monotonic()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    _start(state, "etcd", [
        etcd, f"--data-dir={state / 'etcd'}", f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}", f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
    ])  # fmt: skip
    _wait("etcd", lambda: _port_open(etcd_port))
    _start(state, "kube-apiserver", [
        apiserver, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
        f"--etcd-servers={etcd_url}", "--service-cluster-ip-range=10.96.0.0/16",
        f"--client-ca-file={pki.path('ca.crt')}", f"--tls-cert-file={pki.path('apiserver.crt')}",
        f"--tls-private-key-file={pki.path('apiserver.key')}", "--authorization-mode=RBAC",
        f"--service-account-issuer={server}", f"--service-account-key-file={pki.path('sa.pub')}",
        f"--service-account-signing-key-file={pki.path('sa.key')}", "--api-audiences=" + server,
        "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,DefaultStorageClass,ResourceQuota,"
        "MutatingAdmissionWebhook,ValidatingAdmissionWebhook,PodSecurity",
        "--endpoint-reconciler-type=none", "--profiling=false",
    ])  # fmt: skip
    kc = [kubectl, f"--kubeconfig={admin}"]
    _wait("kube-apiserver", lambda: _run(*kc, "get", "--raw=/readyz").strip() == "ok")
    _start(state, "kube-controller-manager", [
        kcm, f"--kubeconfig={admin}", f"--authentication-kubeconfig={admin}",
        f"--authorization-kubeconfig={admin}", "--bind-address=127.0.0.1", "--secure-port=0",
        "--leader-elect=false", "--controllers=*,-node-lifecycle-controller,-node-ipam-controller,"
        "-service-lb-controller,-node-route-controller,-cloud-node-lifecycle-controller,-persistentvolume-binder-controller",
        f"--root-ca-file={pki.path('ca.crt')}", f"--service-account-private-key-file={pki.path('sa.key')}",
        "--use-service-account-credentials=false",
    ])  # fmt: skip

    # The node pods would run on: Ready, with room for what Kueue admits (no kubelet keeps it so).
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE, "labels": {"kubernetes.io/os": "linux", "kubernetes.io/hostname": NODE}},
    }
    _run(*kc, "apply", "-f", "-", stdin=json.dumps(node))
    capacity = {"cpu": "64", "memory": "256Gi", "pods": "110"}
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "played by control_plane.py",
    }
    status = {"status": {"capacity": capacity, "allocatable": capacity, "conditions": [ready]}}
    _run(*kc, "patch", "node", NODE, "--subresource=status", "--type=merge", "-p", json.dumps(status))

    # Kueue: CRDs (conversion webhook on the host process), then the manager, then its webhooks.
    ca_bundle = pki.b64("ca.crt")
    objects = _webhooked(_kueue_objects(kubectl), ca_bundle)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    hooks = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    if kueue is None:
        for crd in crds:
            crd["spec"].pop("conversion", None)
    _run(*kc, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": crds}))  # fmt: skip
    for crd in crds:
        _run(*kc, "wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd['metadata']['name']}")
    if kueue is None:
        print("KUEUE is not set: Kueue's CRDs only, no Kueue runs (nothing is admitted)", file=sys.stderr)
        return admin
    _run(*kc, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kueue-system"}}))  # fmt: skip
    kueue_dir = state / "kueue"
    (kueue_dir / "certs").mkdir(parents=True, exist_ok=True)
    (kueue_dir / "metrics").mkdir(parents=True, exist_ok=True)
    for target in ("certs", "metrics"):
        (kueue_dir / target / "tls.crt").write_bytes(pki.path("kueue-webhook.crt").read_bytes())
        (kueue_dir / target / "tls.key").write_bytes(pki.path("kueue-webhook.key").read_bytes())
    config = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": "kueue-system",
        "health": {"healthProbeBindAddress": "127.0.0.1:" + str(base + 3)},
        "metrics": {"bindAddress": "127.0.0.1:" + str(base + 4)},
        "webhook": {"port": WEBHOOK_PORT, "host": "127.0.0.1", "certDir": str(kueue_dir / "certs")},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "integrations": {"frameworks": ["batch/job"]},
    }
    (kueue_dir / "config.yaml").write_text(json.dumps(config, indent=2))
    kueue_env = {**ENV, "KUBECONFIG": str(admin), "KUEUE_METRICS_CERT_DIR": str(kueue_dir / "metrics")}
    _start(state, "kueue", [
        kueue, f"--config={kueue_dir / 'config.yaml'}", "--feature-gates=VisibilityOnDemand=false",
        "--zap-log-level=info",
    ], env=kueue_env)  # fmt: skip
    _wait("Kueue's webhook server", lambda: _port_open(WEBHOOK_PORT))
    _run(*kc, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": hooks}))  # fmt: skip
    # Ready when a Kueue object passes its webhooks (the conversion webhook included: v1beta1 is served).
    probe = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ResourceFlavor",
        "metadata": {"name": "control-plane-probe"},
    }
    _wait("Kueue's webhooks", lambda: bool(_run(*kc, "apply", "-f", "-", stdin=json.dumps(probe))))
    _run(*kc, "delete", "resourceflavor", "control-plane-probe", "--wait=false")
    print(f"control plane ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return admin


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("up", "down"):
        print(__doc__, file=sys.stderr)
        return 2
    state = Path(argv[2])
    if argv[1] == "down":
        down(state)
        return 0
    try:
        print(up(state))
    except RuntimeError as failure:
        print(f"control_plane.py: {failure} (logs in {state})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
