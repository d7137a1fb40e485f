"""The four functions as Knative runs them, chained through a broker over real HTTP.

Every function is the ASGI ``app`` of its module, which Knative serves with ``uvicorn
functions.<name>.main:app`` (knative/base/services.yaml); the event functions' endpoints are also served by
functions-framework exactly as ``functions-framework --asgi --target ...`` does (the retry-rules test, both
ways). A small broker on loopback plays the Knative Broker + Triggers: it receives what the functions post to
``K_SINK`` and delivers every event THREE times (binary mode to dispatch, structured mode to aggregate). No
Kubernetes is involved; the adapter runs under the local runtime inside the dispatch function.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent, from_http
from fastapi.testclient import TestClient
from functions_framework.aio import create_asgi_app  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from assay.core.events import BENCHMARK_FINISHED, EVALUATION_ACCEPTED, EVALUATION_FINISHED
from assay.settings import Settings
from tests.conftest import ADMIN, REPO, LiveServer
from tests.lifecycle.test_local_lifecycle import exact_match_provider
from tests.support.net import free_port
from tests.support.waiting import wait_for

TEAM = {"X-Tenant": "team-a"}
REDELIVERIES = 3


def _function(name: str, server: str = "uvicorn") -> tuple[Any, Any]:
    """A fresh instance of function ``name``'s ASGI app and its host, as ``server`` serves it: ``uvicorn`` (the
    module's ``app``, what the manifests run) or ``functions-framework`` (the module's plain endpoint, loaded by
    path with functions-framework's default signature type, http)."""
    if server == "functions-framework":
        app = create_asgi_app(target=name, source=str(REPO / "functions" / name / "main.py"))
        return app, sys.modules["main"].host
    module = importlib.reload(importlib.import_module(f"functions.{name}.main"))
    return module.app, module.host


