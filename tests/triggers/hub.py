"""A live local hub with the exact-match test adapter, webhook secrets and answer sets of known quality."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.lifecycle.test_local_lifecycle import exact_match_provider
from tests.support.waiting import wait_for
from tests.triggers.senders import SECRETS

TERMINAL = {"completed", "failed", "cancelled", "partially_failed"}


def answers(path: Path, correct: int, total: int = 10) -> Path:
    """A recorded answer set with ``correct`` of ``total`` predictions right (exact match = correct/total)."""
    rows = [
        {"question": f"q{i}", "answer": f"a{i}", "prediction": f"a{i}" if i < correct else "wrong"}
        for i in range(total)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def start(start_hub: Callable[..., LiveServer], **settings: Any) -> tuple[LiveServer, httpx.Client]:
    server = start_hub(webhook_secrets={"default": SECRETS}, **settings)
    client = server.client(timeout=30)
    assert client.post("/api/v1/evaluations/providers", json=exact_match_provider()).status_code == 201
    return server, client


def policy(sources: list[str], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "acme-qa",
        "name": "QA of every acme version",
        "rule": {"sources": sources, "model_name": "acme-*"},
        "action": {
            "benchmarks": [{"id": "qa", "provider_id": "exact", "parameters": {"dataset": "{tag:answers}"}}],
            "endpoint": {"template": "http://127.0.0.1:9/{model}/{version}/v1"},
        },
        "gate": {"max_drop": 0.05, "sigma": 2.0, "require_thresholds": False},
    }
    body.update(overrides)
    return body


def finished(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        job = client.get(f"/api/v1/evaluations/jobs/{job_id}").json()
        return job if job["status"]["state"] in TERMINAL and "test" in job.get("results", {}) else None

    return dict(wait_for(terminal, timeout=timeout))


def sweep_claims_later(server: LiveServer, seconds: float = 3600.0) -> list[dict[str, int]]:
    """Drive the triggers' sweep steps once, on the hub's loop, as the sweep would run them ``seconds`` from now
    (every claim past its retry threshold); the counts of each step. No waiting for the periodic sweep."""
    lifecycle = server.app.state.hub.lifecycle  # type: ignore[attr-defined]
    now = lifecycle.clock
    later = dataclasses.replace(lifecycle, clock=lambda: now() + timedelta(seconds=seconds))

    async def sweep() -> list[dict[str, int]]:
        return [await step(later) for step in later.sweep_steps]

    return server.on_loop(sweep())
