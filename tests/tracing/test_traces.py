"""Traces (issue 20, goal 5): one evaluation on the local hub is one trace, from the submit through the outbox,
the broker, dispatch, the launch, the sidecar and the callbacks to aggregate and export, exported with OTLP to
a collector stand-in on loopback; a CloudEvent that carries a traceparent into a function continues that trace;
and a hub without tracing never imports OpenTelemetry."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent, from_http

from assay.core.events import EVALUATION_ACCEPTED, evaluation_event
from assay.events import to_cloudevent
from assay.exports import build_exporter
from assay.functionhost import CloudEventHost
from assay.lifecycle import Lifecycle
from assay.settings import Settings
from assay.telemetry import tracing
from tests.conftest import ADMIN, REPO, LiveServer
from tests.lifecycle.test_local_lifecycle import exact_match_provider, finished, job_body, submit
from tests.registry import DockerRegistry
from tests.support.otlp import Collector, ReceivedSpan, otlp_collector, tree
from tests.support.waiting import wait_for

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@pytest.fixture()
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """Tracing configured as an operator would: OTEL_EXPORTER_OTLP_ENDPOINT at a collector (here a stand-in),
    also inherited by the local sidecar the hub starts; spans are batched for 50 ms instead of 5 s."""
    with otlp_collector() as found:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", found.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        try:
            yield found
        finally:
            tracing.shutdown()


def _by_name(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    found: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


EXPECTED = (
    "submit",
    "publish evaluation.accepted",
    "dispatch evaluation.accepted",
    "launch",
    "adapter run",
    "sidecar event",
    "callback",
    "publish benchmark.finished",
    "aggregate benchmark.finished",
    "publish evaluation.finished",
    "aggregate evaluation.finished",
    "export",
)


def test_one_evaluation_is_one_trace_from_submit_to_export(
    collector: Collector, start_hub: Callable[..., LiveServer], registry: DockerRegistry, tmp_path: Path
) -> None:
    """The evaluation exports its card to a real registry, so the trace runs to the export."""
    hub = start_hub(
        exporter=build_exporter,
        oci_auth_config_path=registry.docker_config(tmp_path / "docker-config.json"),
        oci_insecure_registries=(registry.host,),
    )
    assert tracing.enabled()
    client = hub.client()
    assert client.post("/api/v1/evaluations/providers", json=exact_match_provider()).status_code == 201
    coordinates = {"oci_host": registry.host, "oci_repository": "assay/traces"}
    body = job_body(exports={"oci": {"coordinates": coordinates}})
    created = submit(client, body, headers={"traceparent": TRACEPARENT})
    job_id = created["resource"]["id"]
    assert finished(client, job_id)["status"]["state"] == "completed"

    def complete() -> list[ReceivedSpan] | None:
        # Spans arrive as they end, from two processes, each on its own batch schedule: wait for all of them
        # (the sidecar's span of each callback included), then judge how they link.
        spans = collector.spans(CLIENT_TRACE)
        names = [s.name for s in spans]
        done = set(EXPECTED) <= set(names) and names.count("sidecar event") == names.count("callback")
        return spans if done else None

    spans = wait_for(complete, timeout=30)
    print(tree(spans))
    ids = {s.span_id: s for s in spans}
    # One tree: every span's parent is in the trace, up to the client's span that submitted.
    assert all(s.parent_id in ids or s.parent_id == CLIENT_SPAN for s in spans), tree(spans)
    named = _by_name(spans)

    def parent(name: str) -> str:
        (span,) = named[name]
        return ids[span.parent_id].name if span.parent_id in ids else "client"

    assert parent("submit") == "client"
    assert named["submit"][0].attributes["assay.evaluation.id"] == job_id
    assert parent("publish evaluation.accepted") == "submit"
    assert parent("dispatch evaluation.accepted") == "publish evaluation.accepted"
    assert parent("launch") == "dispatch evaluation.accepted"
    assert parent("adapter run") == "launch"  # its slot, the recorded start, the process until its exit
    # The adapter's events go through the sidecar (its own process and service) in the launch's trace.
    sidecar = named["sidecar event"]
    assert {s.service for s in sidecar} == {"assay-sidecar"}
    assert all(ids[s.parent_id].name == "launch" for s in sidecar)
    callbacks = named["callback"]
    assert all(ids[c.parent_id].name == "sidecar event" for c in callbacks)
    assert any(c.attributes["assay.benchmark.status"] == "completed" for c in callbacks)
    assert parent("publish benchmark.finished") == "callback"
    assert parent("aggregate benchmark.finished") == "publish benchmark.finished"
    assert parent("publish evaluation.finished") == "aggregate benchmark.finished"
    assert parent("aggregate evaluation.finished") == "publish evaluation.finished"
    assert parent("export") == "aggregate evaluation.finished"
    assert {s.service for s in spans} == {"assay", "assay-sidecar"}


def test_a_function_continues_the_trace_of_the_cloudevent_it_receives(
    collector: Collector, settings_for: Callable[..., Settings]
) -> None:
    """The function host (dispatch, aggregate in Knative) reads the distributed-tracing extension and the events
    it writes carry its span onwards."""
    settings = settings_for(mode="cluster", runtime="local", k_sink=None)
    seen: list[tuple[str | None, str | None]] = []

    async def handler(ctx: Lifecycle, ce: CloudEvent) -> None:
        seen.append(tracing.current() or (None, None))
        written = evaluation_event(EVALUATION_ACCEPTED, "default", "test", "job-1")
        seen.append((written.traceparent, written.attributes().get("traceparent")))

    handler.__name__ = "dispatch"
    host = CloudEventHost(with_runtime=False, settings=settings)
    event = evaluation_event(EVALUATION_ACCEPTED, "default", "submit", "job-1")
    # As the broker delivers it: HTTP binary mode, the extension as ce-traceparent / ce-tracestate headers.
    sent = replace(event, traceparent=TRACEPARENT, tracestate="vendor=1")
    headers, body = to_binary(to_cloudevent(sent))
    assert headers["ce-traceparent"] == TRACEPARENT
    received = from_http(headers, body)

    async def deliver() -> None:
        try:
            await host(handler, received)
        finally:
            await host.close()

    asyncio.run(asyncio.wait_for(deliver(), 60))
    assert tracing.enabled()
    tracing.flush()
    (span,) = wait_for(lambda: collector.spans(CLIENT_TRACE) or None, timeout=30)
    assert span.name == "dispatch evaluation.accepted"
    assert span.parent_id == CLIENT_SPAN
    assert span.service == "assay-function"
    assert span.attributes["assay.evaluation.id"] == "job-1"
    (inside, state), (carried, attribute) = seen
    assert inside == carried == attribute == f"00-{CLIENT_TRACE}-{span.span_id}-01"
    assert state == "vendor=1"  # tracestate travels with it


_OFF = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[2])
    from assay.http.app import create_app
    from assay.settings import Settings
    from tests.lifecycle.test_local_lifecycle import exact_match_provider, finished, job_body, submit
    from tests.support.servers import ThreadedServer
    import httpx

    values, admin = json.loads(sys.argv[1])
    settings = Settings(**values)
    with ThreadedServer(create_app(settings), settings.port) as server:
        client = httpx.Client(base_url=server.url, headers=admin, timeout=30)
        assert client.post("/api/v1/evaluations/providers", json=exact_match_provider()).status_code == 201
        created = submit(client, job_body(), headers={"traceparent": sys.argv[3]})
        state = finished(client, created["resource"]["id"])["status"]["state"]
    print(json.dumps([state, sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")]))
    """
)
# FastAPI (0.165) imports OpenTelemetry's API for its own, unused, telemetry hooks: the hub's process holds the
# API whatever Assay does. What tracing would add is the SDK, the exporters and the protocol's messages.
_SDK = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto")


