"""The model proxy: response cache (hits, misses, persistence, bypass), concurrency cap, retries,
credential refs, path and query kept, accounting in the terminal event."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.sidecar.conftest import FakeModel, local_config, write_job_info
from tests.support.recorders import EventRecorder

PROMPT = {"model": "gemma", "prompt": "two plus two is", "max_tokens": 3, "temperature": 0}


def _completion(client: httpx.Client, base: str, body: dict[str, object], **headers: str) -> httpx.Response:
    return client.post(f"{base}/v1/completions", json=body, headers=headers)


def test_identical_request_is_served_from_the_cache(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    sidecar = start_sidecar(local_config(tmp_path, recorder.url))
    base = f"{sidecar.url}/model/job1/0"
    with httpx.Client(timeout=30) as client:
        first = _completion(client, base, PROMPT)
        # Same request, keys in another order and other whitespace: the same canonical body.
        reordered = client.post(
            f"{base}/v1/completions",
            content=json.dumps(dict(reversed(list(PROMPT.items()))), indent=2),
            headers={"content-type": "application/json"},
        )
    assert first.status_code == 200 and first.headers["x-assay-cache"] == "miss"
    assert reordered.status_code == 200 and reordered.headers["x-assay-cache"] == "hit"
    assert reordered.json() == first.json()
    assert len(model.upstream_calls()) == 1


def test_model_name_endpoint_or_body_change_misses(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    other_endpoint = FakeModel().start()
    try:
        jobs = tmp_path / "jobs"
        write_job_info(jobs, "same", 0, model.url, "gemma")
        write_job_info(jobs, "again", 0, model.url, "gemma")  # another job, same model and endpoint
        write_job_info(jobs, "renamed", 0, model.url, "gemma-v2")
        write_job_info(jobs, "moved", 0, other_endpoint.url, "gemma")
        sidecar = start_sidecar(local_config(tmp_path, recorder.url))
        with httpx.Client(timeout=30) as client:
            states = {
                job: _completion(client, f"{sidecar.url}/model/{job}/0", PROMPT).headers["x-assay-cache"]
                for job in ("same", "again", "renamed", "moved")
            }
            changed = _completion(client, f"{sidecar.url}/model/same/0", {**PROMPT, "max_tokens": 4})
        assert states == {"same": "miss", "again": "hit", "renamed": "miss", "moved": "miss"}
        assert changed.headers["x-assay-cache"] == "miss"
        assert len(model.upstream_calls()) == 3  # same, renamed, changed body
        assert len(other_endpoint.upstream_calls()) == 1
    finally:
        other_endpoint.stop()


def test_cache_survives_a_sidecar_restart(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    config = local_config(tmp_path, recorder.url)
    first = start_sidecar(config)
    with httpx.Client(timeout=30) as client:
        before = _completion(client, f"{first.url}/model/job1/0", PROMPT)
        first.stop()
        second = start_sidecar(config)
        after = _completion(client, f"{second.url}/model/job1/0", PROMPT)
    assert before.headers["x-assay-cache"] == "miss"
    assert after.headers["x-assay-cache"] == "hit"
    assert after.json() == before.json()
    assert len(model.upstream_calls()) == 1
    assert (tmp_path / "cache" / "responses.sqlite3").is_file()


def test_stream_and_no_cache_bypass_the_cache(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    sidecar = start_sidecar(local_config(tmp_path, recorder.url))
    base = f"{sidecar.url}/model/job1/0"
    with httpx.Client(timeout=30) as client:
        streamed = [_completion(client, base, {**PROMPT, "stream": True}) for _ in range(2)]
        _completion(client, base, PROMPT)  # stored
        fresh = _completion(client, base, PROMPT, **{"Cache-Control": "no-cache"})
        cached = _completion(client, base, PROMPT)
    for answer in streamed:
        assert answer.headers["x-assay-cache"] == "bypass"
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.text.endswith("data: [DONE]\n\n")
    assert fresh.headers["x-assay-cache"] == "bypass"
    assert cached.headers["x-assay-cache"] == "hit"
    assert cached.json() == fresh.json()  # the no-cache answer refreshed the stored one
    assert len(model.upstream_calls()) == 4


def test_concurrency_cap_bounds_calls_in_flight(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    model.delay = 0.3
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    sidecar = start_sidecar(local_config(tmp_path, recorder.url, max_concurrency=2))
    base = f"{sidecar.url}/model/job1/0"
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda n: _completion(client, base, {**PROMPT, "seed": n}), range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert len(model.upstream_calls()) == 6
    assert model.max_in_flight == 2


def test_retries_on_429_503_and_dropped_connections(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    model.plan = ["429:1", "503", "drop"]
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    sidecar = start_sidecar(local_config(tmp_path, recorder.url, max_retries=3))
    with httpx.Client(timeout=30) as client:
        started = time.monotonic()
        answer = _completion(client, f"{sidecar.url}/model/job1/0", PROMPT)
        elapsed = time.monotonic() - started
        client.post(
            f"{sidecar.url}/api/v1/evaluations/jobs/job1/events",
            json={"benchmark_status_event": {"provider_id": "p", "id": "b0", "status": "completed"}},
        )
    assert answer.status_code == 200
    assert len(model.upstream_calls()) == 4
    assert elapsed >= 1.0  # Retry-After: 1 was honoured
    usage = recorder.wait_for(bool)[0]["usage"]
    assert usage["retries"] == 3 and usage["upstream_requests"] == 4 and usage["errors"] == 0


def test_retries_give_up_with_the_last_answer(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    model.plan = ["503", "503", "503"]
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    sidecar = start_sidecar(local_config(tmp_path, recorder.url, max_retries=1))
    with httpx.Client(timeout=30) as client:
        answer = _completion(client, f"{sidecar.url}/model/job1/0", PROMPT)
        again = _completion(client, f"{sidecar.url}/model/job1/0", PROMPT)
    assert answer.status_code == 503 and answer.headers["x-assay-cache"] == "miss"
    assert again.status_code == 200 and again.headers["x-assay-cache"] == "miss"  # errors are not cached
    assert len(model.upstream_calls()) == 4


def test_accounting_rides_on_the_completed_event(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    sidecar = start_sidecar(local_config(tmp_path, recorder.url))
    events = f"{sidecar.url}/api/v1/evaluations/jobs/job1/events"
    with httpx.Client(timeout=30) as client:
        for _ in range(2):
            _completion(client, f"{sidecar.url}/model/job1/0", PROMPT)  # miss, then hit
        _completion(client, f"{sidecar.url}/model/job1/0", {**PROMPT, "stream": True, "seed": 1})
        running = client.post(
            events, json={"benchmark_status_event": {"provider_id": "p", "id": "b0", "status": "running"}}
        )
        completed = client.post(
            events,
            json={
                "benchmark_status_event": {
                    "provider_id": "p",
                    "id": "b0",
                    "status": "completed",
                    "metrics": {"a": 1},
                }
            },
        )
    assert running.status_code == 204 and completed.status_code == 204
    first, last = recorder.events()
    assert "usage" not in first
    assert last["metrics"] == {"a": 1}
    assert last["usage"] == {
        "requests": 3,
        "cache_hits": 1,
        "upstream_requests": 2,
        "retries": 0,
        "errors": 0,
        # "two plus two is" is 4 prompt tokens to the fake server, 3 completion tokens, twice from upstream
        # (one JSON answer, one stream's usage chunk) and once from the cache.
        "prompt_tokens": 8,
        "completion_tokens": 6,
        "total_tokens": 14,
        "cached_prompt_tokens": 4,
        "cached_completion_tokens": 3,
        "cached_total_tokens": 7,
        "benchmark_indices": [0],
    }


def test_path_and_query_reach_the_model_unchanged(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    sidecar = start_sidecar(local_config(tmp_path, recorder.url))
    target = "/openai/deployments/g%2Fm/v1/completions?api-version=2024-06-01&x=a%2Fb&x=c"
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{sidecar.url}/model/job1/0{target}", json=PROMPT)
        missing = client.post(f"{sidecar.url}/model/nojob/0/v1/completions", json=PROMPT)
    assert answer.status_code == 200
    assert [c.target for c in model.upstream_calls("/openai")] == [target]
    assert missing.status_code == 404 and "'nojob'" in missing.json()["message"]


def test_an_authorization_without_credentials_is_not_forwarded(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    """lm-eval's OpenAI client sends ``Authorization: Bearer `` when it has no key: the call must still reach
    the model (httpx refuses the trailing space), without a credential it never had."""
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    sidecar = start_sidecar(local_config(tmp_path, recorder.url))
    # http.client, because httpx (rightly) refuses to send such a header at all.
    connection = http.client.HTTPConnection(sidecar.url.removeprefix("http://"), timeout=30)
    headers = {"Authorization": "Bearer ", "Content-Type": "application/json"}
    connection.request("POST", "/model/job1/0/v1/completions", body=json.dumps(PROMPT), headers=headers)
    answer = connection.getresponse()
    assert answer.status == 200, answer.read()
    connection.close()
    (call,) = model.upstream_calls("/v1/completions")
    assert "authorization" not in call.headers


def _pod_config(tmp_path: Path, model_url: str, hub_url: str, secrets: Path) -> dict[str, object]:
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps(
            {
                "id": "podjob",
                "provider_id": "p",
                "benchmark_id": "b0",
                "benchmark_index": 0,
                "model": {"url": "http://localhost:8080/v1", "name": "gemma"},
                "parameters": {},
                "callback_url": "http://localhost:8080",
            }
        )
    )
    return {
        "local_mode": False,
        "job_spec_path": str(spec),
        "eval_hub": {"base_url": hub_url},
        "model": {"url": model_url + "/v1", "auth_secret_mount_path": str(secrets)},
        "cache": {"dir": str(tmp_path / "cache")},
        "shutdown_timeout": "2s",
    }


def test_ref_tokens_are_resolved_from_the_secret_mount(
    tmp_path: Path, model: FakeModel, start_sidecar
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api-key").write_text("sk-real-key\n")
    (secrets / "judge_api-key").write_text("sk-judge")
    judge = FakeModel().start()
    no_hub = "http://127.0.0.1:9"  # events are not used here
    try:
        (secrets / "judge_url").write_text(judge.url)
        sidecar = start_sidecar(_pod_config(tmp_path, model.url, no_hub, secrets))
        with httpx.Client(timeout=30) as client:
            ok = client.post(
                f"{sidecar.url}/v1/completions?a=1",
                json=PROMPT,
                headers={"Authorization": "Bearer api-key:ref"},
            )
            routed = client.post(
                f"{sidecar.url}/v1/completions",
                json=PROMPT,
                headers={"Authorization": "Bearer judge_api-key:ref"},
            )
            unknown = client.post(
                f"{sidecar.url}/v1/completions",
                json=PROMPT,
                headers={"Authorization": "Bearer other_api-key:ref"},
            )
        assert ok.status_code == 200 and routed.status_code == 200
        (call,) = model.upstream_calls()
        assert call.target == "/v1/completions?a=1"  # pod mode keeps the adapter's path and query
        assert call.headers["authorization"] == "Bearer sk-real-key"
        (judged,) = judge.upstream_calls()
        assert judged.headers["authorization"] == "Bearer sk-judge"
        assert unknown.status_code == 400 and "'other_api-key'" in unknown.json()["message"]
    finally:
        judge.stop()


def test_group_launch_traffic_is_reported_for_the_launch(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    write_job_info(tmp_path / "jobs", "job1", 2, model.url, "gemma", indices=[2, 3])
    sidecar = start_sidecar(local_config(tmp_path, recorder.url))
    with httpx.Client(timeout=30) as client:
        _completion(client, f"{sidecar.url}/model/job1/2", PROMPT)
        _completion(
            client, f"{sidecar.url}/model/job1/2", {**PROMPT, "seed": 3}, **{"X-Assay-Benchmark-Index": "3"}
        )
        # Not an index ("³" is a digit to str.isdigit, not to int: it was a 500): the launch's own traffic.
        odd = client.post(
            f"{sidecar.url}/model/job1/2/v1/completions",
            json={**PROMPT, "seed": 4},
            headers={"X-Assay-Benchmark-Index": "\u00b3".encode("latin-1")},
        )
        assert odd.status_code == 200, odd.text
        for index in (2, 3):
            client.post(
                f"{sidecar.url}/api/v1/evaluations/jobs/job1/events",
                json={
                    "benchmark_status_event": {
                        "provider_id": "p",
                        "id": f"b{index}",
                        "benchmark_index": index,
                        "status": "completed",
                    }
                },
            )
    lead, member = recorder.events()
    assert lead["usage"]["requests"] == 2 and lead["usage"]["benchmark_indices"] == [2, 3]
    assert member["usage"]["requests"] == 1 and member["usage"]["benchmark_indices"] == [3]
    assert "x-assay-benchmark-index" not in model.upstream_calls()[1].headers


def test_two_sidecars_share_one_cache_file(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    config = local_config(tmp_path, recorder.url)
    first, second = start_sidecar(config), start_sidecar(config)
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(4) as pool:
        stored = list(
            pool.map(lambda n: _completion(client, f"{first.url}/model/job1/0", {**PROMPT, "n": n}), range(8))
        )
        served = list(
            pool.map(
                lambda n: _completion(client, f"{second.url}/model/job1/0", {**PROMPT, "n": n}), range(8)
            )
        )
    assert {a.headers["x-assay-cache"] for a in stored} == {"miss"}
    assert {a.headers["x-assay-cache"] for a in served} == {"hit"}
    assert [a.json() for a in served] == [a.json() for a in stored]
    assert len(model.upstream_calls()) == 8


def test_bodies_nested_past_the_parser_are_passed_on_as_they_are() -> None:
    """The sidecar reads JSON it forwards (to key its cache, to see ``stream``, to count ``usage``); a body nested
    past the parser's depth raised RecursionError, which is no ValueError: a 500 of the sidecar. Now it is bytes
    like any other that is not JSON."""
    from adapters.sidecar._accounting import usage_from_body
    from adapters.sidecar._cache import canonical_body
    from adapters.sidecar._model import _asks_for_stream

    deep = b'{"stream":true,"a":' + b'{"a":' * 5000 + b"1" + b"}" * 5001
    assert canonical_body(deep) == deep
    lone = b'{"prompt":"\\ud800"}'  # valid JSON, no UTF-8 for its string: it was a 500 too
    assert canonical_body(lone) == lone
    assert _asks_for_stream(deep) is False
    assert usage_from_body(deep) is None


def test_a_job_id_or_index_that_names_no_job_is_404(
    tmp_path: Path, model: FakeModel, start_sidecar, recorder: EventRecorder
) -> None:
    """Job ids name folders of the spool and of the jobs root: ``..``, a byte past ASCII or 5000 characters were a
    500 (or a folder above the spool); a benchmark index of 5000 digits was one as well (int() refuses it)."""
    write_job_info(tmp_path / "jobs", "job1", 0, model.url, "gemma")
    sidecar = start_sidecar(local_config(tmp_path, recorder.url))
    event = {"benchmark_status_event": {"provider_id": "p", "id": "b", "status": "running"}}
    with httpx.Client(timeout=30) as client:
        for job_id in ("%2E%2E", "%C2%B3", "a" * 5000, "%00"):
            answer = client.post(f"{sidecar.url}/api/v1/evaluations/jobs/{job_id}/events", json=event)
            assert answer.status_code == 404, (job_id, answer.status_code)
            model_answer = _completion(client, f"{sidecar.url}/model/{job_id}/0", PROMPT)
            assert model_answer.status_code == 404, (job_id, model_answer.status_code)
        assert _completion(client, f"{sidecar.url}/model/job1/{'9' * 5000}", PROMPT).status_code == 404
        assert _completion(client, f"{sidecar.url}/model/job1/0", PROMPT).status_code == 200
    assert recorder.requests == []  # nothing about those reached the hub
