"""One LightEval run in this process: its litellm endpoint backend against an OpenAI-compatible server.

Kept apart from :mod:`adapters.lighteval.adapter` because it imports LightEval (torch, transformers, ~30 s of
imports on 2 cores), which only the adapter's own environment has. Progress is observed through litellm's
success/failure callbacks: every finished request is one completed step.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["OFFLINE_ENV", "LightEvalRun", "RunOutcome", "ensure_offline_placeholders"]

# LightEval and the libraries under it look things up on the Hugging Face Hub, GitHub and litellm's model price
# list at import time; none of that is reachable (or wanted) in an evaluation pod.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "TOKENIZERS_PARALLELISM": "false",
    "DO_NOT_TRACK": "1",
}


def ensure_offline_placeholders() -> None:
    """Create the file LightEval 0.13 otherwise downloads from GitHub when it loads its task registry.

    ``lighteval/tasks/tasks/tiny_benchmarks.py`` fetches ``tinyBenchmarks.pkl`` at import unless the file is
    already beside it, and the import crashes without network. The placeholder is empty: only the tinyBenchmarks
    tasks read it, and those need Hub datasets anyway. Container images create it at build time.
    """
    spec = importlib.util.find_spec("lighteval")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "lighteval is not installed in this environment (see adapters/lighteval/requirements.txt)"
        )
    placeholder = Path(spec.origin).parent / "tasks" / "tasks" / "tinyBenchmarks.pkl"
    if placeholder.exists():
        return
    try:
        placeholder.touch()
    except OSError as exc:
        raise RuntimeError(
            f"cannot create LightEval's offline placeholder {placeholder} ({exc}); create it when building the "
            "environment (touch it), as the Containerfile does"
        ) from exc


@dataclass
class RunOutcome:
    """What a finished run produced: LightEval's results dict, documents per task, request counts, files."""

    results: dict[str, dict[str, float]]
    docs_per_task: dict[str, int]
    requests_total: int
    requests_ok: int
    requests_failed: int
    first_failure: str | None
    output_dir: Path
    versions: dict[str, Any] = field(default_factory=dict)


class _RequestCounter:
    """Counts finished requests from litellm's callback threads and forwards progress to the adapter."""

    def __init__(self, total: int, on_progress: Callable[[int, int], None]) -> None:
        self.total = total
        self.ok = 0
        self.failed = 0
        self.first_failure: str | None = None
        self.callback_error: BaseException | None = None
        self._on_progress = on_progress
        self._lock = threading.Lock()

    def success(self, kwargs: Any, response: Any, start: Any, end: Any) -> None:
        self._count(failed=False, error=None)

    def failure(self, kwargs: Any, response: Any, start: Any, end: Any) -> None:
        error = kwargs.get("exception") if isinstance(kwargs, dict) else None
        self._count(failed=True, error=str(error) if error is not None else "request failed")

    def _count(self, *, failed: bool, error: str | None) -> None:
        with self._lock:
            if failed:
                self.failed += 1
                self.first_failure = self.first_failure or error
            else:
                self.ok += 1
            done = min(self.ok, self.total)
            try:
                self._on_progress(done, self.total)
            except BaseException as exc:  # litellm would swallow it in its thread: keep it and re-raise later
                self.callback_error = self.callback_error or exc


