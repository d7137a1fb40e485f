"""Events are retried through transient failures, refused ones fail at once, and nothing is swallowed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from adapters.sdk import (
    AdapterSettings,
    CallbackRejected,
    CallbackUndelivered,
    DefaultCallbacks,
    JobPhase,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
)
from tests.support.net import free_port
from tests.support.recorders import DROP, EventRecorder

RUNNING = JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.LOADING_DATA)


def spec_for(url: str) -> JobSpec:
    return JobSpec.model_validate(
        {
            "id": "job-9",
            "provider_id": "p",
            "benchmark_id": "b",
            "benchmark_index": 0,
            "model": {"name": "m"},
            "parameters": {},
            "callback_url": url,
        }
    )


def callbacks_for(url: str, retry_seconds: float = 20.0) -> DefaultCallbacks:
    settings = AdapterSettings.from_env({"ASSAY_CALLBACK_RETRY_SECONDS": str(retry_seconds)})
    return DefaultCallbacks(spec_for(url), settings=settings)


def test_transient_failures_then_success_deliver_exactly_once(recorder: EventRecorder) -> None:
    recorder.plan(503, DROP, 429, 408)
    callbacks_for(recorder.url).report_status(RUNNING)
    assert [r.answer for r in recorder.requests] == [503, None, 429, 408, 204]
    assert recorder.events() == [
        {"provider_id": "p", "id": "b", "benchmark_index": 0, "status": "running", "phase": "loading_data"}
    ]
    # Every attempt carried the same body.
    assert len({str(r.body) for r in recorder.requests}) == 1


def test_retry_after_is_honoured(recorder: EventRecorder) -> None:
    recorder.plan((503, {"Retry-After": "2"}))
    callbacks_for(recorder.url).report_status(RUNNING)
    first, second = recorder.requests
    # Without the header the first backoff is at most 0.2 s.
    assert second.arrived - first.arrived >= 1.9
    assert second.answer == 204


def test_a_permanent_refusal_raises_at_once_with_the_servers_message(recorder: EventRecorder) -> None:
    recorder.plan(400, 200)
    started = time.monotonic()
    with pytest.raises(CallbackRejected) as caught:
        callbacks_for(recorder.url).report_status(RUNNING)
    assert time.monotonic() - started < 2
    assert len(recorder.requests) == 1
    assert caught.value.status_code == 400
    assert "the recorder answered 400 (test_refusal)" in str(caught.value)
    assert "/api/v1/evaluations/jobs/job-9/events" in str(caught.value)


def test_exhausting_the_budget_raises_undelivered(recorder: EventRecorder) -> None:
    recorder.plan(*([503] * 100))
    started = time.monotonic()
    with pytest.raises(CallbackUndelivered) as caught:
        callbacks_for(recorder.url, retry_seconds=1.5).report_status(RUNNING)
    elapsed = time.monotonic() - started
    assert elapsed < 3
    assert caught.value.attempts == len(recorder.requests) >= 2
    assert "HTTP 503" in caught.value.last_error
    assert recorder.delivered == []


def test_an_unreachable_receiver_is_undelivered_not_ignored(tmp_path: Path) -> None:
    port = free_port()  # a port nobody listens on
    with pytest.raises(CallbackUndelivered, match="ConnectError"):
        callbacks_for(f"http://127.0.0.1:{port}", retry_seconds=1).report_status(RUNNING)


def test_tenant_and_bearer_token_headers(recorder: EventRecorder, tmp_path: Path) -> None:
    namespace = tmp_path / "namespace"
    namespace.write_text("team-a\n")
    token = tmp_path / "token"
    token.write_text("secret-1\n")
    spec_env = {"EVALHUB_AUTH_TOKEN_PATH": str(token)}
    spec = spec_for(recorder.url)
    callbacks = DefaultCallbacks(spec, settings=AdapterSettings.from_env(spec_env), namespace_path=namespace)
    callbacks.report_status(RUNNING)
    token.write_text("secret-2")  # a rotated token is read fresh
    callbacks.report_status(RUNNING)
    first, second = recorder.requests
    assert first.headers["x-tenant"] == "team-a"
    assert first.headers["authorization"] == "Bearer secret-1"
    assert second.headers["authorization"] == "Bearer secret-2"
    assert first.headers["content-type"] == "application/json"

    # Without the files, neither header is sent.
    plain = DefaultCallbacks(spec, settings=AdapterSettings.from_env({}), namespace_path=tmp_path / "absent")
    plain.report_status(RUNNING)
    assert "authorization" not in recorder.requests[2].headers
    assert "x-tenant" not in recorder.requests[2].headers


def test_cancelled_is_a_status_an_adapter_may_send(recorder: EventRecorder) -> None:
    callbacks = callbacks_for(recorder.url)
    callbacks.report_status(JobStatusUpdate(status=JobStatus.CANCELLED))
    assert recorder.events()[0]["status"] == "cancelled"
    assert callbacks.has_terminal_event(0)
