"""Signed MLflow, GitHub and GitLab deliveries and registry CloudEvents, in the shapes the senders use:
accepted ones start exactly one evaluation; bad signatures, replays, stale timestamps, unknown tenants
and malformed bodies are refused with a clear status, and nothing is created."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assay.core.events import MODEL_VERSION_CREATED, MODEL_VERSION_UPDATED
from tests.triggers.senders import (
    SECRETS,
    github_delivery,
    github_pull_request,
    github_push,
    gitlab_delivery,
    gitlab_merge_request,
    job_count,
    mlflow_delivery,
    model_version_created,
    registry_cloudevent,
)

POLICIES = "/api/v1/evaluations/policies"


def policy(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "acme-models",
        "name": "Evaluate acme models",
        "rule": {"sources": ["mlflow", "github", "gitlab", "cloudevents"], "model_name": "acme*"},
        "action": {
            "collection": {"id": "demo-suite"},
            "endpoint": {"template": "http://models.example/{model}/{version}/v1"},
        },
    }
    body.update(overrides)
    return body


@pytest.fixture()
def hub(make_client: Callable[..., TestClient]) -> TestClient:
    client = make_client(webhook_secrets={"default": SECRETS, "team-b": {"github": "other"}})
    assert client.post(POLICIES, json=policy()).status_code == 201
    return client


def post(client: TestClient, path: str, delivery: tuple[bytes, dict[str, str]], **params: str) -> Any:
    body, headers = delivery
    return client.post(path, content=body, headers=headers, params=params)


# --- MLflow -------------------------------------------------------------------------------------------


def test_an_mlflow_model_version_starts_one_evaluation_and_a_replay_is_a_duplicate(hub: TestClient) -> None:
    delivery = mlflow_delivery(
        "model_version.created", model_version_created("acme-chat", "3", {"team": "nlp"})
    )
    first = post(hub, "/api/v1/webhooks/mlflow", delivery)
    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer["status"] == "accepted" and len(answer["job_ids"]) == 1
    job = hub.get(f"/api/v1/evaluations/jobs/{answer['job_ids'][0]}").json()
    assert (
        job["model"]["url"] == "http://models.example/acme-chat/3/v1" and job["model"]["name"] == "acme-chat"
    )
    assert job["collection"]["id"] == "demo-suite"
    assert "policy:acme-models" in job["tags"]
    assert job["custom"]["trigger"] == "registry"
    assert job["custom"]["assay_trigger"]["version"] == "3"

    again = post(hub, "/api/v1/webhooks/mlflow", delivery)  # the same delivery, replayed within the window
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate" and again.json()["job_ids"] == answer["job_ids"]
    assert job_count(hub) == 1

    # A new delivery about the same version (a tag set later) finds the evaluation already there.
    tagged = post(
        hub,
        "/api/v1/webhooks/mlflow",
        mlflow_delivery(
            "model_version_tag.set", {"name": "acme-chat", "version": "3", "key": "k", "value": "v"}
        ),
    )
    assert tagged.status_code == 200
    assert tagged.json()["reason"] == "already_evaluated" and tagged.json()["job_ids"] == answer["job_ids"]
    assert job_count(hub) == 1


def _refusals() -> list[
    tuple[str, Callable[[], tuple[bytes, dict[str, str]]], dict[str, str], int, str, str]
]:
    data = model_version_created("acme-chat", "4")

    def bad_signature() -> tuple[bytes, dict[str, str]]:
        return mlflow_delivery("model_version.created", data, secret="not-the-secret")

    def tampered() -> tuple[bytes, dict[str, str]]:
        body, headers = mlflow_delivery("model_version.created", data)
        return body.replace(b'"4"', b'"5"'), headers

    def stale() -> tuple[bytes, dict[str, str]]:
        return mlflow_delivery("model_version.created", data, timestamp=int(time.time()) - 3600)

    def future() -> tuple[bytes, dict[str, str]]:
        return mlflow_delivery("model_version.created", data, timestamp=int(time.time()) + 3600)

    def huge_timestamp() -> tuple[bytes, dict[str, str]]:
        body, headers = mlflow_delivery("model_version.created", data)
        return _resign(
            body, {**headers, "X-MLflow-Timestamp": "9" * 400}
        )  # int() takes it; time math would not

    def unsigned() -> tuple[bytes, dict[str, str]]:
        body, headers = mlflow_delivery("model_version.created", data)
        del headers["X-MLflow-Signature"]
        return body, headers

    def not_json() -> tuple[bytes, dict[str, str]]:
        body, headers = mlflow_delivery("model_version.created", data)
        body = b"{not json"
        return _resign(body, headers)

    def too_deep() -> tuple[bytes, dict[str, str]]:  # past the parser's depth: it was a 500
        _, headers = mlflow_delivery("model_version.created", data)
        return _resign(b'{"a":' * 5000 + b"1" + b"}" * 5000, headers)

    def no_version() -> tuple[bytes, dict[str, str]]:
        return mlflow_delivery("model_version.created", {"name": "acme-chat", "tags": {}})

    return [
        ("bad signature", bad_signature, {}, 401, "invalid_webhook_signature", "X-MLflow-Signature"),
        ("tampered body", tampered, {}, 401, "invalid_webhook_signature", "X-MLflow-Signature"),
        ("stale timestamp", stale, {}, 401, "stale_webhook_timestamp", "X-MLflow-Timestamp"),
        ("future timestamp", future, {}, 401, "stale_webhook_timestamp", "X-MLflow-Timestamp"),
        ("huge timestamp", huge_timestamp, {}, 401, "invalid_webhook_signature", "X-MLflow-Timestamp"),
        ("no signature", unsigned, {}, 401, "invalid_webhook_signature", "X-MLflow-Signature"),
        ("malformed JSON", not_json, {}, 400, "invalid_json_request", ""),
        ("nested too deep", too_deep, {}, 400, "request_validation_failed", "$"),
        ("missing field", no_version, {}, 400, "request_validation_failed", "data.version"),
        ("unknown tenant", no_version, {"tenant": "nobody"}, 403, "unknown_tenant", "tenant"),
    ]


def _resign(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    import base64
    import hashlib
    import hmac

    signed = f"{headers['X-MLflow-Delivery-Id']}.{headers['X-MLflow-Timestamp']}.".encode() + body
    digest = hmac.new(SECRETS["mlflow"].encode(), signed, hashlib.sha256).digest()
    return body, {**headers, "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode()}


@pytest.mark.parametrize(
    ("build", "params", "status", "code", "path"),
    [pytest.param(*case[1:], id=case[0]) for case in _refusals()],
)
def test_refused_mlflow_deliveries_create_nothing(
    hub: TestClient,
    build: Callable[[], tuple[bytes, dict[str, str]]],
    params: dict[str, str],
    status: int,
    code: str,
    path: str,
) -> None:
    body, headers = build()
    answer = hub.post("/api/v1/webhooks/mlflow", content=body, headers=headers, params=params)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error["message_code"] == code
    if path:
        assert path in [e["path"] for e in error["errors"]], error
    assert job_count(hub) == 0
    # The refused delivery was not remembered: the genuine one with the same id is accepted afterwards.
    genuine = mlflow_delivery(
        "model_version.created",
        model_version_created("acme-chat", "4"),
        delivery_id=headers["X-MLflow-Delivery-Id"],
    )
    assert post(hub, "/api/v1/webhooks/mlflow", genuine).status_code == 202
    assert job_count(hub) == 1


def test_mlflow_events_that_start_nothing_are_answered_200_with_a_reason(hub: TestClient) -> None:
    other = post(
        hub,
        "/api/v1/webhooks/mlflow",
        mlflow_delivery("registered_model.created", {"name": "acme", "tags": {}}),
    )
    assert (
        other.status_code == 200 and other.json()["reason"] == "event_not_handled: registered_model.created"
    )
    unmatched = post(
        hub,
        "/api/v1/webhooks/mlflow",
        mlflow_delivery("model_version.created", model_version_created("zeta", "1")),
    )
    assert unmatched.status_code == 200
    assert unmatched.json()["status"] == "ignored"
    assert unmatched.json()["skipped"] == [
        {"policy_id": "acme-models", "reason": "model_name_not_matched: zeta"}
    ]
    assert job_count(hub) == 0


def test_a_policy_matching_an_alias_starts_when_the_alias_is_set(hub: TestClient) -> None:
    rule = {"sources": ["mlflow"], "model_name": "acme*", "aliases": ["candidate"]}
    assert hub.delete(f"{POLICIES}/acme-models").status_code == 204
    assert hub.post(POLICIES, json=policy(rule=rule)).status_code == 201
    created = post(
        hub,
        "/api/v1/webhooks/mlflow",
        mlflow_delivery("model_version.created", model_version_created("acme", "5")),
    )
    assert created.status_code == 200 and created.json()["skipped"][0]["reason"] == "alias_not_matched"
    alias = post(
        hub,
        "/api/v1/webhooks/mlflow",
        mlflow_delivery(
            "model_version_alias.created", {"name": "acme", "alias": "candidate", "version": "5"}
        ),
    )
    assert alias.status_code == 202 and len(alias.json()["job_ids"]) == 1


# --- GitHub -------------------------------------------------------------------------------------------


def test_github_push_and_pull_request_start_evaluations(hub: TestClient) -> None:
    push = post(hub, "/api/v1/webhooks/github", github_delivery("push", github_push()))
    assert push.status_code == 202, push.text
    job = hub.get(f"/api/v1/evaluations/jobs/{push.json()['job_ids'][0]}").json()
    assert job["custom"]["trigger"] == "ci" and job["custom"]["assay_trigger"]["event"] == "push"
    assert job["model"]["url"] == f"http://models.example/acme/llm/{'a' * 40}/v1"

    pr = post(hub, "/api/v1/webhooks/github", github_delivery("pull_request", github_pull_request()))
    assert pr.status_code == 202 and pr.json()["job_ids"] != push.json()["job_ids"]
    closed = post(
        hub, "/api/v1/webhooks/github", github_delivery("pull_request", github_pull_request("closed"))
    )
    assert closed.status_code == 200 and closed.json()["reason"] == "action_not_handled: closed"
    ping = post(hub, "/api/v1/webhooks/github", github_delivery("ping", {"zen": "Keep it simple."}))
    assert ping.status_code == 200 and ping.json()["reason"] == "ping"
    assert job_count(hub) == 2


def test_github_refusals_create_nothing(hub: TestClient) -> None:
    body, headers = github_delivery("push", github_push(), secret="wrong")
    refused = hub.post("/api/v1/webhooks/github", content=body, headers=headers)
    assert refused.status_code == 401 and refused.json()["errors"][0]["path"] == "X-Hub-Signature-256"

    body, headers = github_delivery("push", github_push())
    del headers["X-Hub-Signature-256"]
    assert hub.post("/api/v1/webhooks/github", content=body, headers=headers).status_code == 401

    body, headers = github_delivery("push", github_push())
    del headers["X-GitHub-Delivery"]
    missing = hub.post("/api/v1/webhooks/github", content=body, headers=headers)
    assert missing.status_code == 400 and missing.json()["errors"][0]["path"] == "X-GitHub-Delivery"

    incomplete = github_push()
    del incomplete["after"]
    malformed = post(hub, "/api/v1/webhooks/github", github_delivery("push", incomplete))
    assert malformed.status_code == 400 and [e["path"] for e in malformed.json()["errors"]] == ["after"]

    # team-b has a GitHub secret of its own; another tenant's signature is refused, a tenant without one is 403.
    assert (
        post(
            hub, "/api/v1/webhooks/github", github_delivery("push", github_push()), tenant="team-b"
        ).status_code
        == 401
    )
    assert (
        post(hub, "/api/v1/webhooks/gitlab", gitlab_delivery("Push Hook", {}), tenant="team-b").status_code
        == 403
    )
    assert job_count(hub) == 0

    delivery = github_delivery("push", github_push())
    assert post(hub, "/api/v1/webhooks/github", delivery).status_code == 202
    replay = post(hub, "/api/v1/webhooks/github", delivery)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert job_count(hub) == 1


# --- GitLab -------------------------------------------------------------------------------------------


def test_gitlab_merge_request_with_token_and_idempotency_key(hub: TestClient) -> None:
    delivery = gitlab_delivery("Merge Request Hook", gitlab_merge_request())
    first = post(hub, "/api/v1/webhooks/gitlab", delivery)
    assert first.status_code == 202, first.text
    job = hub.get(f"/api/v1/evaluations/jobs/{first.json()['job_ids'][0]}").json()
    assert job["custom"]["assay_trigger"]["registry"] == "gitlab.example.com"
    retried = post(hub, "/api/v1/webhooks/gitlab", delivery)
    assert retried.status_code == 200 and retried.json()["status"] == "duplicate"

    wrong = post(
        hub,
        "/api/v1/webhooks/gitlab",
        gitlab_delivery("Merge Request Hook", gitlab_merge_request(), token="x"),
    )
    assert wrong.status_code == 401 and wrong.json()["errors"][0]["path"] == "X-Gitlab-Token"
    broken = gitlab_merge_request()
    del broken["object_attributes"]["last_commit"]
    malformed = post(hub, "/api/v1/webhooks/gitlab", gitlab_delivery("Merge Request Hook", broken))
    assert malformed.status_code == 400
    assert [e["path"] for e in malformed.json()["errors"]] == ["object_attributes.last_commit"]
    merged = post(
        hub, "/api/v1/webhooks/gitlab", gitlab_delivery("Merge Request Hook", gitlab_merge_request("merge"))
    )
    assert merged.status_code == 200 and merged.json()["status"] == "ignored"
    assert job_count(hub) == 1


# --- registry CloudEvents -----------------------------------------------------------------------------


def _data(version: str, **extra: Any) -> dict[str, Any]:
    return {"registry": "https://mlflow.example.com", "model_name": "acme-chat", "version": version, **extra}


def test_registry_cloudevents_binary_and_structured(hub: TestClient) -> None:
    binary = post(
        hub,
        "/api/v1/events",
        registry_cloudevent(
            MODEL_VERSION_CREATED,
            _data("1", serving_endpoint="http://acme-chat-v1.models.svc/v1"),
            event_id="e-1",
        ),
    )
    assert binary.status_code == 202, binary.text
    job = hub.get(f"/api/v1/evaluations/jobs/{binary.json()['job_ids'][0]}").json()
    assert job["model"]["url"] == "http://acme-chat-v1.models.svc/v1"  # the registry's endpoint wins

    structured = {
        "specversion": "1.0",
        "type": MODEL_VERSION_UPDATED,
        "source": "/registry/mlflow-prod",
        "id": "e-2",
        "datacontenttype": "application/json",
        "data": _data("2", aliases=["champion"], stage="Production"),
    }
    answer = hub.post(
        "/api/v1/events",
        content=json.dumps(structured),
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert answer.status_code == 202, answer.text
    assert (
        post(
            hub, "/api/v1/events", registry_cloudevent(MODEL_VERSION_CREATED, _data("1"), event_id="e-1")
        ).json()["status"]
        == "duplicate"
    )

    bad = post(
        hub, "/api/v1/events", registry_cloudevent(MODEL_VERSION_CREATED, {"registry": "r"}, event_id="e-3")
    )
    assert bad.status_code == 400
    assert sorted(e["path"] for e in bad.json()["errors"]) == ["data.model_name", "data.version"]
    wrong_type = post(
        hub, "/api/v1/events", registry_cloudevent("dev.example.other.v1", _data("9"), event_id="e-4")
    )
    assert wrong_type.status_code == 400 and wrong_type.json()["message_code"] == "unsupported_event_type"
    not_an_event = hub.post("/api/v1/events", json=_data("9"))
    assert not_an_event.status_code == 400 and not_an_event.json()["message_code"] == "invalid_cloudevent"
    assert job_count(hub) == 2


def test_secrets_from_a_mounted_file_are_reread_when_rotated(
    make_client: Callable[..., TestClient], tmp_path: Any
) -> None:
    secrets = tmp_path / "webhook-secrets.yaml"
    secrets.write_text("default:\n  mlflow: first-secret\n")
    client = make_client(webhook_secrets_file=secrets)
    assert client.post(POLICIES, json=policy()).status_code == 201
    data = model_version_created("acme-chat", "7")
    accepted = post(
        client,
        "/api/v1/webhooks/mlflow",
        mlflow_delivery("model_version.created", data, secret="first-secret"),
    )
    assert accepted.status_code == 202
    secrets.write_text("default:\n  mlflow: second-secret\n")
    import os

    os.utime(secrets, (time.time() + 5, time.time() + 5))  # a rotation is a new mtime
    old = post(
        client,
        "/api/v1/webhooks/mlflow",
        mlflow_delivery("model_version.created", data, secret="first-secret"),
    )
    assert old.status_code == 401
    new = post(
        client,
        "/api/v1/webhooks/mlflow",
        mlflow_delivery("model_version.created", data, secret="second-secret"),
    )
    assert new.status_code == 200 and new.json()["reason"] == "already_evaluated"
