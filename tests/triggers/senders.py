"""Deliveries in the exact shapes MLflow 3, GitHub and GitLab send them, signed the way each signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx

SECRETS = {"github": "gh-secret-1", "gitlab": "gl-token-1", "mlflow": "mlflow-secret-1"}


def mlflow_delivery(
    event: str,
    data: dict[str, Any],
    *,
    secret: str = SECRETS["mlflow"],
    delivery_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers as ``mlflow.webhooks.delivery._send_webhook_request`` builds them."""
    entity, action = event.rsplit(".", 1)
    body = json.dumps(
        {"entity": entity, "action": action, "timestamp": "2025-06-01T12:00:00+00:00", "data": data}
    )
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signed = f"{delivery_id}.{stamp}.{body}"
    signature = base64.b64encode(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": f"v1,{signature}",
    }
    return body.encode(), headers


def model_version_created(name: str, version: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "source": f"models:/m-{version}",
        "run_id": "abcd1234abcd5678",
        "tags": tags or {},
        "description": None,
    }


def github_delivery(
    event: str, payload: dict[str, Any], *, secret: str = SECRETS["github"], delivery_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc123",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "12345",
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def github_push(repo: str = "acme/llm", branch: str = "main", sha: str = "a" * 40) -> dict[str, Any]:
    return {
        "ref": f"refs/heads/{branch}",
        "before": "0" * 39 + "1",
        "after": sha,
        "created": False,
        "deleted": False,
        "forced": False,
        "repository": {
            "id": 1,
            "name": repo.split("/")[1],
            "full_name": repo,
            "html_url": f"https://github.com/{repo}",
        },
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "head_commit": {"id": sha, "timestamp": "2025-06-01T12:00:00+02:00", "message": "train v2"},
        "commits": [],
    }


def github_pull_request(action: str = "opened", sha: str = "b" * 40) -> dict[str, Any]:
    return {
        "action": action,
        "number": 7,
        "pull_request": {
            "number": 7,
            "state": "open",
            "head": {"ref": "feature", "sha": sha},
            "base": {"ref": "main", "sha": "c" * 40},
            "updated_at": "2025-06-02T08:00:00Z",
        },
        "repository": {"full_name": "acme/llm", "html_url": "https://github.com/acme/llm"},
    }


def gitlab_delivery(
    event: str, payload: dict[str, Any], *, token: str = SECRETS["gitlab"], key: str | None = None
) -> tuple[bytes, dict[str, str]]:
    return json.dumps(payload).encode(), {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.6.0",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "Idempotency-Key": key or str(uuid.uuid4()),
    }


def gitlab_merge_request(action: str = "open", sha: str = "d" * 40) -> dict[str, Any]:
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"username": "dev"},
        "project": {
            "id": 3,
            "path_with_namespace": "acme/llm",
            "web_url": "https://gitlab.example.com/acme/llm",
        },
        "object_attributes": {
            "iid": 12,
            "action": action,
            "source_branch": "feature",
            "target_branch": "main",
            "last_commit": {"id": sha, "timestamp": "2025-06-03T10:00:00+00:00", "message": "tune"},
            "updated_at": "2025-06-03 10:00:01 UTC",
        },
    }


def registry_cloudevent(
    kind: str, data: dict[str, Any], *, event_id: str, source: str = "/registry/mlflow-prod"
) -> tuple[bytes, dict[str, str]]:
    """Binary mode, as a Knative Trigger delivers it."""
    return json.dumps(data).encode(), {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": kind,
        "ce-source": source,
        "ce-id": event_id,
    }


def job_count(client: httpx.Client | Any) -> int:
    return int(client.get("/api/v1/evaluations/jobs").json()["total_count"])
