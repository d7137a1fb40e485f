"""The dead-letter sink on the callback function: real CloudEvents (binary and structured mode, built by the
cloudevents library as Knative's dispatcher sends them) through the app into real Postgres."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent
from fastapi.testclient import TestClient

from assay.core.events import BENCHMARK_FINISHED, EVALUATION_ACCEPTED, evaluation_event
from assay.http import create_app
from assay.settings import Settings
from tests.conftest import ADMIN

DISPATCH = "http://dispatch.assay.svc.cluster.local"
AGGREGATE = "http://aggregate.assay.svc.cluster.local"


@pytest.fixture()
def callback(settings_for: Callable[..., Settings]) -> Iterator[Callable[[], TestClient]]:
    """The callback function's app as Knative runs it (cluster mode); call again for a restarted pod."""
    clients: list[TestClient] = []

    def start() -> TestClient:
        app = create_app(settings_for(mode="cluster"), "callback", load_catalogue=False, lifecycle="function")
        client = TestClient(app, raise_server_exceptions=False, headers=ADMIN)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def dead_lettered(
    kind: str = EVALUATION_ACCEPTED,
    *,
    tenant: str = "team-a",
    evaluation_id: str = "3f1c7a52-0b4e-4c55-9a55-2f0a4c1d9e11",
    destination: str = DISPATCH,
    code: str = "500",
    body: bytes = b'{"message_code":"internal_server_error"}',
    index: int | None = None,
) -> CloudEvent:
    """An Assay event as the broker hands it to the dead-letter sink: its own attributes and data plus
    Knative's three error extensions."""
    event = evaluation_event(kind, tenant, "submit", evaluation_id, index=index)
    attributes: dict[str, Any] = {
        **event.attributes(),
        "knativeerrordest": destination,
        "knativeerrorcode": code,
        "knativeerrordata": base64.b64encode(body).decode(),
    }
    return CloudEvent(attributes, event.data)


def post(client: TestClient, event: CloudEvent, mode: str = "binary") -> Any:
    headers, body = to_binary(event) if mode == "binary" else to_structured(event)
    return client.post("/api/v1/dead-letters", headers=headers, content=body)


def listed(client: TestClient, tenant: str = "team-a", **params: str) -> dict[str, Any]:
    answer = client.get("/api/v1/dead-letters", headers={"X-Tenant": tenant}, params=params)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_binary_dead_letter_is_recorded_with_knatives_error_extensions(
    callback: Callable[[], TestClient], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = callback()
    event = dead_lettered(body=b'{"message_code":"service_unavailable","message":"database away"}')
    with caplog.at_level(logging.WARNING, logger="assay.http.deadletters"):
        answer = post(client, event, "binary")
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert stored["id"] == event["id"]
    assert stored["source"] == "/assay/team-a/submit"
    assert stored["type"] == EVALUATION_ACCEPTED
    assert stored["tenant"] == "team-a"
    assert stored["evaluation_id"] == event["correlationid"]
    assert stored["subject"] == f"evaluations/{event['correlationid']}"
    assert stored["error"] == {
        "destination": DISPATCH,
        "code": 500,
        "data": '{"message_code":"service_unavailable","message":"database away"}',
    }
    assert stored["destinations"] == [DISPATCH]
    assert stored["data"]["evaluation_id"] == event["correlationid"]
    assert stored["attributes"]["knativeerrorcode"] == "500"
    assert any("dead letter" in r.getMessage() and event["id"] in r.getMessage() for r in caplog.records)

    # In Postgres itself, not in the process: the row is there for any replica and for SQL.
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT type, error_dest, error_code, error_data, tenant FROM dead_letters WHERE source = %s AND id = %s",
            [event["source"], event["id"]],
        ).fetchone()
    assert row == (
        EVALUATION_ACCEPTED,
        DISPATCH,
        500,
        '{"message_code":"service_unavailable","message":"database away"}',
        "team-a",
    )


