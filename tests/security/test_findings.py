"""Each way in that the trust review found (issue 14), tried again as the outsider tried it, now refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from assay.runtimes.local import adapter_environment
from assay.telemetry import Metrics
from tests.conftest import LiveServer, launch_headers
from tests.support.waiting import wait_for

J = "/api/v1/evaluations/jobs"
P = "/api/v1/evaluations/providers"
IDLE = {
    "id": "idle",
    "name": "Idle",
    "runtime": {"local": {"command": "sleep 600"}},
    "benchmarks": [
        {
            "id": "wait",
            "name": "Wait",
            "category": "c",
            "metrics": ["score"],
            "primary_score": {"metric": "score", "scale": {"min": 0, "max": 1}},
            "pass_criteria": {"threshold": 0.5},
        }
    ],
}


def job(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "probe",
        "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
        "benchmarks": [{"id": "wait", "provider_id": "idle"}],
    }
    body.update(overrides)
    return body


def completed(score: float = 1.0, index: int = 0) -> dict[str, Any]:
    return {
        "benchmark_status_event": {
            "provider_id": "idle",
            "id": "wait",
            "benchmark_index": index,
            "status": "completed",
            "metrics": {"score": score},
        }
    }


@pytest.fixture()
def running(client: TestClient, database_url: str) -> str:
    """A job whose only benchmark is running: an adapter that only waits, launched, and its launch's own
    ``running`` event."""
    assert client.post(P, json=IDLE).status_code == 201
    job_id = str(client.post(J, json=job()).json()["resource"]["id"])

    def launched() -> bool:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT runtime_ref FROM benchmark_runs").fetchone()
        return row is not None and row[0] is not None

    wait_for(launched, timeout=60)
    event = completed()
    event["benchmark_status_event"].update(status="running", metrics={})
    assert (
        client.post(f"{J}/{job_id}/events", json=event, headers=launch_headers(client, job_id)).status_code
        == 204
    )
    assert client.get(f"{J}/{job_id}").json()["status"]["state"] == "running"
    return job_id


def test_headers_no_longer_choose_the_tenant_or_the_user(
    client: TestClient, issue_token: Callable[..., dict[str, str]]
) -> None:
    alice = issue_token("alice", {"team-a": "editor"})
    assert client.post(P, json=IDLE, headers={**alice, "X-Tenant": "team-a"}).status_code == 201
    job_id = client.post(J, json=job(), headers={**alice, "X-Tenant": "team-a"}).json()["resource"]["id"]
    mallory = issue_token("mallory", {"team-b": "admin"})
    for method, path in [("GET", J), ("GET", f"{J}/{job_id}"), ("DELETE", f"{J}/{job_id}?hard_delete=true")]:
        # Naming the victim's tenant: refused; naming one's own: the victim's job does not exist there.
        assert client.request(method, path, headers={**mallory, "X-Tenant": "team-a"}).status_code == 403
    assert client.get(f"{J}/{job_id}", headers={**mallory, "X-Tenant": "team-b"}).status_code == 404
    assert client.get(f"{J}/{job_id}/logs", headers={**mallory, "X-Tenant": "team-b"}).status_code == 404
    assert client.get(f"{J}/{job_id}/gate", headers={**mallory, "X-Tenant": "team-b"}).status_code == 404
    assert client.get("/api/v1/dead-letters", headers={**mallory, "X-Tenant": "team-a"}).status_code == 403
    # X-User is not who you are: the owner is the authenticated subject.
    created = client.post(J, json=job(), headers={**alice, "X-Tenant": "team-a", "X-User": "ceo"}).json()
    assert (
        client.get(f"{J}/{created['resource']['id']}", headers={**alice, "X-Tenant": "team-a"}).json()[
            "resource"
        ]["owner"]
        == "alice"
    )
    client.delete(f"{J}/{job_id}", headers={**alice, "X-Tenant": "team-a"})
    client.delete(f"{J}/{created['resource']['id']}", headers={**alice, "X-Tenant": "team-a"})


def test_an_unauthenticated_completed_event_cannot_pass_a_running_job(
    client: TestClient, running: str
) -> None:
    url = f"{J}/{running}/events"
    assert client.post(url, json=completed(), headers={"Authorization": ""}).status_code == 401
    # Even an administrator's token is not a launch credential.
    assert client.post(url, json=completed()).status_code == 401
    forged = launch_headers(client, running)["Authorization"][:-4] + "AAAA"
    assert client.post(url, json=completed(), headers={"Authorization": forged}).status_code == 401
    other_job = launch_headers(client, "00000000-0000-4000-8000-000000000000")
    assert client.post(url, json=completed(), headers=other_job).status_code == 403
    not_this_index = launch_headers(client, running, runs=((1, 1),))
    assert client.post(url, json=completed(), headers=not_this_index).status_code == 403
    state = client.get(f"{J}/{running}").json()
    assert state["status"]["state"] == "running"
    assert client.get(f"{J}/{running}/gate").json().get("decision") != "passed"
    client.delete(f"{J}/{running}")


def test_an_event_of_an_earlier_attempt_is_ignored(
    client: TestClient, running: str, database_url: str
) -> None:
    """A stale `completed` from attempt 1 is not applied to attempt 2 (issue 21, item 2)."""
    url = f"{J}/{running}/events"
    failed = completed()
    failed["benchmark_status_event"].update(status="failed", metrics={})
    failed["benchmark_status_event"]["error_message"] = {"message": "boom", "message_code": "adapter_error"}
    assert client.post(url, json=failed, headers=launch_headers(client, running)).status_code == 204
    wait_for(lambda: client.get(f"{J}/{running}").json()["status"]["state"] == "failed", timeout=30)
    assert client.post(f"{J}/{running}/retry").status_code == 202

    def relaunched() -> bool:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT dispatched_attempt FROM benchmark_runs").fetchone()
        return row is not None and row[0] == 2

    wait_for(relaunched, timeout=60)
    stale = launch_headers(client, running, runs=((0, 1),))
    assert client.post(url, json=completed(1.0), headers=stale).status_code == 204
    document = client.get(f"{J}/{running}").json()
    assert document["status"]["state"] != "completed"  # attempt 2 runs: attempt 1's score is not its
    current = launch_headers(client, running, runs=((0, 2),))
    assert client.post(url, json=completed(0.25), headers=current).status_code == 204
    done = wait_for(
        lambda: (d := client.get(f"{J}/{running}").json())["status"]["state"] == "completed" and d
    )
    assert done["results"]["benchmarks"][0]["metrics"]["score"] == 0.25


def test_tenants_cannot_run_commands_on_the_hub(make_client: Callable[..., TestClient]) -> None:
    client = make_client(local_command_tenants=())
    refused = client.post(P, json=IDLE)
    assert refused.status_code == 403
    assert refused.json()["message_code"] == "local_command_not_allowed"
    assert [e["path"] for e in refused.json()["errors"]] == ["runtime.local.command"]
    trusted = make_client(local_command_tenants=("default",))
    assert trusted.post(P, json=IDLE).status_code == 201
    # Taking a k8s provider and patching a command into it is refused the same way.
    k8s = {**IDLE, "id": "k8s-only", "runtime": {"k8s": {"image": "quay.io/x/y:1"}}}
    assert client.post(P, json=k8s).status_code == 201
    patched = client.patch(f"{P}/k8s-only", json={"runtime": {"local": {"command": "id > /tmp/pwned"}}})
    assert patched.status_code == 403


def test_adapters_do_not_inherit_the_hubs_secrets(
    start_hub: Callable[..., LiveServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://secret@db/assay")
    monkeypatch.setenv("ASSAY_WEBHOOK_SECRETS", '{"default": {"github": "s3cret"}}')
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    assert "DATABASE_URL" not in adapter_environment(os.environ)
    seen = tmp_path / "env.json"
    script = f"import json, os; json.dump(dict(os.environ), open({str(seen)!r}, 'w'))"
    hub = start_hub()
    with hub.client() as api:
        provider = {
            **IDLE,
            "id": "envdump",
            "runtime": {"local": {"command": f'{sys.executable} -c "{script}"'}},
        }
        assert api.post(P, json=provider).status_code == 201
        assert api.post(J, json=job(benchmarks=[{"id": "wait", "provider_id": "envdump"}])).status_code == 202
    wait_for(seen.is_file, timeout=60)
    environment = json.loads(seen.read_text())
    for secret in (
        "DATABASE_URL",
        "ASSAY_WEBHOOK_SECRETS",
        "AWS_SECRET_ACCESS_KEY",
        "ASSAY_LAUNCH_SIGNING_KEY",
    ):
        assert secret not in environment
    assert "PATH" in environment and "EVALHUB_JOB_SPEC_PATH" in environment


def test_no_cross_origin_browser_and_no_foreign_host(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    evil = {"Origin": "http://evil.example"}
    answer = client.post(P, json=IDLE, headers=evil)
    assert "access-control-allow-origin" not in answer.headers
    preflight = client.options(
        P,
        headers={
            **evil,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    rebound = client.get(
        P, headers={"Host": "evil.example"}
    )  # DNS rebinding: a page's host name, our address
    assert rebound.status_code == 400 and rebound.json()["message_code"] == "invalid_host_header"
    allowed = make_client(cors_origins=("https://dash.example",))
    ok = allowed.options(
        P,
        headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "GET"},
    )
    assert ok.headers.get("access-control-allow-origin") == "https://dash.example"


def test_credentials_go_only_where_a_tenant_may_send_them(
    client: TestClient, make_client: Callable[..., TestClient]
) -> None:
    assert client.post(P, json=IDLE).status_code == 201
    metadata = client.post(J, json=job(model={"url": "http://169.254.169.254/latest/meta-data", "name": "m"}))
    assert metadata.status_code == 400 and metadata.json()["message_code"] == "egress_refused"
    assert [e["path"] for e in metadata.json()["errors"]] == ["model.url"]
    oci = job(
        exports={"oci": {"coordinates": {"oci_host": "metadata.google.internal", "oci_repository": "a/b"}}}
    )
    assert [e["path"] for e in client.post(J, json=oci).json()["errors"]] == [
        "exports.oci.coordinates.oci_host"
    ]
    cluster = make_client(mode="cluster", egress_allow_loopback=None)  # the default: no loopback in a cluster
    loopback = cluster.post(J, json=job(), headers={"X-Tenant": "team-a"})
    assert loopback.status_code == 400 and loopback.json()["errors"][0]["code"] == "egress_refused"


def test_the_registry_ingress_needs_a_sender(
    make_client: Callable[..., TestClient], issue_token: Any
) -> None:
    client = make_client(webhook_secrets={"default": {"cloudevents": "ce-secret"}})
    event = {
        "specversion": "1.0",
        "id": "v1",
        "source": "registry",
        "type": "dev.assay.registry.model_version.created.v1",
        "datacontenttype": "application/json",
        "data": {"name": "m", "version": "1", "serving_endpoint": "http://169.254.169.254/"},
    }
    body = json.dumps(event).encode()
    structured = {"Content-Type": "application/cloudevents+json"}
    anonymous = client.post("/api/v1/events", content=body, headers={**structured, "Authorization": ""})
    assert anonymous.status_code == 401
    wrong = "sha256=" + hmac.new(b"guess", body, hashlib.sha256).hexdigest()
    forged = client.post(
        "/api/v1/events",
        content=body,
        headers={**structured, "Authorization": "", "X-Assay-Signature": wrong},
    )
    assert forged.status_code == 401
    viewer = issue_token("vic", {"default": "viewer"})
    assert client.post("/api/v1/events", content=body, headers={**structured, **viewer}).status_code == 403
    signed = "sha256=" + hmac.new(b"ce-secret", body, hashlib.sha256).hexdigest()
    answer = client.post(
        "/api/v1/events",
        content=body,
        headers={**structured, "Authorization": "", "X-Assay-Signature": signed},
    )
    assert answer.status_code not in (401, 403), answer.text


def test_policy_patterns_are_linear_time(client: TestClient) -> None:
    policy = {
        "name": "greedy",
        "rule": {"model_name_regex": "(a+)+$"},
        "benchmarks": [{"id": "wait", "provider_id": "idle"}],
        "model": {"url": "http://127.0.0.1:9/v1"},
    }
    created = client.post("/api/v1/evaluations/policies", json=policy)
    assert created.status_code in (201, 400), created.text
    backreference = {**policy, "name": "backref", "rule": {"model_name_regex": "(a)\\1"}}
    refused = client.post("/api/v1/evaluations/policies", json=backreference)
    assert refused.status_code == 400
    assert any("RE2" in e["message"] for e in refused.json()["errors"])
    from assay.triggers.matching import re2

    assert re2.fullmatch("(a+)+$", "a" * 40 + "!") is None  # linear: RE2 has no catastrophic backtracking


def test_priority_and_size_are_set_by_the_hub(
    make_client: Callable[..., TestClient], issue_token: Callable[..., dict[str, str]]
) -> None:
    client = make_client(max_benchmarks_per_job=2)
    assert client.post(P, json=IDLE).status_code == 201
    editor = issue_token("ed", {"default": "editor"})
    bumped = client.post(J, json=job(custom={"trigger": "ci"}), headers=editor)
    assert bumped.status_code == 403 and bumped.json()["errors"][0]["path"] == "custom.trigger"
    three = job(benchmarks=[{"id": "wait", "provider_id": "idle"}] * 3)
    too_many = client.post(J, json=three, headers=editor)
    assert too_many.status_code == 400 and too_many.json()["message_code"] == "too_many_benchmarks"


def test_metric_labels_are_bounded() -> None:
    metrics = Metrics(max_provider_labels=3)
    labels = {metrics.provider_label(f"tenant-provider-{i}") for i in range(100)}
    assert labels == {"tenant-provider-0", "tenant-provider-1", "tenant-provider-2", "other"}


def test_every_change_is_audited(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="assay.audit")
    client.post(P, json=IDLE)
    client.delete(f"{P}/idle", headers={"Authorization": "Bearer wrong"})
    records = [r.audit for r in caplog.records if r.name == "assay.audit"]  # type: ignore[attr-defined]
    assert {
        "subject": "test-admin",
        "tenant": "default",
        "resource": "providers",
        "verb": "create",
        "route": "POST /api/v1/evaluations/providers",
        "status": 201,
        "outcome": "allowed",
    } in records
    denied = [r for r in records if r["verb"] == "delete"]
    assert denied and denied[0]["outcome"] == "denied" and denied[0]["subject"] is None


def test_a_status_events_audit_names_the_launchs_tenant(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A status event carries no X-Tenant: its tenant is the one its launch credential names, in the audit
    # record's field and in its message alike (the message read "in -").
    caplog.set_level(logging.INFO, logger="assay.audit")
    demo = [{"id": "bench_a", "provider_id": "demo"}]  # a system provider: every tenant sees it
    created = client.post(J, json=job(name="audited", benchmarks=demo), headers={"X-Tenant": "team-a"})
    assert created.status_code == 202, created.text
    job_id = created.json()["resource"]["id"]
    event = {"benchmark_status_event": {"provider_id": "demo", "id": "bench_a", "status": "running"}}
    headers = launch_headers(client, job_id, tenant="team-a")
    assert client.post(f"{J}/{job_id}/events", json=event, headers=headers).status_code == 204
    records = [r for r in caplog.records if r.name == "assay.audit"]
    audited = [r for r in records if r.audit["route"].endswith("/events")]  # type: ignore[attr-defined]
    assert audited, [r.getMessage() for r in records]
    assert audited[0].audit["tenant"] == "team-a"  # type: ignore[attr-defined]
    assert audited[0].getMessage() == f"POST {J}/{job_id}/events by launch:{job_id} in team-a: 204"


def test_readiness_does_not_echo_errors(client: TestClient) -> None:
    ready = client.get("/readyz", headers={"Authorization": ""})
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
    assert client.get("/docs", headers={"Authorization": ""}).status_code == 401


def test_the_dashboards_session_reaches_the_api_with_csrf(client: TestClient) -> None:
    from assay.ui import SessionCookies
    from tests.conftest import ADMIN_TOKEN

    no_bearer = {"Authorization": ""}
    signed = client.post(
        "/ui/sign-in",
        data={"token": ADMIN_TOKEN, "tenant": "default", "next": "/ui"},
        headers={**no_bearer, "Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    assert "httponly" in signed.headers["set-cookie"].lower()
    assert "samesite=strict" in signed.headers["set-cookie"].lower()
    assert client.get(P, headers=no_bearer).status_code == 200  # the cookie stands for the token
    assert client.post(P, json=IDLE, headers=no_bearer).status_code == 403  # no CSRF token: refused
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    session = SessionCookies(client.app.state.settings).session({"cookie": cookie})  # type: ignore[attr-defined]
    assert session is not None
    created = client.post(P, json=IDLE, headers={**no_bearer, "X-CSRF-Token": session.csrf})
    assert created.status_code == 201, created.text
    client.cookies.clear()
    assert client.get(P, headers=no_bearer).status_code == 401


def test_logs_are_read_under_one_cap(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_log_bytes=4096)
    chatty = {
        **IDLE,
        "id": "chatty",
        "runtime": {
            "local": {
                "command": f"{sys.executable} -c \"print('x' * 100 + chr(10)) or [print(i, 'y' * 200) for i in range(2000)]\""
            }
        },
    }
    assert client.post(P, json=chatty).status_code == 201
    job_id = client.post(J, json=job(benchmarks=[{"id": "wait", "provider_id": "chatty"}] * 2)).json()[
        "resource"
    ]["id"]
    wait_for(
        lambda: client.get(f"{J}/{job_id}").json()["status"]["state"] in ("failed", "completed"), timeout=90
    )
    logs = client.get(f"{J}/{job_id}/logs", params={"tail_lines": -1})
    assert logs.status_code == 200
    assert logs.headers.get("x-log-truncated") == "true"
    assert len(logs.content) < 4096 + 1024  # two benchmarks' shares of the cap, plus their section headers
    assert "1999 " in logs.text  # the tail is what is kept
