"""Real payloads conform to the wire models of the snapshots: a job run end to end (submit, an adapter's
callbacks, a failed benchmark, retry, cancel), every document the API returned for it, and every
CloudEvent the hub wrote to its outbox on the way. The job models are closed (``extra="forbid"``), so a
member the models do not describe fails here before it reaches the wire unannounced."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from assay.api.job_resource import Job, JobPage
from tests.conftest import LiveServer
from tests.contract.test_snapshots import CLOUDEVENTS
from tests.lifecycle.test_local_lifecycle import exact_match_provider, job_body
from tests.support.waiting import wait_for

TERMINAL = ("completed", "failed", "partially_failed", "cancelled")


def _terminal(http: Any, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = http.get(f"/api/v1/evaluations/jobs/{job_id}").json()
        return body if body["status"]["state"] in TERMINAL else None

    return dict(wait_for(done, timeout=90))


def test_job_documents_and_events_conform_to_the_wire_models(live_hub: LiveServer) -> None:
    documents: list[dict[str, Any]] = []
    with live_hub.client() as http:
        assert http.post("/api/v1/evaluations/providers", json=exact_match_provider()).status_code == 201
        body = job_body(
            {"id": "qa", "provider_id": "exact", "parameters": {"num_examples": 5}},
            {"id": "qa_f1", "provider_id": "exact", "parameters": {"fail": "exception"}},
            {"id": "qa_f1", "provider_id": "exact", "weight": 0},
            pass_criteria={"threshold": 0.5},
            tags=["contract"],
            custom={"any": {"thing": [1, 2]}},
        )
        submitted = http.post("/api/v1/evaluations/jobs", json=body, headers={"Idempotency-Key": "k-1"})
        assert submitted.status_code == 202, submitted.text
        documents.append(submitted.json())
        job_id = submitted.json()["resource"]["id"]
        documents.append(_terminal(http, job_id))
        retried = http.post(f"/api/v1/evaluations/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        documents.append(retried.json())
        documents.append(_terminal(http, job_id))

        slow = http.post(
            "/api/v1/evaluations/jobs",
            json=job_body({"id": "qa", "provider_id": "exact", "parameters": {"sleep_seconds": 60}}),
        ).json()
        assert http.delete(f"/api/v1/evaluations/jobs/{slow['resource']['id']}").status_code == 204
        documents.append(_terminal(http, slow["resource"]["id"]))
        page = http.get("/api/v1/evaluations/jobs").json()

    for document in documents:
        Job.model_validate(document)
    JobPage.model_validate(page)
    assert {d["status"]["state"] for d in documents} >= {"partially_failed", "cancelled"}

    with psycopg.connect(live_hub.settings.database_url, row_factory=dict_row) as conn:  # type: ignore[attr-defined]
        rows = conn.execute("SELECT type, data FROM outbox ORDER BY seq").fetchall()
    seen = set()
    for row in rows:
        model = CLOUDEVENTS.get(row["type"])
        assert model is not None, f"{row['type']} has no wire model (tests/contract/test_snapshots.py)"
        model.model_validate(row["data"])
        seen.add(row["type"])
    assert seen >= {
        "dev.assay.evaluation.accepted.v1",
        "dev.assay.benchmark.finished.v1",
        "dev.assay.evaluation.finished.v1",
        "dev.assay.evaluation.retried.v1",
        "dev.assay.evaluation.cancelled.v1",
    }