def test_structured_dead_letter_is_recorded(callback: Callable[[], TestClient]) -> None:
    client = callback()
    event = dead_lettered(BENCHMARK_FINISHED, destination=AGGREGATE, code="422", index=2)
    answer = post(client, event, "structured")
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert stored["type"] == BENCHMARK_FINISHED
    assert stored["subject"].endswith("/benchmarks/2")
    assert stored["error"]["destination"] == AGGREGATE
    assert stored["error"]["code"] == 422
    assert stored["data"]["benchmark_index"] == 2


def test_redelivery_changes_nothing_and_a_second_subscriber_is_added(
    callback: Callable[[], TestClient],
) -> None:
    client = callback()
    event = dead_lettered(BENCHMARK_FINISHED, destination=AGGREGATE, index=0)
    assert post(client, event, "binary").status_code == 201
    again = post(client, event, "structured")  # the same (source, id), redelivered in the other mode
    assert again.status_code == 200
    assert again.json()["destinations"] == [AGGREGATE]
    # benchmark.finished has two Triggers: the same event dead-lettered from dispatch is one more destination.
    from_dispatch = CloudEvent({**event.get_attributes(), "knativeerrordest": DISPATCH}, event.data)
    answer = post(client, from_dispatch, "binary")
    assert answer.status_code == 200
    assert answer.json()["destinations"] == [AGGREGATE, DISPATCH]
    assert answer.json()["error"]["destination"] == AGGREGATE  # the first failure is kept as it was
    assert post(client, from_dispatch, "binary").json()["destinations"] == [AGGREGATE, DISPATCH]
    page = listed(client)
    assert page["total_count"] == 1
    assert [item["id"] for item in page["items"]] == [event["id"]]


def test_dead_letters_are_counted_once_in_metrics(callback: Callable[[], TestClient]) -> None:
    client = callback()
    event = dead_lettered(code="503")
    post(client, event)
    post(client, event)
    post(client, dead_lettered(code="503"))
    metrics = client.get("/metrics").text
    assert f'assay_dead_letters_total{{code="503",type="{EVALUATION_ACCEPTED}"}} 2.0' in metrics


def test_dead_letters_survive_a_restart_and_list_per_tenant(callback: Callable[[], TestClient]) -> None:
    first = callback()
    mine = [dead_lettered(evaluation_id=f"eval-{n}") for n in range(3)]
    for event in mine:
        assert post(first, event).status_code == 201
    assert post(first, dead_lettered(tenant="team-b")).status_code == 201
    restarted = callback()  # a new pod (scale from zero) over the same database
    page = listed(restarted)
    assert page["total_count"] == 3
    assert [item["id"] for item in page["items"]] == [e["id"] for e in reversed(mine)]  # newest first
    assert listed(restarted, "team-b")["total_count"] == 1
    assert listed(restarted, "team-c")["items"] == []
    one = listed(restarted, evaluation_id="eval-1")
    assert [item["evaluation_id"] for item in one["items"]] == ["eval-1"]
    assert listed(restarted, type=BENCHMARK_FINISHED)["total_count"] == 0
    paged = listed(restarted, limit="2")
    assert len(paged["items"]) == 2 and "next" in paged
    assert len(restarted.get(paged["next"]["href"], headers={"X-Tenant": "team-a"}).json()["items"]) == 1


def test_foreign_and_binary_events_are_kept_without_a_tenant(callback: Callable[[], TestClient]) -> None:
    client = callback()
    # An ApiServerSource event (no Assay source, no tenant) whose subscriber kept failing.
    foreign = CloudEvent(
        {
            "type": "dev.knative.apiserver.resource.update",
            "source": "https://10.96.0.1:443",
            "datacontenttype": "application/octet-stream",
            "knativeerrordest": "http://sweep.assay.svc.cluster.local",
            "knativeerrorcode": "504",
            "knativeerrordata": "not base64 at all!",
        },
        b"\x00\x01\xfe\xff",
    )
    answer = post(client, foreign)
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert "tenant" not in stored
    assert stored["data_base64"] == base64.b64encode(b"\x00\x01\xfe\xff").decode()
    assert stored["error"] == {
        "destination": "http://sweep.assay.svc.cluster.local",
        "code": 504,
        "data": "not base64 at all!",
    }


