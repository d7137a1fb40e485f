"""The Kubeflow Model Registry poll, driven by the sweep, against a loopback server that serves the
documented v1alpha3 response shapes (``RegisteredModel``, ``ModelVersionList`` with ``nextPageToken``,
``ArtifactList`` of ``model-artifact``s, ``MetadataStringValue`` custom properties). No real registry
runs here; the shapes follow ``api/openapi/model-registry.yaml`` of kubeflow/model-registry."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from tests.conftest import LiveServer
from tests.support.waiting import wait_for
from tests.triggers.hub import answers, start
from tests.triggers.senders import job_count

API = "/api/model_registry/v1alpha3"


class FakeRegistry:
    """The registry's state and the requests it saw (the model-registry REST paths Assay uses)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.models = {"1": {"id": "1", "name": "acme-granite", "state": "LIVE"}}
        self.versions: list[dict[str, Any]] = []
        self.polls = 0
        self.app = FastAPI()
        app = self.app

        @app.get(f"{API}/model_versions")
        def versions(request: Request, pageSize: int = 100, nextPageToken: str = "") -> dict[str, Any]:
            assert request.query_params["orderBy"] == "LAST_UPDATE_TIME"
            assert request.query_params["sortOrder"] == "DESC"
            with self.lock:
                self.polls += 1
                ordered = sorted(
                    self.versions, key=lambda v: int(v["lastUpdateTimeSinceEpoch"]), reverse=True
                )
            start = int(nextPageToken or 0)
            page = ordered[start : start + pageSize]
            token = str(start + pageSize) if start + pageSize < len(ordered) else ""
            return {"items": page, "nextPageToken": token, "pageSize": pageSize, "size": len(page)}

        @app.get(f"{API}/registered_models/{{model_id}}")
        def model(model_id: str) -> dict[str, Any]:
            return self.models[model_id]

        @app.get(f"{API}/model_versions/{{version_id}}/artifacts")
        def artifacts(version_id: str) -> dict[str, Any]:
            item = {
                "artifactType": "model-artifact",
                "id": f"a{version_id}",
                "name": "weights",
                "uri": f"s3://models/granite/{version_id}",
                "modelFormatName": "vllm",
                "state": "LIVE",
            }
            return {"items": [item], "nextPageToken": "", "pageSize": 100, "size": 1}

    def put_version(self, version_id: str, name: str, updated: int, **properties: str) -> None:
        with self.lock:
            self.versions = [v for v in self.versions if v["id"] != version_id]
            self.versions.append(
                {
                    "id": version_id,
                    "name": name,
                    "registeredModelId": "1",
                    "state": "LIVE",
                    "author": "ci",
                    "createTimeSinceEpoch": "1700000000000",
                    "lastUpdateTimeSinceEpoch": str(updated),
                    "customProperties": {
                        key: {"metadataType": "MetadataStringValue", "string_value": value}
                        for key, value in properties.items()
                    },
                }
            )

    def polled(self) -> int:
        with self.lock:
            return self.polls


def test_the_sweep_polls_kubeflow_and_evaluates_each_ready_version_once(
    start_hub: Callable[..., LiveServer], tmp_path: Path
) -> None:
    registry = FakeRegistry()
    good = answers(tmp_path / "good.jsonl", 8)
    endpoint = "http://127.0.0.1:9/granite/v1"
    # 150 old versions: the first poll pages through them (page size 100).
    for i in range(150):
        registry.put_version(str(100 + i), f"0.{i}", 1_700_000_000_000 + i)
    registry.put_version("2", "1.0", 1_700_000_100_000, ready="true", serving_endpoint=endpoint)
    with LiveServer(registry.app) as fake:
        _, hub = start(
            start_hub,
            sweep_interval_seconds=0.2,
            kubeflow_registries=[{"url": fake.url, "tenant": "default", "name": "kf-prod"}],
        )
        body = {
            "id": "granite-ready",
            "name": "Granite versions marked ready",
            "rule": {
                "sources": ["kubeflow"],
                "registry": "kf-prod",
                "tags": {"ready": "true"},
                "stages": ["LIVE"],
            },
            "action": {
                "benchmarks": [{"id": "qa", "provider_id": "exact", "parameters": {"dataset": str(good)}}]
            },
        }
        assert hub.post("/api/v1/evaluations/policies", json=body).status_code == 201

        wait_for(lambda: job_count(hub) == 1, timeout=30)
        job = hub.get("/api/v1/evaluations/jobs").json()["items"][0]
        assert job["model"]["url"] == endpoint  # from the version's custom property
        assert job["custom"]["assay_trigger"] == {
            "policy_id": "granite-ready",
            "source": "kubeflow",
            "registry": "kf-prod",
            "model": "acme-granite",
            "version": "1.0",
            "event": "model_version.created",
            "delivery_id": "2@1700000100000",
        }

        seen = registry.polled()
        wait_for(lambda: registry.polled() >= seen + 3, timeout=30)
        assert job_count(hub) == 1  # remembered: later sweeps start nothing again

        # A version marked ready later (its lastUpdateTime moves) and a brand-new one: one evaluation each.
        registry.put_version("120", "0.20", 1_700_000_200_000, ready="true", serving_endpoint=endpoint)
        registry.put_version("3", "1.1", 1_700_000_300_000, ready="true", serving_endpoint=endpoint)
        wait_for(lambda: job_count(hub) == 3, timeout=30)
        seen = registry.polled()
        wait_for(lambda: registry.polled() >= seen + 3, timeout=30)
        assert job_count(hub) == 3
        versions = sorted(
            j["custom"]["assay_trigger"]["version"]
            for j in hub.get("/api/v1/evaluations/jobs").json()["items"]
        )
        assert versions == ["0.20", "1.0", "1.1"]
