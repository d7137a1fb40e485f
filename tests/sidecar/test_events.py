"""Event forwarding: the hub's own answers passed back, buffering while the hub is down with ordered
delivery once it is up, hub credentials, and the shutdown flush with ``results_not_delivered`` (pod mode)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sidecar.conftest import REPO_ROOT, local_config
from tests.support.net import free_port
from tests.support.recorders import EventRecorder, recording
from tests.support.waiting import wait_for


def _event(status: str, index: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "benchmark_status_event": {
            "provider_id": "p",
            "id": f"b{index}",
            "benchmark_index": index,
            "status": status,
            **extra,
        }
    }


def test_events_buffer_while_the_hub_is_down_and_arrive_in_order(tmp_path: Path, start_sidecar) -> None:
    port = free_port()  # where the hub will be; nothing listens there yet
    sidecar = start_sidecar(local_config(tmp_path, f"http://127.0.0.1:{port}"))
    url = f"{sidecar.url}/api/v1/evaluations/jobs/job1/events"
    phases = ["initializing", "loading_data", "running_evaluation", "post_processing"]
    with httpx.Client(timeout=30) as client:
        answers = [client.post(url, json=_event("running", phase=phase)) for phase in phases]
        answers.append(client.post(url, json=_event("completed", metrics={"acc": 0.5})))
    assert [a.status_code for a in answers] == [202] * 5
    pending = f"{sidecar.url}/sidecar/v1/jobs/{{}}/pending-events"
    assert httpx.get(pending.format("job1")).json() == {"pending": 5}
    assert httpx.get(pending.format("job2")).json() == {"pending": 0}
    with recording(port) as recorder:
        delivered = recorder.wait_for(lambda events: len(events) == 5)
    assert [e.get("phase", e["status"]) for e in delivered] == [*phases, "completed"]
    assert wait_for(lambda: httpx.get(pending.format("job1")).json()["pending"] == 0, "an empty buffer")


def test_later_events_queue_behind_buffered_ones(
    tmp_path: Path, start_sidecar, recorder: EventRecorder
) -> None:
    recorder.plan(503)  # only the first attempt fails: the hub is up again for the second event
    config = local_config(tmp_path, recorder.url)
    config["eval_hub"]["retry_initial"] = "1s"  # the first event's retry comes after the second event
    sidecar = start_sidecar(config)
    url = f"{sidecar.url}/api/v1/evaluations/jobs/job1/events"
    with httpx.Client(timeout=30) as client:
        first = client.post(url, json=_event("running", phase="initializing"))
        second = client.post(url, json=_event("running", phase="loading_data"))
        other_job = client.post(f"{sidecar.url}/api/v1/evaluations/jobs/job2/events", json=_event("running"))
    assert (first.status_code, second.status_code) == (202, 202)
    assert other_job.status_code == 204  # another job's events are not held up
    recorder.wait_for(lambda events: len(events) == 3)
    assert [r.event.get("phase") for r in recorder.accepted if r.job_id == "job1"] == [
        "initializing",
        "loading_data",
    ]


def test_the_hubs_retry_after_is_waited_for(tmp_path: Path, start_sidecar, recorder: EventRecorder) -> None:
    """A hub that answers 503 with ``Retry-After`` (its database is down) is asked again no sooner than it said,
    for the adapter's own attempt and for the sidecar's retries, though the sidecar's backoff is far shorter."""
    busy = (503, {"Retry-After": "1"})
    recorder.plan(busy, busy)
    config = local_config(tmp_path, recorder.url)
    config["eval_hub"]["retry_initial"] = "10ms"
    config["eval_hub"]["retry_max"] = "5s"  # caps a Retry-After; the backoff alone would retry in 10-20 ms
    sidecar = start_sidecar(config)
    answer = httpx.post(
        f"{sidecar.url}/api/v1/evaluations/jobs/job1/events", json=_event("running"), timeout=30
    )
    assert answer.status_code == 202  # buffered
    recorder.wait_for(lambda events: len(events) == 1)
    arrivals = [r.arrived for r in recorder.requests]
    assert [r.answer for r in recorder.requests] == [503, 503, 204]
    assert arrivals[1] - arrivals[0] >= 1.0 and arrivals[2] - arrivals[1] >= 1.0, arrivals


