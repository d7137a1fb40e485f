"""The built-in adapters end to end through the public API: submit -> the local runtime runs the real framework
(each in its own cached environment) behind the sidecar against a real local model -> metrics in the job ->
per-benchmark tests and the composite. And a re-run of the same evaluation, answered from the sidecar's cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from assay.demo.embedding_server import EmbeddingServer
from tests.conftest import REPO, LiveServer
from tests.lifecycle.test_local_lifecycle import finished, submit

# Real frameworks on 2 shared cores: minutes, not seconds, when the machine is busy.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture()
def hub(start_hub: Callable[..., LiveServer]) -> Iterator[httpx.Client]:
    """A hub with the shipped catalogue (config/), whose providers run the built-in adapters."""
    with start_hub(config_dir=REPO / "config").client(timeout=30) as client:
        yield client


def by_id(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["id"]: b for b in job["results"]["benchmarks"]}


def test_every_generative_framework_in_one_evaluation(hub: httpx.Client, model_server: Any) -> None:
    benchmarks = [
        {"id": "assay_arithmetic", "provider_id": "lm_evaluation_harness", "parameters": {"num_examples": 4}},
        {"id": "assay_capitals", "provider_id": "lm_evaluation_harness", "parameters": {"num_examples": 4}},
        {"id": "assay_capitals", "provider_id": "lighteval", "parameters": {"num_examples": 3}},
        {"id": "smoke", "provider_id": "guidellm", "parameters": {"max_requests": 3, "output_tokens": 8}},
        {"id": "quick", "provider_id": "garak", "parameters": {"num_examples": 2, "max_tokens": 24}},
    ]
    job = submit(
        hub,
        {
            "name": "built-in adapters",
            "model": {"url": model_server.base_url, "name": model_server.model_name},
            "benchmarks": benchmarks,
        },
    )
    done = finished(hub, job["resource"]["id"], timeout=900)
    states = {
        (b["provider_id"], b["id"]): (b["status"], b.get("error_message"))
        for b in done["status"]["benchmarks"]
    }
    assert done["status"]["state"] == "completed", states
    results = {(b["provider_id"], b["id"]): b for b in done["results"]["benchmarks"]}
    requests: dict[str, int] = {}
    for (provider, benchmark), result in results.items():
        test = result["test"]
        assert test["evaluated"], (provider, benchmark, test)
        assert isinstance(test["primary_score"], float | int), (provider, benchmark)
        requests[provider] = requests.get(provider, 0) + result["usage"]["requests"]
    # Every framework's model calls went through the sidecar, which accounted for them (a group's calls are
    # counted on its first benchmark: one harness call cannot say which task a request belongs to).
    assert all(count > 0 for count in requests.values()), requests
    assert 0 <= results[("lm_evaluation_harness", "assay_arithmetic")]["metrics"]["exact_match"] <= 1
    assert results[("guidellm", "smoke")]["test"]["lower_is_better"] is True
    assert results[("guidellm", "smoke")]["metrics"]["time_to_first_token_ms_p50"] > 0
    assert 0 <= results[("garak", "quick")]["metrics"]["attack_success_rate"] <= 1
    composite = done["results"]["test"]
    assert composite["benchmarks_counted"] == len(benchmarks) and composite["coverage"] == 1
    assert isinstance(composite["pass"], bool)


def test_mteb_scores_an_embedding_endpoint(hub: httpx.Client) -> None:
    with EmbeddingServer() as embeddings:
        job = submit(
            hub,
            {
                "name": "embeddings",
                "model": {"url": embeddings.base_url, "name": embeddings.model_name},
                "benchmarks": [
                    {"id": "AssaySTS", "provider_id": "mteb"},
                    {"id": "AssayRetrieval", "provider_id": "mteb"},
                ],
            },
        )
        done = finished(hub, job["resource"]["id"], timeout=600)
    assert done["status"]["state"] == "completed", done["status"]
    results = by_id(done)
    assert 0.5 < results["AssaySTS"]["metrics"]["cosine_spearman"] <= 1
    assert 0.5 < results["AssayRetrieval"]["metrics"]["ndcg_at_10"] <= 1
    assert done["results"]["test"]["pass"] is True


def test_a_rerun_is_answered_from_the_sidecar_cache(hub: httpx.Client, model_server: Any) -> None:
    body = {
        "name": "cached",
        "model": {"url": model_server.base_url, "name": model_server.model_name},
        "benchmarks": [
            {
                "id": "assay_arithmetic",
                "provider_id": "lm_evaluation_harness",
                "parameters": {"num_examples": 5},
            }
        ],
    }
    first = finished(hub, submit(hub, body)["resource"]["id"], timeout=600)
    second = finished(hub, submit(hub, body)["resource"]["id"], timeout=600)
    assert first["status"]["state"] == second["status"]["state"] == "completed"
    one, two = by_id(first)["assay_arithmetic"], by_id(second)["assay_arithmetic"]
    assert one["usage"]["requests"] == two["usage"]["requests"] > 0
    assert one["usage"]["cache_hits"] == 0
    assert two["usage"]["cache_hits"] == two["usage"]["requests"]  # the model was not asked again
    assert one["metrics"] == two["metrics"]
