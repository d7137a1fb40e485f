"""Bad input of every kind gets a clear 4xx naming the problem, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import launch_headers
from tests.http.test_collections import collection_body
from tests.http.test_providers import provider_body
from tests.support.waiting import wait_for

P = "/api/v1/evaluations/providers"
C = "/api/v1/evaluations/collections"


def assert_nothing_created(client: TestClient) -> None:
    assert client.get(P).json()["total_count"] == 1
    assert client.get(C).json()["total_count"] == 1


@pytest.mark.parametrize("path", [P, C])
def test_broken_json(client: TestClient, path: str) -> None:
    response = client.post(path, content=b'{"name": "x",', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert body["message_code"] == "invalid_json_request"
    assert set(body) == {"message_code", "message", "trace", "detail", "errors"}
    assert response.headers["x-global-transaction-id"] == body["trace"]
    assert_nothing_created(client)


def test_wrong_types_are_all_listed(client: TestClient) -> None:
    body = provider_body(name=5, tags="not-a-list")
    body["benchmarks"][0]["num_few_shot"] = "many"
    response = client.post(P, json=body)
    assert response.status_code == 400
    paths = {e["path"] for e in response.json()["errors"]}
    assert paths == {"name", "tags", "benchmarks[0].num_few_shot"}
    assert_nothing_created(client)


def test_unknown_fields_are_named(client: TestClient) -> None:
    response = client.post(C, json=collection_body(pass_critera={"threshold": 0.5}))
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "pass_critera", "code": "unknown_field", "message": "unknown field 'pass_critera'"}
    ]
    body = collection_body()
    body["benchmarks"][0]["wieght"] = 3
    nested = client.post(C, json=body)
    assert [e["path"] for e in nested.json()["errors"]] == ["benchmarks[0].wieght"]
    assert_nothing_created(client)


def test_body_that_is_not_an_object(client: TestClient) -> None:
    for payload in ([1, 2], "text", 3):
        response = client.post(P, json=payload)
        assert response.status_code == 400
        assert response.json()["message_code"] == "request_validation_failed"
    assert_nothing_created(client)


def test_huge_body_is_refused(make_client: Callable[..., TestClient]) -> None:
    small = make_client(max_body_bytes=4096)
    big = provider_body(description="x" * 1000, tags=[f"t{i}" for i in range(1000)])
    response = small.post(P, content=json.dumps(big), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["message_code"] == "request_body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming too
        for _ in range(10):
            yield b" " * 1000

    streamed = small.post(P, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert small.get(P).json()["total_count"] == 1


@pytest.mark.parametrize(
    "name",
    ["x'; DROP TABLE providers; --", 'a" OR 1=1 --', "%' OR '%'='", "\\x00", "$$; select pg_sleep(5); $$"],
)
def test_sql_metacharacters_are_just_text(client: TestClient, name: str) -> None:
    created = client.post(
        P, json=provider_body(name=name, tags=[name.replace(",", "").replace("|", "") or "t"])
    )
    assert created.status_code == 201, created.text
    found = client.get(P, params={"name": name.replace(",", "").replace("|", "")})
    assert found.status_code == 200
    assert client.get(P, params={"tags": "' OR 1=1 --"}).json()["total_count"] == 0
    assert client.get(f"{P}/{name}").status_code == 404
    assert client.get(P).json()["total_count"] == 2


def test_query_parameters_are_checked(make_client: Callable[..., TestClient]) -> None:
    client = make_client(list_max_limit=100)
    unknown = client.get(P, params={"colour": "blue"})
    assert unknown.status_code == 400
    assert unknown.json()["message_code"] == "query_bad_parameter"
    for params in ({"limit": "-1"}, {"limit": "0"}, {"limit": "abc"}, {"limit": "101"}, {"offset": "-5"}):
        response = client.get(P, params=params)
        assert response.status_code == 400, params
        assert response.json()["message_code"] == "query_parameter_invalid"
    assert client.get(P, params={"benchmarks": "maybe"}).status_code == 400
    assert client.get(P, params={"scope": "everything"}).status_code == 400
    both = client.get(P, params={"scope": "system", "owner": "system"})
    assert both.json()["message_code"] == "query_parameter_mismatch"
    assert client.get(C, params={"sort": "id; drop"}).status_code == 400


def test_pagination_links_advance_and_stop(client: TestClient) -> None:
    for i in range(4):
        assert client.post(P, json=provider_body(name=f"p{i}")).status_code == 201
    seen: list[str] = []
    href = f"{P}?limit=2"
    while href:
        page = client.get(href).json()
        assert page["total_count"] == 5 and page["limit"] == 2
        seen += [p["name"] for p in page["items"]]
        href = page.get("next", {}).get("href")
    assert seen == ["Demo framework", "p0", "p1", "p2", "p3"]


def test_unknown_route_and_method(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["message_code"] == "resource_not_found"
    wrong = client.post("/api/v1/health")
    assert wrong.status_code == 405 and wrong.json()["message_code"] == "method_not_allowed"


def test_bodiless_requests_with_json_content_type(client: TestClient) -> None:
    """eval-hub-sdk sends Content-Type: application/json on every request, GET and DELETE included."""
    headers = {"Content-Type": "application/json"}
    assert client.get(P, headers=headers).status_code == 200
    pid = client.post(P, json=provider_body()).json()["resource"]["id"]
    assert client.delete(f"{P}/{pid}", headers=headers).status_code == 204


# -- the JSON policy at the edge (assay/http/edge.py): NaN, Infinity and NUL -----------------------------

J = "/api/v1/evaluations/jobs"


def job_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "edge",
        "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
        "benchmarks": [{"id": "bench_a", "provider_id": "demo"}],
    }
    body.update(overrides)
    return body


def raw_post(
    client: TestClient, path: str, text: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST ``text`` as it is (json.dumps would refuse or rewrite the very values under test)."""
    response = client.post(
        path, content=text.encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    assert response.status_code == 400, response.text
    return dict(response.json())


def error_paths(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["path"], e["code"]) for e in body["errors"]]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_non_finite_numbers_in_a_job_are_refused_before_it_exists(client: TestClient, token: str) -> None:
    text = json.dumps(job_body(benchmarks=[{"id": "bench_a", "provider_id": "demo", "parameters": {"t": 0}}]))
    refused = raw_post(client, J, text.replace('"t": 0', f'"t": {token}'))
    assert refused["message_code"] == "request_validation_failed"
    assert error_paths(refused) == [("benchmarks[0].parameters.t", "not_finite")]
    # Also in custom, where they used to be stored as null without a word.
    custom = raw_post(
        client, J, json.dumps(job_body(custom={"score": 1})).replace('"score": 1', f'"score": {token}')
    )
    assert error_paths(custom) == [("custom.score", "not_finite")]
    assert client.get(J).json()["total_count"] == 0


