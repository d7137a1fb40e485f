"""The same registry event delivered five times, concurrently and out of order with another version:
exactly one evaluation per version, each gated against the previous version by version order; and a
claimed version whose job was refused is submitted by the sweep once it can run, still only once."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path

from assay.core.events import MODEL_VERSION_CREATED
from tests.conftest import LiveServer
from tests.lifecycle.test_local_lifecycle import exact_match_provider
from tests.support.waiting import wait_for
from tests.triggers.hub import answers, finished, policy, start, sweep_claims_later
from tests.triggers.senders import job_count, registry_cloudevent


def _event(version: str, answer_file: Path, event_id: str) -> tuple[bytes, dict[str, str]]:
    data = {
        "registry": "https://registry.example",
        "model_name": "acme-chat",
        "version": version,
        "tags": {"answers": str(answer_file)},
    }
    return registry_cloudevent(MODEL_VERSION_CREATED, data, event_id=event_id)


def test_five_deliveries_out_of_order_make_one_evaluation_per_version_with_the_right_baseline(
    start_hub: Callable[..., LiveServer], tmp_path: Path
) -> None:
    _, hub = start(start_hub)
    assert hub.post("/api/v1/evaluations/policies", json=policy(["cloudevents"])).status_code == 201
    good, fair, poor = (
        answers(tmp_path / f"{n}.jsonl", c) for n, c in (("good", 9), ("fair", 8), ("poor", 2))
    )

    v1 = hub.post("/api/v1/events", content=_event("1", good, "v1")[0], headers=_event("1", good, "v1")[1])
    assert v1.status_code == 202, v1.text
    first = finished(hub, v1.json()["job_ids"][0])

    # Version 10 arrives before version 9 (the natural order of "9" < "10", not the arrival order, decides).
    # Version 10's event is redelivered with the same id; version 9's is re-sent under fresh ids.
    deliveries = [_event("10", poor, "v10") for _ in range(5)] + [
        _event("9", fair, f"v9-{i}") for i in range(5)
    ]
    order = list(itertools.chain.from_iterable(zip(deliveries[:5], deliveries[5:], strict=True)))
    answers_seen: list[tuple[int, dict[str, object]]] = []
    lock = threading.Lock()

    def send(delivery: tuple[bytes, dict[str, str]]) -> None:
        response = hub.post("/api/v1/events", content=delivery[0], headers=delivery[1])
        with lock:
            answers_seen.append((response.status_code, response.json()))

    threads = [threading.Thread(target=send, args=(d,)) for d in order]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    codes = [code for code, _ in answers_seen]
    assert len(codes) == 10 and set(codes) <= {200, 202}, answers_seen
    # Version 9's copies each have their own delivery id: the one that made the job answers 202. Version 10's
    # five copies share one id, and whichever copy's answer is recorded first speaks for all of them; when
    # that is a copy that found the job another copy made in the same instant, none answers 202.
    versions_created = [body["evaluations"][0]["version"] for code, body in answers_seen if code == 202]
    assert versions_created.count("9") == 1 and versions_created.count("10") <= 1, answers_seen
    job_ids = {str(body["job_ids"][0]) for _, body in answers_seen}
    assert len(job_ids) == 2  # every copy names one of the two evaluations
    assert job_count(hub) == 3

    jobs = {finished(hub, job_id)["custom"]["assay_trigger"]["version"]: job_id for job_id in job_ids}
    jobs["1"] = first["resource"]["id"]
    gate9 = hub.get(f"/api/v1/evaluations/jobs/{jobs['9']}/gate").json()
    gate10 = hub.get(f"/api/v1/evaluations/jobs/{jobs['10']}/gate").json()
    assert gate9["baseline"]["job_id"] == jobs["1"] and gate9["baseline"]["version"] == "1"
    assert gate10["baseline"]["job_id"] == jobs["9"] and gate10["baseline"]["version"] == "9"
    # 0.9 -> 0.8 is within two combined standard errors: noise, not a regression.
    assert gate9["decision"] == "passed" and gate9["regressions"] == []
    assert gate10["decision"] == "failed" and [r["id"] for r in gate10["regressions"]] == ["qa"]
    # The first final decision recorded its baseline; asking again says the same.
    again = hub.get(f"/api/v1/evaluations/jobs/{jobs['10']}/gate").json()
    assert again["baseline"]["job_id"] == jobs["9"] and again["baseline"].get("recorded") is True
    first_gate = hub.get(f"/api/v1/evaluations/jobs/{jobs['1']}/gate").json()
    assert first_gate["baseline"]["reason"] == "no_previous_version" and first_gate["decision"] == "passed"


def test_a_refused_submission_is_retried_by_the_sweep_and_still_makes_one_evaluation(
    start_hub: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server, hub = start(start_hub, sweep_interval_seconds=0.3, dispatch_stale_seconds=1.0)
    assert hub.post("/api/v1/evaluations/policies", json=policy(["cloudevents"])).status_code == 201
    assert hub.delete("/api/v1/evaluations/providers/exact").status_code == 204  # the policy's job can't run

    good = answers(tmp_path / "good.jsonl", 9)
    refused = hub.post(
        "/api/v1/events", content=_event("1", good, "r-1")[0], headers=_event("1", good, "r-1")[1]
    )
    assert refused.status_code == 200, refused.text
    assert refused.json()["skipped"][0]["reason"] == "job_refused"
    assert job_count(hub) == 0
    # A sweep past the retry threshold tries the claim again, and is refused again while the job can't run.
    assert sweep_claims_later(server) == [{"policy_claims_started": 0, "policy_claims_refused": 1}]
    assert job_count(hub) == 0

    # Nothing is redelivered: the sweep submits the claimed version once its job can run again.
    assert hub.post("/api/v1/evaluations/providers", json=exact_match_provider()).status_code == 201
    wait_for(lambda: job_count(hub) == 1, timeout=30)
    (job,) = hub.get("/api/v1/evaluations/jobs").json()["items"]
    assert job["model"]["url"].endswith("/acme-chat/1/v1")

    # A later delivery of the same version finds that job, and the sweep makes no second one.
    again = hub.post(
        "/api/v1/events", content=_event("1", good, "r-2")[0], headers=_event("1", good, "r-2")[1]
    )
    assert [e["job_id"] for e in again.json()["evaluations"]] == [job["resource"]["id"]]
    assert again.json()["evaluations"][0]["created"] is False
    # However late the sweep looks again (driven here, past the retry threshold), the claim has its job.
    assert sweep_claims_later(server) == [{"policy_claims_started": 0, "policy_claims_refused": 0}]
    assert job_count(hub) == 1
