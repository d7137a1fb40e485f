"""JSON-schema snapshots of every API payload and every CloudEvent's data: a change to the wire is a
visible diff under tests/contract/schemas/, reviewed like code.

After a deliberate change, regenerate with ``ASSAY_UPDATE_SNAPSHOTS=1 pytest tests/contract`` and commit
the new snapshot together with the change (and a line in docs/compatibility.md if a client could notice).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from assay.api import (
    CloneRequest,
    Collection,
    CollectionPage,
    CollectionSpec,
    ErrorBody,
    Health,
    Provider,
    ProviderPage,
    ProviderSpec,
)
from assay.api import events as ce
from assay.api.job_resource import Job, JobPage
from assay.api.jobs import JobRequest, StatusEvent
from assay.api.policies import Policy, PolicyPage, PolicySpec
from assay.core import events
from assay.triggers.ingress import RegistryEventData

SNAPSHOTS = Path(__file__).parent / "schemas"

PAYLOADS: dict[str, type[BaseModel]] = {
    "provider-request": ProviderSpec,
    "provider": Provider,
    "provider-page": ProviderPage,
    "collection-request": CollectionSpec,
    "collection": Collection,
    "collection-page": CollectionPage,
    "collection-clone-request": CloneRequest,
    "job-request": JobRequest,
    "job": Job,
    "job-page": JobPage,
    "status-event": StatusEvent,
    "policy-request": PolicySpec,
    "policy": Policy,
    "policy-page": PolicyPage,
    "error": ErrorBody,
    "health": Health,
}

CLOUDEVENTS: dict[str, type[BaseModel]] = {
    events.EVALUATION_ACCEPTED: ce.EvaluationAcceptedData,
    events.EVALUATION_RETRIED: ce.EvaluationRetriedData,
    events.EVALUATION_CANCELLED: ce.EvaluationCancelledData,
    events.BENCHMARK_FINISHED: ce.BenchmarkFinishedData,
    events.EVALUATION_FINISHED: ce.EvaluationFinishedData,
    events.SWEEP_REQUESTED: ce.SweepRequestedData,
    events.MODEL_VERSION_CREATED: RegistryEventData,
    events.MODEL_VERSION_UPDATED: RegistryEventData,
}


def _check(name: str, model: type[BaseModel], mode: str) -> None:
    schema = model.model_json_schema(mode="validation" if mode == "validation" else "serialization")
    text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    path = SNAPSHOTS / f"{name}.json"
    if os.environ.get("ASSAY_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert path.exists(), f"no snapshot for {name}: run ASSAY_UPDATE_SNAPSHOTS=1 pytest tests/contract"
    assert json.loads(path.read_text()) == schema, (
        f"the wire schema of {name} ({model.__name__}) changed: review the diff, then regenerate with "
        "ASSAY_UPDATE_SNAPSHOTS=1 pytest tests/contract"
    )


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_api_payload_schema_is_unchanged(name: str) -> None:
    mode = "validation" if name.endswith("request") or name == "status-event" else "serialization"
    _check(f"api.{name}", PAYLOADS[name], mode)


@pytest.mark.parametrize("kind", sorted(CLOUDEVENTS))
def test_cloudevent_data_schema_is_unchanged(kind: str) -> None:
    _check(f"event.{kind}", CLOUDEVENTS[kind], "validation")


def test_every_cloudevent_type_has_a_snapshot() -> None:
    emitted = set(events.CATALOGUE) | set(events.REGISTRY_EVENTS)
    assert emitted == set(CLOUDEVENTS)