def test_nul_characters_in_body_path_and_query_are_refused(client: TestClient) -> None:
    name = raw_post(client, P, json.dumps(provider_body(name="a\x00b")))
    assert error_paths(name) == [("name", "nul_character")]
    key = raw_post(client, J, json.dumps(job_body(custom={"k\x00": "v", "ok": ["x\x00"]})))
    assert error_paths(key) == [("custom.k\\u0000", "nul_character"), ("custom.ok[0]", "nul_character")]
    for url in (f"{P}/a%00b", f"{J}/a%00b", f"{P}?name=a%00b", f"{J}?tags=%00", f"{P}?na%00me=x"):
        answer = client.get(url)
        assert answer.status_code == 400, (url, answer.text)
        assert answer.json()["errors"][0]["code"] == "nul_character"
    assert client.delete(f"{J}/a%00b").status_code == 400
    # The events route takes a launch's credential, which no job named so has: refused before the policy runs (it
    # parses only what an authenticated caller sends).
    assert client.post(f"{J}/a%00b/events", json={}).status_code == 401
    assert_nothing_created(client)
    assert client.get(J).json()["total_count"] == 0


def test_lone_surrogates_in_free_form_json_are_refused_before_anything_exists(client: TestClient) -> None:
    """``"\\ud800"`` alone is valid JSON but no Unicode text: in a typed field the model refused it, in free-form
    JSON (parameters, custom, keys) it reached PostgreSQL, which cannot encode it: a 500."""
    text = json.dumps(
        job_body(benchmarks=[{"id": "bench_a", "provider_id": "demo", "parameters": {"t": "x"}}])
    )
    value = raw_post(client, J, text.replace('"t": "x"', '"t": "a\\udfffb"'))
    assert error_paths(value) == [("benchmarks[0].parameters.t", "lone_surrogate")]
    key = raw_post(client, J, json.dumps(job_body(custom={"k": [1]})).replace('"k"', '"k\\ud800"'))
    assert error_paths(key) == [("custom.k\\ud800", "lone_surrogate")]
    paired = client.post(
        J,
        content=text.replace('"t": "x"', '"t": "\\ud83d\\ude00"').encode(),
        headers={"Content-Type": "application/json"},
    )
    assert paired.status_code == 202, paired.text  # a pair is an emoji: fine
    assert client.get(J).json()["total_count"] == 1


