"""Every function's import path stays light (cold start matters under scale-to-zero).

Each function module is imported in a fresh interpreter, as Knative's container would, and what it loaded is
compared with what it may not load. The event functions (dispatch, aggregate, sweep, tenants) serve no REST
API: FastAPI, uvicorn and the hub's routers stay out of them (``assay.functionhost``, ``docs/performance.md``).
The lazily imported integrations (kubernetes, MLflow, OCI exports) load on the first event that needs them,
never at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from tests.conftest import REPO

# Never at import in any function: integrations loaded on first use, and what only the local hub needs.
_NEVER = frozenset({"mlflow", "kubernetes", "oras", "torch", "jsonpatch", "watchfiles", "pgserver"})
# Every function runs as `uvicorn functions.<name>.main:app`; functions-framework's package imports Flask and its
# stack (about 0.4 s of a cold start) even for ASGI functions, so no function imports it.
_FLASK = frozenset({"functions_framework", "flask", "werkzeug", "jinja2", "itsdangerous", "blinker"})
# The REST app: the event functions host CloudEvents through assay.functionhost's Starlette app alone (the
# uvicorn that serves it is the server's, not the module's import).
_REST = frozenset({"fastapi", "uvicorn"})
_REST_MODULES = ("assay.http", "assay.ui", "assay.cli")
# Not at import in the event functions: the local runtime's sidecar supervisor and its HTTP client (a function
# builds its broker client, or a local runtime, when its hub opens), authentication (only with
# ASSAY_EVENT_SENDERS, on the first event), YAML (read with files only) and the triggers (the sweep's steps,
# built on its first event).
_EVENT_DIET = frozenset({"yaml", "httpx"})
_EVENT_DIET_MODULES = (
    "assay.auth",
    "assay.triggers",
    "assay.lifecycle.local_runner",
    "assay.runtimes.sidecar",
)
# Loaded by the first event that exports or talks to a cluster, not by the cold start (the pure builders of
# assay.runtimes.kubernetes.objects are on the submit path: they size a job's ConfigMap).
_ON_FIRST_EVENT = (
    "assay.exports",
    "assay.runtimes.kubernetes.runtime",
    "assay.runtimes.kubernetes.onboarding",
)

# Not at import in the REST functions: what a webhook or registry delivery and a gate run (their parsers, the
# claims, the Kubeflow poll, the baseline), loaded by the first such request, and the local runtime (a cluster's
# functions never run one; the local hub builds it).
_ON_FIRST_DELIVERY = (
    "assay.triggers.ingress",
    "assay.triggers.deliveries",
    "assay.triggers.kubeflow",
    "assay.triggers.baseline",
    "assay.triggers.signatures",
    "assay.runtimes.local",
    "assay.runtimes._warm",
)

# Not at import in the REST functions either: httpx loads its command line (rich, click, pygments) with it; only
# dashboard sign-in, a Kubeflow poll and the cluster publisher use it, and they import it there.
_CLIENT = frozenset({"httpx", "rich"})

# function -> (top-level packages it may not import, assay modules (and their submodules) it may not import)
FORBIDDEN: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "submit": (_NEVER | _FLASK | _CLIENT, ("assay.cli", *_ON_FIRST_EVENT, *_ON_FIRST_DELIVERY)),
    # The callback function builds only its own routes (assay.http.app.routers): none of the REST API's.
    "callback": (
        _NEVER | _FLASK | _CLIENT,
        (
            "assay.cli",
            *_ON_FIRST_EVENT,
            *_ON_FIRST_DELIVERY,
            "assay.http.jobs",
            "assay.http.catalogue",
            "assay.http.policies",
            "assay.ui.routes",
        ),
    ),
    "dispatch": (
        _NEVER | _FLASK | _REST | _EVENT_DIET,
        _REST_MODULES + _ON_FIRST_EVENT + _EVENT_DIET_MODULES,
    ),
    "aggregate": (
        _NEVER | _FLASK | _REST | _EVENT_DIET,
        _REST_MODULES + _ON_FIRST_EVENT + _EVENT_DIET_MODULES,
    ),
    "sweep": (_NEVER | _FLASK | _REST | _EVENT_DIET, _REST_MODULES + _ON_FIRST_EVENT + _EVENT_DIET_MODULES),
    # Onboarding has no database: neither the store nor psycopg.
    "tenants": (
        _NEVER | _FLASK | _REST | _EVENT_DIET | {"psycopg", "psycopg_pool"},
        (*_REST_MODULES, *_ON_FIRST_EVENT, *_EVENT_DIET_MODULES, "assay.store", "assay.lifecycle"),
    ),
}

_PROBE = (
    "import gc, importlib, json, sys; importlib.import_module(sys.argv[1]); "
    "print(json.dumps({'modules': sorted(sys.modules), 'gc': gc.isenabled(), 'frozen': gc.get_freeze_count()}))"
)


def imported_by(function: str) -> set[str]:
    """The modules a fresh interpreter holds after importing ``functions.<function>.main``."""
    return set(probe(function)["modules"])


def probe(function: str, **settings: str) -> dict[str, Any]:
    """What a fresh interpreter holds after importing ``functions.<function>.main``: its modules, whether the
    cyclic garbage collector is on, and how many objects are frozen out of its reach."""
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://unused/unused",  # never connected to at import
        "ASSAY_AUTH_MODE": "token",  # cluster mode's default (kubernetes) needs a service account
        "ASSAY_RUNTIME": "local",
        **settings,
    }
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, f"functions.{function}.main"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return cast(dict[str, Any], json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("function", sorted(FORBIDDEN))
def test_function_imports_only_what_it_serves(function: str) -> None:
    modules = imported_by(function)
    assert f"functions.{function}.main" in modules
    packages, prefixes = FORBIDDEN[function]
    assert sorted({m.split(".")[0] for m in modules} & packages) == []
    assert sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)) == []


@pytest.mark.parametrize("function", sorted(FORBIDDEN))
def test_function_imports_without_the_collector_and_serves_with_it(function: str) -> None:
    """functions/__init__.py turns the cyclic collector off for the imports; the main module turns it back on
    once its app is built, with what the imports built frozen (so a later full collection does not walk it).
    A main module that forgot would leave a function serving without cycle collection."""
    state = probe(function)
    assert state["gc"] is True
    assert state["frozen"] > 20_000


@pytest.mark.parametrize("function", ["submit", "callback"])
def test_kubernetes_authentication_builds_its_client_on_the_first_review(function: str) -> None:
    """The cluster's default authentication (TokenReview) does not put the kubernetes client on the cold start:
    probes and the sidecars' launch credentials never need it."""
    modules = probe(function, ASSAY_AUTH_MODE="kubernetes", ASSAY_K8S_API_URL="https://127.0.0.1:9")[
        "modules"
    ]
    assert "assay.auth._kubernetes" in modules
    assert [m for m in modules if m == "kubernetes" or m.startswith("kubernetes.")] == []


