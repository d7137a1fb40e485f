"""Cold start of every Knative function: spawn -> first answered request or event, and peak memory.

Each function is started as its Knative Service starts it (``uvicorn functions.<name>.main:app --host ...
--port ... --no-access-log``, knative/base/services.yaml and tenants.yaml) on a free loopback port, ``--runs``
times, against a real PostgreSQL (the embedded one, schema migrated and catalogue synced once beforehand). The
bench times from the spawn to the first answer of:

- submit: ``GET /api/v1/evaluations/providers`` with a token (the first request a user makes);
- callback: ``GET /readyz`` (its readiness probe, which reads the database);
- dispatch: a binary ``evaluation.accepted`` CloudEvent about a job that does not exist (the hub opens, the job
  is looked up under its lock, nothing is launched: 200);
- aggregate: a binary ``benchmark.finished`` about a job that does not exist (200);
- sweep: a binary ``dev.knative.apiserver.resource.update`` about a Job that is not Assay's (the hub and the
  runtime open, the object is recognised as not Assay's: 200). A PingSource tick with ``--runtime kubernetes``
  would list Jobs from an API server, which the bench does not have;
- tenants: a ``dev.knative.apiserver.resource.update`` about a Namespace without a name (onboarding's client is
  built, nothing to reconcile: 200).

Functions run in ``--venv image`` (the default): the functions image's environment (functions/Containerfile:
the package with the ``cluster`` and ``tracking`` extras and nothing else), built once per ``pyproject.toml``
under ``~/.cache/assay/`` with uv (or venv and pip); this checkout's code is imported through ``PYTHONPATH``.
``--venv dev`` runs them in the interpreter running the bench, whose test and lint tools (schemathesis,
import-linter, ...) make some shared imports heavier (httpx pulls in rich there): about 0.1 s slower.

With ``--runtime kubernetes`` (the default, as knative/base/kustomization.yaml sets ``ASSAY_RUNTIME``) dispatch,
sweep and tenants build their Kubernetes client on that first event from a kubeconfig naming a closed loopback
port; none of the events above makes an API call. ``--runtime local`` gives dispatch the local runtime. The
broker (``K_SINK``) is a closed loopback port too: nothing these events do publishes. No event sender check
(``ASSAY_EVENT_SENDERS`` unset, as in knative/base). ``--server functions-framework`` serves the event functions
with ``functions-framework --asgi --source functions/<name>/main.py --target <name>`` instead (how they were
served before they had their own app), for comparison.

Prints per function the median and worst spawn -> first answer, the median time the first request itself took
(from the first accepted connection: the hub opening on the first event), and the median peak RSS (VmHWM) after
it, beside a bare ``python -c pass``. Asserts nothing; the figures are in docs/performance.md.

    .venv/bin/python bench/function_cold_start.py [--runs 5] [--only dispatch,submit] [--runtime local] [--venv dev]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assay.store import Database, EmbeddedPostgres, default_config_dir, migrate, sync_system_catalogue  # noqa: E402
from bench.checkout import compile_checkout  # noqa: E402
from tests.support.net import free_port  # noqa: E402

FUNCTIONS = ("submit", "callback", "dispatch", "aggregate", "sweep", "tenants")
EVENT_FUNCTIONS = ("dispatch", "aggregate", "sweep", "tenants")
TOKEN = "assay-bench-token"
BIN = Path(sys.executable).parent


def _event(kind: str, data: dict[str, object], subject: str | None = None) -> tuple[dict[str, str], bytes]:
    """A binary-mode CloudEvent, as the Knative Broker delivers it."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": "/bench/function-cold-start",
        "ce-type": kind,
        "content-type": "application/json",
    }
    if subject is not None:
        headers["ce-subject"] = subject
    return headers, json.dumps(data).encode()


def first_request(function: str) -> Callable[[httpx.Client], httpx.Response]:
    """The request whose answer ends the cold start of ``function``."""
    if function == "submit":
        auth = {"Authorization": f"Bearer {TOKEN}", "X-Tenant": "bench"}
        return lambda client: client.get("/api/v1/evaluations/providers", headers=auth)
    if function == "callback":
        return lambda client: client.get("/readyz")
    if function == "dispatch":
        headers, body = _event("dev.assay.evaluation.accepted.v1", {"evaluation_id": str(uuid.uuid4())})
    elif function == "aggregate":
        headers, body = _event("dev.assay.benchmark.finished.v1", {"evaluation_id": str(uuid.uuid4())})
    elif function == "sweep":
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "not-assays", "namespace": "x"}}
        headers, body = _event("dev.knative.apiserver.resource.update", job)
    else:
        headers, body = _event("dev.knative.apiserver.resource.update", {"kind": "Namespace", "metadata": {}})
    return lambda client: client.post("/", headers=headers, content=body)


@dataclass
class Start:
    seconds: float  # spawn -> first answer
    first_request: float  # the answered request's own time (from the first accepted connection)
    peak_rss_mib: float


def image_venv() -> Path:
    """The bin directory of an environment like the functions image's, built on first use per pyproject.toml."""
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = cache / "assay" / f"bench-functions-venv-{digest}"
    if (venv / "bin" / "uvicorn").exists():
        return venv / "bin"
    print(f"building the functions image's environment in {venv} ...", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    package = f"{REPO}[cluster,tracking]"
    uv = shutil.which("uv") or (str(BIN / "uv") if (BIN / "uv").exists() else None)
    if uv is not None:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(venv / "bin" / "python"),
                        package], check=True)  # fmt: skip
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", package], check=True)
    return venv / "bin"