def test_documents_nested_too_deep_are_refused_before_anything_exists(client: TestClient) -> None:
    """400 levels of objects in a benchmark's parameters validated, then failed to serialize: a 500. Past 64
    levels a body is refused where it goes too deep; past the parser's own depth, as a whole."""

    def nested(depth: int, inner: str = "1") -> str:
        return '{"a":' * depth + inner + "}" * depth

    parameters = json.dumps(job_body(benchmarks=[{"id": "bench_a", "provider_id": "demo", "parameters": {}}]))
    for depth in (65, 400):
        refused = raw_post(
            client, J, parameters.replace('"parameters": {}', f'"parameters": {nested(depth)}')
        )
        ((path, code),) = error_paths(refused)
        assert code == "too_deep" and path == "benchmarks[0].parameters" + ".a" * 61, path
    lists = raw_post(
        client, J, json.dumps(job_body(custom={"x": 1})).replace("1}", "[" * 100 + "]" * 100 + "}")
    )
    assert error_paths(lists)[0][1] == "too_deep"
    whole = raw_post(client, P, nested(5000))  # deeper than the parser goes
    assert error_paths(whole) == [("$", "too_deep")]
    accepted = client.post(
        J,
        content=parameters.replace('"parameters": {}', f'"parameters": {nested(60)}').encode(),
        headers={"Content-Type": "application/json"},
    )
    assert accepted.status_code == 202, accepted.text  # deep, but not too deep
    assert client.get(J).json()["total_count"] == 1


def test_the_json_policy_parses_only_what_an_authenticated_caller_sends(client: TestClient) -> None:
    """An anonymous or forged caller is refused (401) before its body is parsed at all; the same body from the
    user is refused by the policy (400)."""
    body = '{"name": NaN, "benchmarks": [' + ", ".join(["{}"] * 2000) + "]}"
    for authorization in ("", "Bearer forged-token"):
        answer = client.post(
            J,
            content=body.encode(),
            headers={"Content-Type": "application/json", "Authorization": authorization},
        )
        assert answer.status_code == 401, answer.text
    assert error_paths(raw_post(client, J, body)) == [("name", "not_finite")]


def idle_provider() -> dict[str, object]:
    body = provider_body()
    body["runtime"] = {"local": {"command": "sleep 600"}}
    return body