@pytest.mark.parametrize("function", ["dispatch", "aggregate", "sweep"])
def test_event_functions_host_through_functionhost(function: str) -> None:
    """The CloudEvent host the lifecycle's functions use is the FastAPI-free one (what the forbidden
    packages above are measured against is really loaded: the lifecycle and starlette)."""
    modules = imported_by(function)
    assert {"assay.functionhost", "assay.lifecycle", "starlette.requests", "cloudevents.http"} <= modules


def test_the_kubernetes_clients_do_not_load_the_generated_apis(tmp_path: Path) -> None:
    """dispatch and sweep build the Kubernetes runtime on their first event, tenants its onboarding, submit and
    callback the TokenReview authenticator on their first request (``ASSAY_AUTH_MODE=kubernetes``): all reach the
    API through the client's ApiClient by path (assay/kubeapi.py), so none of the generated API classes, and none
    of the pydantic models they import (0.7 s and 25-40 MiB of that first event), are loaded."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        '{"apiVersion": "v1", "kind": "Config", "current-context": "c",'
        ' "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],'
        ' "users": [{"name": "u", "user": {"token": "t"}}],'
        ' "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}'
    )
    probe = (
        "import json, sys\n"
        "from assay.auth._kubernetes import KubernetesGuard\n"
        "from assay.runtimes.kubernetes.onboarding import Onboarding\n"
        "from assay.runtimes.kubernetes.runtime import KubernetesRuntime\n"
        "from assay.settings import Settings\n"
        f"settings = Settings(mode='cluster', k8s_kubeconfig={str(kubeconfig)!r})\n"
        "KubernetesRuntime(settings, None)\n"
        "Onboarding(settings)\n"
        "KubernetesGuard(settings)._reviews.api()  # built by the first review\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, env=os.environ
    )
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    assert "assay.kubeapi" in modules
    assert [m for m in modules if m.startswith(("kubernetes.client.api.", "kubernetes.client.models."))] == []