class LightEvalRun:
    """One ``Pipeline`` run of LightEval's litellm backend.

    ``tasks`` is LightEval's task string (``"name|k,name|k"``), ``custom_tasks`` a module with ``TASKS_TABLE``.
    """

    def __init__(
        self,
        *,
        tasks: str,
        custom_tasks: types.ModuleType,
        model_name: str,
        base_url: str,
        api_key: str,
        max_samples: int | None,
        output_dir: Path,
        cache_dir: Path,
        max_model_length: int,
        concurrent_requests: int,
        timeout: float,
        api_max_retry: int,
        system_prompt: str | None,
        generation_parameters: dict[str, Any],
    ) -> None:
        self.tasks = tasks
        self.custom_tasks = custom_tasks
        self.model_name = model_name
        self.base_url = base_url
        self.api_key = api_key
        self.max_samples = max_samples
        self.output_dir = output_dir
        self.cache_dir = cache_dir
        self.max_model_length = max_model_length
        self.concurrent_requests = concurrent_requests
        self.timeout = timeout
        self.api_max_retry = api_max_retry
        self.system_prompt = system_prompt
        self.generation_parameters = generation_parameters

    def execute(
        self,
        on_loaded: Callable[[int], None],
        on_progress: Callable[[int, int], None],
    ) -> RunOutcome:
        """Load the tasks and data (then ``on_loaded(total_requests)``), run them (``on_progress(done, total)``
        after each request) and save LightEval's results and per-sample details under ``output_dir``."""
        for key, value in OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
        ensure_offline_placeholders()
        litellm: Any = importlib.import_module("litellm")
        tracker_mod: Any = importlib.import_module("lighteval.logging.evaluation_tracker")
        litellm_model: Any = importlib.import_module("lighteval.models.endpoints.litellm_model")
        pipeline_mod: Any = importlib.import_module("lighteval.pipeline")
        generation: Any = importlib.import_module("lighteval.models.model_input")
        requests_mod: Any = importlib.import_module("lighteval.tasks.requests")

        # LightEval turns on litellm's disk cache in the working directory; responses are cached (keyed on the
        # full request) by Assay's sidecar instead, and a stale local cache would hide endpoint changes.
        litellm.cache = None

        self.output_dir.mkdir(parents=True, exist_ok=True)
        tracker = tracker_mod.EvaluationTracker(output_dir=str(self.output_dir), save_details=True)
        model_config = litellm_model.LiteLLMModelConfig(
            model_name=f"openai/{self.model_name}",
            provider="openai",
            base_url=self.base_url,
            api_key=self.api_key,
            max_model_length=self.max_model_length,  # else LightEval asks OpenRouter for it
            concurrent_requests=self.concurrent_requests,
            timeout=self.timeout,
            api_max_retry=self.api_max_retry,
            api_retry_sleep=1.0,
            system_prompt=self.system_prompt,
            # LightEval's per-sample prediction cache, kept per run for the same reason as above.
            cache_dir=str(self.cache_dir),
            generation_parameters=generation.GenerationParameters(**self.generation_parameters),
        )
        params = pipeline_mod.PipelineParameters(
            launcher_type=pipeline_mod.ParallelismManager.NONE,
            custom_tasks_directory=self.custom_tasks,
            max_samples=self.max_samples,
        )
        pipeline = pipeline_mod.Pipeline(
            tasks=self.tasks,
            pipeline_parameters=params,
            evaluation_tracker=tracker,
            model_config=model_config,
        )
        generative = requests_mod.SamplingMethod.GENERATIVE
        unsupported = sorted(
            {
                doc.task_name
                for method, docs in pipeline.sampling_docs.items()
                if method != generative
                for doc in docs
            }
        )
        if unsupported:
            raise ValueError(
                f"LightEval's litellm backend only runs generative tasks; {', '.join(unsupported)} need "
                "log-likelihoods (choose generative tasks or an lm-evaluation-harness benchmark)"
            )
        docs_per_task = {name: len(docs) for name, docs in pipeline.documents_dict.items()}
        total = sum(len(docs) for docs in pipeline.sampling_docs.values())
        on_loaded(total)

        counter = _RequestCounter(total, on_progress)
        litellm.success_callback = [*litellm.success_callback, counter.success]
        litellm.failure_callback = [*litellm.failure_callback, counter.failure]
        try:
            pipeline.evaluate()
        finally:
            litellm.success_callback = [cb for cb in litellm.success_callback if cb is not counter.success]
            litellm.failure_callback = [cb for cb in litellm.failure_callback if cb is not counter.failure]
        if counter.callback_error is not None:
            raise counter.callback_error
        pipeline.save_and_push_results()
        # The saved results file keys tasks as "name|k", as they were asked for (get_results() says "name:k").
        saved = sorted(self.output_dir.glob("results/**/results_*.json"), key=lambda p: p.stat().st_mtime)
        if not saved:
            raise RuntimeError(f"LightEval wrote no results file under {self.output_dir / 'results'}")
        final: dict[str, Any] = json.loads(saved[-1].read_text(encoding="utf-8"))
        return RunOutcome(
            results={k: dict(v) for k, v in final.get("results", {}).items()},
            docs_per_task=docs_per_task,
            requests_total=total,
            requests_ok=counter.ok,
            requests_failed=counter.failed,
            first_failure=counter.first_failure,
            output_dir=self.output_dir,
            versions=dict(final.get("versions", {})),
        )