class Broker:
    """Knative Broker + Triggers in miniature: route by ``type``, deliver each event several times."""

    def __init__(self, routes: dict[str, list[tuple[str, Any]]]) -> None:
        self.routes = routes
        self.received: list[CloudEvent] = []
        self.answers: list[tuple[str, str, int]] = []
        self.app = Starlette(routes=[Route("/", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        event = from_http(dict(request.headers), await request.body())
        self.received.append(event)
        for _ in range(REDELIVERIES):
            for name, app in self.routes.get(event["type"], []):
                structured = name == "aggregate"
                headers, body = to_structured(event) if structured else to_binary(event)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://function") as client:
                    answer = await client.post("/", headers=headers, content=body)
                self.answers.append((name, event["type"], answer.status_code))
        return Response(status_code=202)


@pytest.fixture(autouse=True)
def function_credentials(settings_for: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """What every function's pod gets from its Secret: the launch signing key dispatch signs each launch's
    credential with and callback verifies it with; tokens from the test's token file."""
    settings = settings_for()
    assert settings.launch_signing_key is not None
    monkeypatch.setenv("ASSAY_LAUNCH_SIGNING_KEY", settings.launch_signing_key.get_secret_value())
    monkeypatch.setenv("ASSAY_AUTH_MODE", "token")
    monkeypatch.setenv("ASSAY_AUTH_TOKEN_FILE", str(settings.auth_token_file))


@pytest.fixture()
def chain(
    settings_for: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[TestClient, Broker, list[Any]]]:
    broker_port, callback_port = free_port(), free_port()
    base = settings_for(mode="cluster", k_sink=f"http://127.0.0.1:{broker_port}/")
    monkeypatch.setenv("DATABASE_URL", base.database_url or "")
    monkeypatch.setenv("K_SINK", f"http://127.0.0.1:{broker_port}/")
    monkeypatch.setenv("ASSAY_DATA_DIR", str(tmp_path / "dispatch"))
    monkeypatch.setenv("ASSAY_PUBLIC_URL", f"http://127.0.0.1:{callback_port}")
    monkeypatch.setenv("ASSAY_LOG_FORMAT", "json")
    # Imported only now: each module builds its app from the environment at import, as in a pod.
    from functions.callback.main import build as build_callback
    from functions.submit.main import build as build_submit

    dispatch_app, dispatch_host = _function("dispatch")
    aggregate_app, aggregate_host = _function("aggregate")
    broker = Broker(
        {
            EVALUATION_ACCEPTED: [("dispatch", dispatch_app)],
            BENCHMARK_FINISHED: [("aggregate", aggregate_app), ("dispatch", dispatch_app)],
        }
    )
    with (
        LiveServer(broker.app, broker_port) as broker_server,
        LiveServer(build_callback(base), callback_port),
        TestClient(build_submit(base), headers=ADMIN) as submit,
    ):
        yield submit, broker, [dispatch_host, aggregate_host]
        # The function hosts opened their pools in the broker's event loop: close them there.
        if broker_server.server.servers:
            for host in (dispatch_host, aggregate_host):
                broker_server.on_loop(host.close())


def test_one_evaluation_travels_the_chain_and_redelivery_changes_nothing(
    chain: tuple[TestClient, Broker, list[Any]], tmp_path: Path
) -> None:
    submit, broker, _ = chain
    assert (
        submit.post("/api/v1/evaluations/providers", json=exact_match_provider(), headers=TEAM).status_code
        == 201
    )
    body = {
        "name": "chained",
        "model": {"url": "http://127.0.0.1:9/v1", "name": "recorded-model"},
        "benchmarks": [{"id": "qa", "provider_id": "exact"}, {"id": "qa_f1", "provider_id": "exact"}],
    }
    accepted = submit.post("/api/v1/evaluations/jobs", json=body, headers=TEAM)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["resource"]["id"]

    def done() -> dict[str, Any] | None:
        job = submit.get(f"/api/v1/evaluations/jobs/{job_id}", headers=TEAM).json()
        return job if job["status"]["state"] in ("completed", "failed", "partially_failed") else None

    job = wait_for(done, timeout=60)
    assert job["status"]["state"] == "completed", job["status"]
    assert job["results"]["test"]["coverage"] == 1.0

    types = [e["type"] for e in broker.received]
    assert types.count(EVALUATION_ACCEPTED) == 1
    assert types.count(BENCHMARK_FINISHED) == 2  # one per benchmark, despite three deliveries of everything
    wait_for(lambda: [e["type"] for e in broker.received].count(EVALUATION_FINISHED) == 1)
    assert all(status == 200 for _, _, status in broker.answers), broker.answers
    for event in broker.received:
        assert event["partitionkey"] == job_id and event["correlationid"] == job_id
        assert event["source"].startswith("/assay/team-a/")
    # No double dispatch: each adapter ran exactly once.
    logs = submit.get(f"/api/v1/evaluations/jobs/{job_id}", headers=TEAM).json()
    runs = sorted((tmp_path / "dispatch" / "jobs" / job_id).glob("*/exact/*/jobrun.log"))
    assert len(runs) == 2
    for log in runs:
        assert "=== attempt" not in log.read_text()
    assert logs == job  # redelivered events after the end changed nothing


@pytest.mark.parametrize("server", ["uvicorn", "functions-framework"])
def test_functions_answer_by_knative_retry_rules(
    chain: tuple[TestClient, Broker, list[Any]], server: str
) -> None:
    dispatch_app, dispatch_host = _function("dispatch", server)
    aggregate_app, aggregate_host = _function("aggregate", server)
    with TestClient(aggregate_app) as aggregate, TestClient(dispatch_app) as dispatch:
        poison = CloudEvent({"type": BENCHMARK_FINISHED, "source": "/test"}, {"no": "evaluation id"})
        headers, body = to_binary(poison)
        assert aggregate.post("/", headers=headers, content=body).status_code == 422
        wrong = CloudEvent({"type": "dev.assay.unknown.v1", "source": "/test"}, {"evaluation_id": "x"})
        headers, body = to_structured(wrong)
        assert aggregate.post("/", headers=headers, content=body).status_code == 422
        assert dispatch.post("/", headers=headers, content=body).status_code == 422
        dispatch.portal.call(dispatch_host.close)  # type: ignore[union-attr]
        # An event about a job that no longer exists is acknowledged, not retried forever.
        gone = CloudEvent({"type": BENCHMARK_FINISHED, "source": "/test"}, {"evaluation_id": "gone"})
        headers, body = to_binary(gone)
        assert aggregate.post("/", headers=headers, content=body).status_code == 200
        assert aggregate.post("/", content=b"not a cloudevent").status_code == 400
        aggregate.portal.call(aggregate_host.close)  # type: ignore[union-attr]


def _benchmark_finished(function: TestClient) -> Any:
    """Deliver a binary ``benchmark.finished`` of an unknown job to ``function``; its answer."""
    event = CloudEvent({"type": BENCHMARK_FINISHED, "source": "/test"}, {"evaluation_id": "x"})
    headers, body = to_binary(event)
    return function.post("/", headers=headers, content=body)


def test_a_function_whose_database_is_down_asks_for_redelivery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=1")
    monkeypatch.setenv("ASSAY_DB_CONNECT_TIMEOUT", "1")
    app, _ = _function("aggregate")
    with TestClient(app) as aggregate:
        answer = _benchmark_finished(aggregate)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "5"


def test_sweep_function_runs_on_a_ping(chain: tuple[TestClient, Broker, list[Any]]) -> None:
    app, host = _function("sweep")
    with TestClient(app) as sweep:
        ping = CloudEvent(
            {"type": "dev.knative.sources.ping", "source": "/apis/v1/namespaces/assay/pingsources/sweep"}, {}
        )
        headers, body = to_binary(ping)
        assert sweep.post("/", headers=headers, content=body).status_code == 200
        # The triggers' steps (imported by the sweep function alone, on its first event) ran with it.
        hub = sweep.portal.call(host.hub)  # type: ignore[union-attr]
        assert "retry_unsettled_claims" in [step.__name__ for step in hub.lifecycle.sweep_steps]
        sweep.portal.call(host.close)  # type: ignore[union-attr]


def test_the_sweep_republishes_what_the_broker_missed(
    settings_for: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    from assay.http import create_app

    broker_port = free_port()
    settings = settings_for(mode="cluster", k_sink=f"http://127.0.0.1:{broker_port}/", outbox_stale_seconds=0)
    body = {
        "name": "missed",
        "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
        "benchmarks": [{"id": "bench_a", "provider_id": "demo"}],
    }
    with TestClient(create_app(settings, "submit", lifecycle="function"), headers=ADMIN) as submit:
        accepted = submit.post("/api/v1/evaluations/jobs", json=body, headers=TEAM)  # broker down
        assert accepted.status_code == 202
    job_id = accepted.json()["resource"]["id"]

    received: list[CloudEvent] = []

    async def record(request: Request) -> Response:
        received.append(from_http(dict(request.headers), await request.body()))
        return Response(status_code=202)

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("K_SINK", f"http://127.0.0.1:{broker_port}/")
    monkeypatch.setenv("ASSAY_OUTBOX_STALE_SECONDS", "0")
    app, host = _function("sweep")
    broker = Starlette(routes=[Route("/", record, methods=["POST"])])
    with LiveServer(broker, broker_port), TestClient(app) as sweep:
        # The first attempt's backoff must be over before the sweep offers the row again.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE outbox SET next_attempt_at = now()")
        ping = CloudEvent({"type": "dev.knative.sources.ping", "source": "/test/ping"}, {})
        headers, content = to_binary(ping)
        assert sweep.post("/", headers=headers, content=content).status_code == 200
        sweep.portal.call(host.close)  # type: ignore[union-attr]
    assert [(e["type"], e["partitionkey"]) for e in received] == [(EVALUATION_ACCEPTED, job_id)]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT published_at IS NOT NULL FROM outbox").fetchone() == (True,)


@pytest.mark.parametrize("name", ["aggregate", "tenants"])
def test_a_function_that_checks_senders_refuses_a_delivery_without_the_brokers_token(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With ``ASSAY_EVENT_SENDERS`` set, the function builds its sender check on the first delivery (assay.auth
    is not imported before) and refuses one without a bearer token before reading the event or opening its hub
    (tenants, which creates RoleBindings and queues, before its Kubernetes client)."""
    kubeconfig = tmp_path / "kubeconfig"  # the TokenReview client is built, never called: no token to review
    kubeconfig.write_text(
        '{"apiVersion": "v1", "kind": "Config", "current-context": "c",'
        f' "clusters": [{{"name": "c", "cluster": {{"server": "https://127.0.0.1:{free_port()}"}}}}],'
        ' "users": [{"name": "u", "user": {"token": "t"}}],'
        ' "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}'
    )
    monkeypatch.setenv("ASSAY_EVENT_SENDERS", "system:serviceaccount:knative-eventing:*")
    monkeypatch.setenv("ASSAY_K8S_KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("DATABASE_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/none")  # never reached
    app, _ = _function(name)
    with TestClient(app) as function:
        answer = _benchmark_finished(function)
        assert answer.status_code == 401
        assert answer.json()["message_code"] == "unauthorized"
        # A token the cluster cannot review now (its API server is down): deferred, for the broker to deliver again.
        headers, body = to_binary(CloudEvent({"type": BENCHMARK_FINISHED, "source": "/test"}, {}))
        deferred = function.post("/", headers={**headers, "Authorization": "Bearer some-token"}, content=body)
        assert deferred.status_code == 503, deferred.text
        assert deferred.headers["retry-after"] == "5"