def test_a_nan_metric_from_an_adapter_is_stored_as_null_and_the_score_is_kept(client: TestClient) -> None:
    provider = client.post(P, json=idle_provider())
    assert provider.status_code == 201, provider.text
    pid = provider.json()["resource"]["id"]
    benchmark = provider.json()["benchmarks"][0]["id"]
    created = client.post(J, json=job_body(benchmarks=[{"id": benchmark, "provider_id": pid}]))
    assert created.status_code == 202, created.text
    job_id = created.json()["resource"]["id"]
    metric = provider.json()["benchmarks"][0]["primary_score"]["metric"]
    running = {"benchmark_status_event": {"provider_id": pid, "id": benchmark, "status": "running"}}

    def dispatched() -> bool:
        # Until dispatch has recorded the launch, its events are fenced as stale (204, nothing applied): say
        # "running" as the adapter would, until it is taken.
        client.post(f"{J}/{job_id}/events", json=running, headers=launch_headers(client, job_id))
        return bool(client.get(f"{J}/{job_id}").json()["status"]["state"] == "running")

    wait_for(dispatched, "the launch to be dispatched")
    # What Python's json.dumps writes for float("nan") and float("inf"): the adapter's score must survive.
    event = (
        '{"benchmark_status_event": {"provider_id": "%s", "id": "%s", "benchmark_index": %d, "status": "completed",'
        ' "metrics": {"%s": 0.75, "calibration": NaN, "perplexity": Infinity}}}'
    )
    answer = client.post(
        f"{J}/{job_id}/events",
        content=(event % (pid, benchmark, 0, metric)).encode(),
        headers={"Content-Type": "application/json", **launch_headers(client, job_id)},
    )
    assert answer.status_code == 204, answer.text

    def settled() -> dict[str, Any] | None:
        # The run is final at once; the job's own state is settled by aggregate, from the event that announced it.
        job = client.get(f"{J}/{job_id}").json()
        return job if job["status"]["state"] == "completed" else None

    job = wait_for(settled, "aggregate to settle the job")
    for result, entry in zip(job["results"]["benchmarks"], job["status"]["benchmarks"], strict=True):
        assert result["metrics"] == {metric: 0.75, "calibration": None, "perplexity": None}
        assert result["test"]["primary_score"] == 0.75
        assert entry["warning_message"]["message_code"] == "metrics_not_finite"
    # Outside metrics a status event follows the rule: refused, naming the field.
    status = {"provider_id": pid, "id": benchmark, "status": "running", "progress": 0.5}
    other = json.dumps({"benchmark_status_event": status}).replace("0.5", "NaN")
    refused = raw_post(client, f"{J}/{job_id}/events", other, launch_headers(client, job_id))
    assert error_paths(refused) == [("benchmark_status_event.progress", "not_finite")]


def test_step_counts_a_store_cannot_hold_are_refused(client: TestClient) -> None:
    """total_steps and completed_steps go to integer columns: 2**63 was a 500 (PostgreSQL's out of range)."""
    job_id = client.post(J, json=job_body()).json()["resource"]["id"]
    for field in ("total_steps", "completed_steps"):
        event = {"provider_id": "demo", "id": "bench_a", "status": "running", field: 2**63}
        refused = raw_post(
            client,
            f"{J}/{job_id}/events",
            json.dumps({"benchmark_status_event": event}),
            launch_headers(client, job_id),
        )
        assert error_paths(refused) == [(f"benchmark_status_event.{field}", "max")]


def test_an_unknown_field_and_a_wrong_reference_are_named_in_one_answer(client: TestClient) -> None:
    """README: every invalid field in one answer, including references the body's typo would have hidden."""
    body = job_body(
        benchmarks=[
            {"id": "bench_a", "provider_id": "demo", "wieght": 2},
            {"id": "no_such_benchmark", "provider_id": "demo"},
            {"id": "bench_a", "provider_id": "no_such_provider"},
        ],
        tagz=["x"],
    )
    response = client.post(J, json=body)
    assert response.status_code == 400, response.text
    paths = [e["path"] for e in response.json()["errors"]]
    assert paths[:2] == ["benchmarks[0].wieght", "tagz"] or paths[:2] == ["tagz", "benchmarks[0].wieght"]
    assert {"benchmarks[1].id", "benchmarks[2].provider_id"} <= set(paths[2:]), paths
    assert client.get(J).json()["total_count"] == 0
    # the same body without the typos is refused for the references alone, as before
    body.pop("tagz")
    body["benchmarks"][0].pop("wieght")  # type: ignore[index]
    alone = client.post(J, json=body)
    assert alone.status_code in (400, 404)
    assert {e["path"] for e in alone.json()["errors"]} == set(paths[2:])


def test_unknown_fields_alone_get_no_reference_errors(client: TestClient) -> None:
    response = client.post(J, json=job_body(tagz=["x"]))
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["tagz"]
