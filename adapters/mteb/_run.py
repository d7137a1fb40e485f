"""One MTEB evaluation in this process, with an encoder that calls an OpenAI-compatible ``/v1/embeddings``.

Kept apart from :mod:`adapters.mteb.adapter` because it imports MTEB (torch, sentence-transformers), which only
the adapter's own environment has. The encoder counts the texts it embeds, which is the run's progress.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from adapters.retry import Backoff, retry_after_seconds

# numpy comes with MTEB in the adapter's environment (the hub's type checker does not have it).
np: Any = importlib.import_module("numpy")

__all__ = ["OFFLINE_ENV", "EmbeddingsEndpoint", "TaskRun", "run_tasks"]

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "DO_NOT_TRACK": "1",
}
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
# A server's Retry-After is honoured up to this long; otherwise 0.5 s doubling to 8 s, jittered.
_RETRY_AFTER_CAP_SECONDS = 60.0


@dataclass(frozen=True)
class EmbeddingsEndpoint:
    """How to reach the embeddings endpoint and what to send with each text."""

    base_url: str
    model: str
    api_key: str | None
    batch_size: int
    timeout: float
    max_retries: int
    send_input_type: bool
    query_prefix: str
    document_prefix: str
    dimensions: int | None


@dataclass
class TaskRun:
    """One task's outcome: MTEB's scores of its test split, and the files written."""

    name: str
    scores: dict[str, Any]
    result_file: Path


class _Embedder:
    """Posts batches to ``/embeddings`` with retries on transient failures; counts embedded texts."""

    def __init__(self, endpoint: EmbeddingsEndpoint, on_texts: Callable[[int], None]) -> None:
        self.endpoint = endpoint
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self._client = httpx.Client(base_url=endpoint.base_url, headers=headers, timeout=endpoint.timeout)
        self._on_texts = on_texts
        self._backoff = Backoff(initial=0.5, maximum=8.0)
        self.requests = 0
        self.prompt_tokens = 0

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: list[str], input_type: str | None) -> Any:
        body: dict[str, Any] = {"model": self.endpoint.model, "input": texts, "encoding_format": "float"}
        if input_type is not None and self.endpoint.send_input_type:
            body["input_type"] = input_type
        if self.endpoint.dimensions is not None:
            body["dimensions"] = self.endpoint.dimensions
        for attempt in range(self.endpoint.max_retries + 1):
            retry_after: float | None = None
            try:
                response = self._client.post("/embeddings", json=body)
            except httpx.TransportError as exc:
                if attempt == self.endpoint.max_retries:
                    raise RuntimeError(
                        f"embeddings endpoint {self.endpoint.base_url} unreachable: {exc}"
                    ) from exc
            else:
                if response.status_code < 400:
                    break
                if response.status_code not in _RETRY_STATUSES or attempt == self.endpoint.max_retries:
                    raise RuntimeError(
                        f"embeddings endpoint {self.endpoint.base_url}/embeddings answered "
                        f"{response.status_code}: {response.text[:500]}"
                    )
                retry_after = retry_after_seconds(
                    response.headers.get("Retry-After"), cap=_RETRY_AFTER_CAP_SECONDS
                )
            time.sleep(self._backoff.delay(attempt + 1, retry_after=retry_after))
        payload = response.json()
        data = sorted(payload.get("data", []), key=lambda item: item.get("index", 0))
        if len(data) != len(texts):
            raise RuntimeError(
                f"embeddings endpoint returned {len(data)} embeddings for {len(texts)} inputs (model {self.endpoint.model})"
            )
        self.requests += 1
        self.prompt_tokens += int((payload.get("usage") or {}).get("prompt_tokens") or 0)
        self._on_texts(len(texts))
        return np.asarray([item["embedding"] for item in data], dtype=np.float32)


def _encoder_class() -> type:
    abs_encoder: Any = importlib.import_module("mteb.models.abs_encoder")
    model_meta: Any = importlib.import_module("mteb.models.model_meta")
    types_mod: Any = importlib.import_module("mteb.types")

    class EndpointEncoder(abs_encoder.AbsEncoder):  # type: ignore[misc]
        """An MTEB encoder whose embeddings come from the endpoint; query/document roles follow MTEB's prompt type."""

        def __init__(self, embedder: _Embedder) -> None:
            self.model = embedder
            self._embedder = embedder
            endpoint = embedder.endpoint
            self.mteb_model_meta = model_meta.ModelMeta.create_empty(
                overwrites={
                    "name": f"endpoint/{endpoint.model}",
                    "revision": "endpoint",
                    # model_copy does not validate: the enum itself, not its string, or MTEB finds no function.
                    "similarity_fn_name": model_meta.ScoringFunction.COSINE,
                    "framework": ["API"],
                }
            )

        def encode(self, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str,
                   prompt_type: Any = None, **kwargs: Any) -> Any:  # fmt: skip
            endpoint = self._embedder.endpoint
            if prompt_type == types_mod.PromptType.query:
                input_type, prefix = "query", endpoint.query_prefix
            elif prompt_type == types_mod.PromptType.document:
                input_type, prefix = "passage", endpoint.document_prefix
            else:  # symmetric tasks (STS): both sides are queries, as e5 recommends
                input_type, prefix = "query", endpoint.query_prefix
            texts = [f"{prefix}{text}" for batch in inputs for text in batch["text"]]
            chunks = [
                self._embedder.embed(texts[i : i + endpoint.batch_size], input_type)
                for i in range(0, len(texts), endpoint.batch_size)
            ]
            return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)

    return EndpointEncoder


def run_tasks(
    tasks: list[Any],
    endpoint: EmbeddingsEndpoint,
    output_dir: Path,
    on_texts: Callable[[int], None],
) -> tuple[list[TaskRun], dict[str, int]]:
    """Evaluate ``tasks`` (MTEB task objects) with the endpoint encoder; write each task's MTEB result JSON
    under ``output_dir``. Returns the runs and the request counts."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    mteb: Any = importlib.import_module("mteb")
    embedder = _Embedder(endpoint, on_texts)
    encoder = _encoder_class()(embedder)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        # cache=None: MTEB would otherwise reuse earlier scores of the same model name from ~/.cache/mteb.
        result = mteb.evaluate(encoder, tasks, cache=None, show_progress_bar=False, raise_error=True,
                               encode_kwargs={"batch_size": endpoint.batch_size})  # fmt: skip
    finally:
        embedder.close()
    runs: list[TaskRun] = []
    for task_result in result.task_results:
        scores = task_result.scores.get("test")
        if not scores:
            raise RuntimeError(f"MTEB produced no test-split scores for {task_result.task_name}")
        path = output_dir / f"{task_result.task_name}.json"
        path.write_text(json.dumps(task_result.to_dict(), indent=2, default=str), encoding="utf-8")
        runs.append(TaskRun(name=task_result.task_name, scores=dict(scores[0]), result_file=path))
    return runs, {"requests": embedder.requests, "prompt_tokens": embedder.prompt_tokens}