def test_the_hubs_own_answer_is_passed_back(tmp_path: Path, start_sidecar, recorder: EventRecorder) -> None:
    recorder.missing_jobs.add("ghost")
    sidecar = start_sidecar(local_config(tmp_path, recorder.url))
    url = f"{sidecar.url}/api/v1/evaluations/jobs/ghost/events"
    with httpx.Client(timeout=30) as client:
        answers = [client.post(url, json=_event("running")) for _ in range(2)]
        accepted = client.post(f"{sidecar.url}/api/v1/evaluations/jobs/job1/events", json=_event("running"))
    # A permanent 4xx is not buffered: the second event is answered by the hub too, not queued (202).
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json()["message"] == "job ghost not found"
    assert accepted.status_code == 204


def test_hub_token_and_tenant_are_sent(tmp_path: Path, start_sidecar, recorder: EventRecorder) -> None:
    token = tmp_path / "token"
    token.write_text("hub-token-1\n")
    config = local_config(tmp_path, recorder.url)
    config["eval_hub"].update(token_path=str(token), token_cache_timeout="0s")
    sidecar = start_sidecar(config)
    url = f"{sidecar.url}/api/v1/evaluations/jobs/job1/events"
    with httpx.Client(timeout=30) as client:
        client.post(
            url, json=_event("running"), headers={"X-Tenant": "team-a", "Authorization": "Bearer adapter"}
        )
        token.write_text("hub-token-2")  # a rotated projected token
        client.post(url, json=_event("running"), headers={"X-Tenant": "team-a"})
    headers = [r.headers for r in recorder.accepted]
    assert [h["authorization"] for h in headers] == ["Bearer hub-token-1", "Bearer hub-token-2"]
    assert {h["x-tenant"] for h in headers} == {"team-a"}
    assert all(h.get("x-global-transaction-id") for h in headers)


def test_local_mode_shutdown_flushes_without_reporting_failures(
    tmp_path: Path, start_sidecar, recorder: EventRecorder
) -> None:
    recorder.plan(503)
    sidecar = start_sidecar(local_config(tmp_path, recorder.url))
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{sidecar.url}/api/v1/evaluations/jobs/job1/events", json=_event("running"))
    sidecar.stop()  # the flush delivers what was buffered; local mode reports nothing of its own
    assert answer.status_code == 202
    assert [e["status"] for e in recorder.events()] == ["running"]