def test_without_tracing_a_whole_evaluation_imports_nothing_of_opentelemetry(
    settings_for: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's traceparent header alone turns nothing on: the hub runs a whole evaluation without loading
    OpenTelemetry (nor its SDK or exporters)."""
    from tests.support.net import free_port

    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    settings = settings_for(port=free_port())
    values: dict[str, Any] = settings.model_dump(mode="json", exclude_none=True)
    values["launch_signing_key"] = settings.launch_signing_key.get_secret_value()  # type: ignore[union-attr]
    done = subprocess.run(
        [sys.executable, "-c", _OFF, json.dumps([values, ADMIN]), str(REPO), TRACEPARENT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    state, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert state == "completed"
    assert [m for m in loaded if m.startswith(_SDK)] == []


_FUNCTION_OFF = textwrap.dedent(
    """
    import asyncio, json, sys
    from cloudevents.http import CloudEvent
    import functions.dispatch.main, functions.aggregate.main
    from assay.core.events import EVALUATION_ACCEPTED, evaluation_event
    from assay.functionhost import CloudEventHost
    from assay.lifecycle import handlers
    from assay.settings import Settings

    async def main():
        host = CloudEventHost(with_runtime=False, settings=Settings(mode="cluster", runtime="local",
            database_url=sys.argv[1], auth_mode="token", launch_signing_key="k" * 40))
        event = evaluation_event(EVALUATION_ACCEPTED, "default", "submit", "no-such-job")
        attributes = {**event.attributes(), "traceparent": sys.argv[2]}
        try:
            await host(handlers.dispatch, CloudEvent(attributes, event.data))
        finally:
            await host.close()

    asyncio.run(main())
    print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")))
    """
)


def test_without_tracing_an_event_function_imports_nothing_of_opentelemetry(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event functions import no FastAPI, so there nothing of OpenTelemetry loads at all: not at the cold
    start, not for an event that carries a traceparent."""
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    done = subprocess.run(
        [sys.executable, "-c", _FUNCTION_OFF, database_url, TRACEPARENT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_a_kubernetes_launch_hands_its_trace_to_the_adapter_and_the_sidecar() -> None:
    """On a cluster the launch span's context travels as TRACEPARENT/TRACESTATE in both containers (the pod-mode
    sidecar stamps its callbacks with it); without tracing the pod is as before."""
    from assay.core.plan import FrozenRuntime, PlannedBenchmark
    from assay.runtimes.kubernetes import build_launch
    from tests.k8s_schemas import K8sSchemas

    planned = PlannedBenchmark(
        index=0, provider_id="p", id="b", runtime=FrozenRuntime(k8s={"image": "ghcr.io/x/y:1"})
    )

    def pod(trace_env: dict[str, str] | None) -> dict[str, Any]:
        objects = build_launch(
            evaluation_id="e",
            tenant="team-a",
            request={"model": {"url": "", "name": "m"}},
            runs=[(planned, 1)],
            settings=Settings(),
            timeout_seconds=60,
            launch_token="assay-launch.v1.test",
            trace_env=trace_env,
        )
        K8sSchemas.load().validate(objects.job)
        return dict(objects.job["spec"]["template"]["spec"])

    def env_of(spec: dict[str, Any]) -> list[dict[str, str]]:
        containers = [*spec["initContainers"], *spec["containers"]]
        return [
            {e["name"]: e["value"] for e in c.get("env", []) if e["name"].startswith("TRACE")}
            for c in containers
            if c["name"] in ("sidecar", "adapter")
        ]

    traced = pod({"TRACEPARENT": TRACEPARENT, "TRACESTATE": "vendor=1"})
    assert env_of(traced) == [{"TRACEPARENT": TRACEPARENT, "TRACESTATE": "vendor=1"}] * 2
    assert env_of(pod(None)) == [{}, {}]
    assert env_of(pod({})) == [{}, {}]


def _status(index: int) -> dict[str, Any]:
    return {
        "benchmark_status_event": {
            "provider_id": "p",
            "id": "b",
            "benchmark_index": index,
            "status": "running",
        }
    }


def test_the_sidecar_stamps_each_event_with_its_launchs_trace(
    tmp_path: Path, recorder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local mode: the launch's trace-context file (written by the hub beside hub-token); pod mode: the
    container's TRACEPARENT. An adapter's own traceparent wins; an untraced launch sends none. (No OTEL_*
    here: the sidecar makes no spans of its own and passes the launch's context on unchanged.)"""
    from adapters.sidecar import SidecarConfig, create_app
    from tests.support.servers import ThreadedServer

    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    jobs = tmp_path / "jobs"
    (jobs / "job1" / "1").mkdir(parents=True)
    (jobs / "job1" / "1" / "trace-context").write_text(f"{TRACEPARENT}\nvendor=1\n")
    hub = {"base_url": recorder.url, "sync_timeout": "5s"}
    local = SidecarConfig.model_validate(
        {"local_mode": True, "local": {"jobs_root": str(jobs)}, "eval_hub": hub}
    )
    own = f"00-{'1' * 32}-{'2' * 16}-01"
    with ThreadedServer(create_app(local), lifespan="on") as sidecar, httpx.Client(timeout=30) as client:
        url = f"{sidecar.url}/api/v1/evaluations/jobs/job1/events"
        assert client.post(url, json=_status(1)).status_code == 204
        assert client.post(url, json=_status(0)).status_code == 204  # index 0 of job1: no file
        assert client.post(url, json=_status(1), headers={"traceparent": own}).status_code == 204
    monkeypatch.setenv("TRACEPARENT", TRACEPARENT)
    pod = SidecarConfig.model_validate({"eval_hub": hub, "job_spec_path": str(tmp_path / "none.json")})
    with ThreadedServer(create_app(pod), lifespan="on") as sidecar, httpx.Client(timeout=30) as client:
        url = f"{sidecar.url}/api/v1/evaluations/jobs/job2/events"
        assert client.post(url, json=_status(0)).status_code == 204
    sent = [(r.headers.get("traceparent"), r.headers.get("tracestate")) for r in recorder.requests]
    assert sent == [(TRACEPARENT, "vendor=1"), (None, None), (own, None), (TRACEPARENT, None)]