def command(bin_dir: Path, function: str, port: int, server: str) -> list[str]:
    if server == "functions-framework" and function in EVENT_FUNCTIONS:
        source = f"functions/{function}/main.py"
        return [str(bin_dir / "functions-framework"), "--asgi", "--source", source, "--target", function,
                "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return [str(bin_dir / "uvicorn"), f"functions.{function}.main:app", "--host", "127.0.0.1", "--port",
            str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip


def peak_rss_mib(pid: int) -> float:
    """The largest peak resident set (VmHWM) of ``pid`` and its children (functions-framework serves from a
    worker process; uvicorn, as the Services run it, from its own)."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    peaks = []
    for process in processes:
        with open(f"/proc/{process.pid}/status") as status:
            peaks += [int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")]
    return max(peaks)


def one_start(bin_dir: Path, function: str, env: dict[str, str], server: str, log: Path) -> Start:
    port = free_port()
    request = first_request(function)
    with log.open("w") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command(bin_dir, function, port, server), cwd=REPO, env=env, stdout=stderr, stderr=stderr
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while True:
                sent = time.perf_counter()
                try:
                    answer = request(client)
                    break
                except httpx.ConnectError:
                    pass
                if proc.poll() is not None or sent - started > 60:
                    raise RuntimeError(f"{function} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.005)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise RuntimeError(f"{function} answered {answer.status_code}: {answer.text[:500]}")
        return Start(elapsed, elapsed - (sent - started), peak_rss_mib(proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def prepare(url: str) -> None:
    await migrate(url)
    database = await Database.open(url)
    await sync_system_catalogue(database.system_catalogue, default_config_dir())
    await database.close()


def kubeconfig(path: Path) -> Path:
    """A kubeconfig whose API server is a closed loopback port (no event here calls it)."""
    cluster = {"name": "none", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "sa", "user": {"token": "unused"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "sa"}}],
        "current-context": "none",
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def bare_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default=",".join(FUNCTIONS), help="comma-separated function names")
    parser.add_argument("--runtime", choices=("kubernetes", "local"), default="kubernetes")
    parser.add_argument("--server", choices=("uvicorn", "functions-framework"), default="uvicorn")
    parser.add_argument("--venv", choices=("image", "dev"), default="image", help="where the functions run")
    options = parser.parse_args()
    compile_checkout()
    names = [n for n in options.only.split(",") if n]
    if set(names) - set(FUNCTIONS):
        parser.error(
            f"unknown functions: {sorted(set(names) - set(FUNCTIONS))}; known: {', '.join(FUNCTIONS)}"
        )
    bin_dir = image_venv() if options.venv == "image" else BIN
    load = os.getloadavg()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; --runtime {options.runtime}, --server {options.server}, --venv {options.venv} "
        f"({bin_dir.parent}), --runs {options.runs}"
    )
    results: dict[str, list[Start]] = {}
    with tempfile.TemporaryDirectory(prefix="assay-function-cold-start-") as tmp_name:
        tmp = Path(tmp_name)
        postgres = EmbeddedPostgres(tmp / "pg")
        url = postgres.start()
        try:
            asyncio.run(prepare(url))
            tokens = tmp / "tokens.yaml"  # submit's first request is authenticated, as a user's is
            digest = hashlib.sha256(TOKEN.encode()).hexdigest()
            tokens.write_text(f"tokens: [{{subject: bench, sha256: {digest}, tenants: {{'*': admin}}}}]\n")
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("ASSAY_", "OTEL_"))},
                # What knative/base's assay-settings ConfigMap and the Services give every function.
                "ASSAY_MODE": "cluster",
                "ASSAY_LOG_FORMAT": "json",
                "ASSAY_LOG_LEVEL": "WARNING",
                "ASSAY_DATA_DIR": str(tmp / "data"),
                "ASSAY_CONFIG_RELOAD": "false",
                "ASSAY_DB_POOL_MIN": "1",
                "ASSAY_DB_POOL_MAX": "4",
                "ASSAY_PUBLIC_URL": "http://127.0.0.1:9",
                "ASSAY_RUNTIME": options.runtime,
                "ASSAY_LAUNCH_SIGNING_KEY": secrets.token_urlsafe(32),
                "DATABASE_URL": url,
                "K_SINK": f"http://127.0.0.1:{free_port()}/",
                # Cluster mode's default authenticator (kubernetes) needs an API server: a token file instead.
                "ASSAY_AUTH_MODE": "token",
                "ASSAY_AUTH_TOKEN_FILE": str(tokens),
                "ASSAY_K8S_KUBECONFIG": str(kubeconfig(tmp / "kubeconfig")),
                # This checkout's code, also for functions-framework (a console script: its sys.path[0] is the
                # venv's bin), so a copy of another commit can be measured with the same venv.
                "PYTHONPATH": str(REPO),
            }
            baseline = statistics.median(bare_python() for _ in range(options.runs))
            for name in names:
                log = tmp / f"{name}.log"
                results[name] = [
                    one_start(bin_dir, name, env, options.server, log) for _ in range(options.runs)
                ]
        finally:
            postgres.stop()

    print(f"bare python -c pass: {baseline:.3f} s\n")
    print(f"{'function':<10} {'median s':>9} {'worst s':>8} {'first request s':>16} {'peak RSS MiB':>12}")
    for name, starts in results.items():
        seconds = [s.seconds for s in starts]
        print(
            f"{name:<10} {statistics.median(seconds):>9.3f} {max(seconds):>8.3f} "
            f"{statistics.median(s.first_request for s in starts):>16.3f} "
            f"{statistics.median(s.peak_rss_mib for s in starts):>12.1f}"
        )
    print("\ntargets (issue 20): each function < 0.8 s and < 100 MB (95.4 MiB)")


if __name__ == "__main__":
    main()