@pytest.mark.parametrize("report_undelivered", [True, False])
def test_sigterm_in_pod_mode_flushes_and_reports_missing_results(
    tmp_path: Path, recorder: EventRecorder, report_undelivered: bool
) -> None:
    """``report_undelivered: false`` (Assay's own pods) leaves the missing result to the hub's watcher, which
    can tell an OOMKill or a deadline from an adapter that simply never reported."""
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps(
            {
                "id": "podjob",
                "provider_id": "p",
                "benchmark_id": "b0",
                "benchmark_index": 0,
                "model": {"url": "http://localhost:8080/v1", "name": "m"},
                "parameters": {},
                "callback_url": "http://localhost:8080",
                "group": [{"benchmark_id": "b1", "benchmark_index": 1}],
            }
        )
    )
    config = tmp_path / "sidecar_config.json"
    config.write_text(
        json.dumps(
            {
                "base_url": "http://localhost:8080",
                "local_mode": False,
                "job_spec_path": str(spec),
                "eval_hub": {"base_url": recorder.url, "http_timeout": "5s", "retry_initial": "2s"},
                "cache": {"enabled": False},
                "shutdown_timeout": "10s",
                "report_undelivered": report_undelivered,
            }
        )
    )
    port_file = tmp_path / "port"
    log = (tmp_path / "sidecar.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "adapters.sidecar", "--config", str(config)),
            *("--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file)),
        ],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        port = wait_for(lambda: port_file.is_file() and port_file.read_text().strip(), "the port file")
        url = f"http://127.0.0.1:{int(port)}"
        with httpx.Client(timeout=30) as client:
            wait_for(lambda: _healthy(client, url), "/health")
            recorder.plan(503)  # the first event is buffered; its retry waits ~2s, past the SIGTERM
            events = f"{url}/api/v1/evaluations/jobs/podjob/events"
            running = client.post(events, json=_event("running", 0), headers={"X-Tenant": "team-a"})
            done = client.post(events, json=_event("completed", 1, metrics={"acc": 1.0}))
        assert (running.status_code, done.status_code) == (202, 202)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    delivered = recorder.events()
    assert [(e["benchmark_index"], e["status"]) for e in delivered] == [
        (0, "running"),
        (1, "completed"),
        *([(0, "failed")] if report_undelivered else []),
    ]
    if not report_undelivered:
        return
    failure = delivered[2]
    assert failure["id"] == "b0" and failure["provider_id"] == "p"
    assert failure["error_message"]["message_code"] == "results_not_delivered"
    assert failure["error_message"]["message_origin"] == "sidecar"
    assert "without reporting results" in failure["error_message"]["message"]
    assert recorder.accepted[2].headers["x-tenant"] == "team-a"


def _healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(f"{url}/health").status_code == 200
    except httpx.TransportError:
        return False


def test_spooled_events_survive_a_stop_and_the_next_sidecar_delivers_them(
    tmp_path: Path, start_sidecar
) -> None:
    """The hub is down, the sidecar is stopped: nothing is lost. The next sidecar (after a hub restart) delivers
    every event in order, with the times they happened, and leaves the spool empty."""
    port = free_port()  # the hub is down
    config = local_config(tmp_path, f"http://127.0.0.1:{port}")
    config["eval_hub"]["spool_dir"] = str(tmp_path / "spool")
    config["shutdown_timeout"] = "200ms"
    first = start_sidecar(config)
    url = f"{first.url}/api/v1/evaluations/jobs/job1/events"
    with httpx.Client(timeout=30) as client:
        answers = [
            client.post(url, json=_event("running", phase="running_evaluation")),
            client.post(url, json=_event("completed", metrics={"acc": 0.5})),
        ]
    assert [a.status_code for a in answers] == [202, 202]
    first.stop()  # the flush cannot reach the hub: the events stay on disk
    spooled = sorted((tmp_path / "spool" / "job1").glob("*.json"))
    assert len(spooled) == 2
    assert oct(spooled[0].stat().st_mode & 0o777) == "0o600"

    with recording(port) as recorder:
        start_sidecar(config)
        delivered = recorder.wait_for(lambda events: len(events) == 2)
    assert [e["status"] for e in delivered] == ["running", "completed"]
    # Stamped by the sidecar when they happened, not by the hub when they arrived after its restart.
    running, completed = delivered
    assert running["started_at"] <= completed["started_at"] <= completed["completed_at"]
    wait_for(lambda: not (tmp_path / "spool" / "job1").exists(), "an empty spool")


def test_an_event_the_spool_cannot_keep_is_refused_not_acknowledged(tmp_path: Path, start_sidecar) -> None:
    """With a spool, a 202 means "on disk": the local hub reads the spool to know whether a finished run's events
    are still on their way. An event that cannot be written there is refused (503), so the adapter keeps it."""
    port = free_port()  # the hub is down: the event would be buffered
    config = local_config(tmp_path, f"http://127.0.0.1:{port}")
    config["eval_hub"]["spool_dir"] = str(tmp_path / "spool")
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "job1").write_text("a file where the job's spool folder would go")
    sidecar = start_sidecar(config)
    with httpx.Client(timeout=30) as client:
        refused = client.post(f"{sidecar.url}/api/v1/evaluations/jobs/job1/events", json=_event("running"))
        kept = client.post(f"{sidecar.url}/api/v1/evaluations/jobs/job2/events", json=_event("running"))
        pending = f"{sidecar.url}/sidecar/v1/jobs/{{}}/pending-events"
        assert (refused.status_code, refused.headers.get("retry-after")) == (503, "1")
        assert kept.status_code == 202  # another job's spool is fine
        assert client.get(pending.format("job1")).json() == {"pending": 0}  # nothing held in memory only
        assert client.get(pending.format("job2")).json() == {"pending": 1}
    assert len(list((tmp_path / "spool" / "job2").glob("*.json"))) == 1