def test_a_request_that_is_no_cloudevent_is_refused_naming_the_attribute(
    callback: Callable[[], TestClient],
) -> None:
    client = callback()
    headers, body = to_binary(dead_lettered())
    del headers["ce-id"]
    answer = client.post("/api/v1/dead-letters", headers=headers, content=body)
    assert answer.status_code == 400
    problem = answer.json()
    assert problem["message_code"] == "invalid_cloudevent"
    assert [(e["path"], e["code"]) for e in problem["errors"]] == [("ce-id", "required")]

    headers, body = to_structured(dead_lettered())
    answer = client.post(
        "/api/v1/dead-letters", headers=headers, content=body.replace(b'"source"', b'"origin"')
    )
    assert answer.status_code == 400
    assert [(e["path"], e["code"]) for e in answer.json()["errors"]] == [("source", "required")]

    answer = client.post(
        "/api/v1/dead-letters", headers={"content-type": "application/cloudevents+json"}, content=b"{nope"
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "invalid_json"
    assert listed(client)["total_count"] == 0


def test_listing_needs_a_tenant_and_known_parameters(callback: Callable[[], TestClient]) -> None:
    client = callback()
    answer = client.get("/api/v1/dead-letters")
    assert answer.status_code == 400
    assert answer.json()["message_code"] == "missing_tenant_header"
    answer = client.get("/api/v1/dead-letters", headers={"X-Tenant": "team-a"}, params={"state": "x"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["path"] == "state"
    answer = client.get("/api/v1/dead-letters", headers={"X-Tenant": "team-a"}, params={"limit": "0"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["path"] == "limit"


def test_who_may_deliver_dead_letters(
    callback: Callable[[], TestClient], make_client: Callable[..., TestClient], issue_token: Any
) -> None:
    """In a cluster without sender identity the broker's plain delivery is recorded (only admins read it);
    on the local hub, which has no broker, only an administrator may post one."""
    headers, body = to_binary(dead_lettered())
    cluster = callback()
    assert (
        cluster.post(
            "/api/v1/dead-letters", headers={**headers, "Authorization": ""}, content=body
        ).status_code
        == 201
    )
    local = make_client()
    assert (
        local.post("/api/v1/dead-letters", headers={**headers, "Authorization": ""}, content=body).status_code
        == 401
    )
    editor = issue_token("ed", {"team-a": "editor"})
    assert local.post("/api/v1/dead-letters", headers={**headers, **editor}, content=body).status_code == 403
    already_there = local.post("/api/v1/dead-letters", headers=headers, content=body)
    assert already_there.status_code == 200


def test_an_error_code_that_is_not_a_number_is_kept_as_none(callback: Callable[[], TestClient]) -> None:
    """Knative's ``knativeerrorcode`` is read as a number only when it is ASCII digits: a superscript three
    (a digit to ``str.isdigit``, not to ``int``) was a 500 of the dead-letter sink."""
    answer = post(callback(), dead_lettered(code="\u00b3"), "structured")
    assert answer.status_code == 201, answer.text
    assert answer.json()["error"]["code"] is None


def test_a_structured_dead_letter_nested_past_the_parser_is_refused(
    callback: Callable[[], TestClient],
) -> None:
    """It was a 500 (the parser's RecursionError is no ValueError)."""
    answer = callback().post(
        "/api/v1/dead-letters",
        content=b'{"a":' * 5000 + b"1" + b"}" * 5000,
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert answer.status_code == 400, answer.text
