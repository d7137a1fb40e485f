"""The LightEval adapter: runs LightEval 0.13 tasks against an OpenAI-compatible endpoint and reports them.

LightEval talks to the model through its litellm endpoint backend (chat completions), so only generative tasks
run; the bundled ``assay_capitals`` and ``assay_arithmetic`` tasks read small local datasets (see
:mod:`adapters.lighteval.tasks`). Every benchmark of the process (the spec and its ``group``) that shares a
``num_examples`` goes into ONE LightEval pipeline, so LightEval's imports and task registry load once.

Parameters (``spec.parameters``; all optional):

- ``tasks``: LightEval task names, a list or a comma-separated string (default: the benchmark id). A name may
  carry its few-shot count (``name|k``, or the older ``suite|name|k``); a superset name such as ``mmlu`` is
  reported as the mean over its sub-tasks.
- ``num_fewshot``: few-shot examples for names given without one (default 0).
- ``custom_tasks``: path to a Python file with a ``TASKS_TABLE`` of extra LightEval tasks.
- ``system_prompt``: system prompt sent with every request.
- ``temperature``, ``max_new_tokens``, ``seed``: generation parameters (LightEval defaults otherwise).
- ``max_model_length`` (4096), ``concurrent_requests`` (2), ``timeout`` seconds per request (120),
  ``api_max_retry`` (3): endpoint settings of LightEval's litellm client.

``spec.num_examples`` becomes LightEval's ``max_samples`` (per task). The endpoint is ``spec.model.url`` (with or
without ``/v1``), the model ``spec.model.name``; an API key is read from ``<dir>/api-key`` when
``model.auth.secret_ref`` is ``file:///<dir>``.

Reported metrics are LightEval's metric names (``em``, ``f1``, ...) with LightEval's standard errors; LightEval's
results JSON and per-sample details (parquet) are written under ``<run dir>/results/lighteval`` and listed in
``evaluation_metadata["artifacts"]``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import math
import shutil
import tempfile
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.sdk import (
    EvaluationResult,
    FrameworkAdapter,
    JobCallbacks,
    JobPhase,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
    callbacks_for_member,
    float_parameter,
    int_parameter,
    model_api_key,
    openai_base_url,
    package_version,
)

__all__ = [
    "LightEvalAdapter",
    "LightEvalParameters",
    "metrics_for_tasks",
    "task_specs",
]

_TASKS_MODULE = Path(__file__).resolve().parent / "tasks.py"
# Progress events go out at most this often (plus the last one): a status event per request would flood the hub.
_PROGRESS_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class LightEvalParameters:
    """The adapter's parameters, validated; errors name the parameter."""

    tasks: tuple[str, ...]
    custom_tasks: Path | None
    system_prompt: str | None
    generation: dict[str, Any]
    max_model_length: int
    concurrent_requests: int
    timeout: float
    api_max_retry: int

    @classmethod
    def from_spec(cls, spec: JobSpec) -> LightEvalParameters:
        params = dict(spec.parameters)
        fewshot = int_parameter(params, "num_fewshot", 0, minimum=0)
        tasks = task_specs(params.get("tasks", spec.benchmark_id), fewshot)
        custom = params.get("custom_tasks")
        if custom is not None and not (isinstance(custom, str) and Path(custom).is_file()):
            raise ValueError(f"parameter custom_tasks: {custom!r} is not a readable Python file")
        system_prompt = params.get("system_prompt")
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise ValueError(f"parameter system_prompt must be a string, got {type(system_prompt).__name__}")
        generation: dict[str, Any] = {}
        if "temperature" in params:
            generation["temperature"] = float_parameter(params, "temperature", 0.0, positive=False)
        if "max_new_tokens" in params:
            generation["max_new_tokens"] = int_parameter(params, "max_new_tokens", 0, minimum=1)
        if "seed" in params:
            generation["seed"] = int_parameter(params, "seed", 0, minimum=0)
        return cls(
            tasks=tasks,
            custom_tasks=Path(custom) if isinstance(custom, str) else None,
            system_prompt=system_prompt,
            generation=generation,
            max_model_length=int_parameter(params, "max_model_length", 4096, minimum=16),
            concurrent_requests=int_parameter(params, "concurrent_requests", 2, minimum=1),
            timeout=float_parameter(params, "timeout", 120.0, positive=False),
            api_max_retry=int_parameter(params, "api_max_retry", 3, minimum=1),
        )


def task_specs(tasks: object, num_fewshot: int) -> tuple[str, ...]:
    """LightEval ``name|k`` specs from the ``tasks`` parameter; names without a count get ``num_fewshot``."""
    if isinstance(tasks, str):
        names = [t.strip() for t in tasks.split(",")]
    elif isinstance(tasks, list) and all(isinstance(t, str) for t in tasks):
        names = [t.strip() for t in tasks]
    else:
        raise ValueError(f"parameter tasks must be a string or a list of strings, got {tasks!r}")
    specs: list[str] = []
    for name in names:
        if not name:
            raise ValueError(f"parameter tasks has an empty task name: {tasks!r}")
        parts = name.split("|")
        if len(parts) == 1:
            specs.append(f"{name}|{num_fewshot}")
        elif len(parts) in (2, 3) and parts[-1].isascii() and parts[-1].isdigit() and all(parts[:-1]):
            specs.append(f"{parts[-2]}|{parts[-1]}")  # "suite|name|k": 0.13 ignores the suite
        else:
            raise ValueError(f"parameter tasks: {name!r} is not 'name' or 'name|num_fewshot'")
    return tuple(dict.fromkeys(specs))


def _result_keys(spec: str, results: dict[str, dict[str, float]]) -> list[str]:
    name, fewshot = spec.split("|")
    if spec in results:
        return [spec]
    # A superset (``mmlu``) is reported by LightEval per sub-task (``mmlu:anatomy|0``).
    return sorted(k for k in results if k.startswith(f"{name}:") and k.endswith(f"|{fewshot}"))


def metrics_for_tasks(
    specs: Sequence[str], results: dict[str, dict[str, float]], docs_per_task: dict[str, int]
) -> list[EvaluationResult]:
    """One EvaluationResult per metric of the benchmark's tasks, from LightEval's ``results`` dict.

    A single task's metrics are reported as they are, with LightEval's ``<metric>_stderr``; several tasks (a
    superset, or a list) are averaged with equal weight, and the standard error of that mean combines theirs.
    """
    keys: list[str] = []
    for spec in specs:
        found = _result_keys(spec, results)
        if not found:
            raise ValueError(
                f"LightEval produced no results for task {spec} (results for: {sorted(results)})"
            )
        keys.extend(found)
    names = sorted({m for k in keys for m in results[k] if not m.endswith("_stderr")})
    out: list[EvaluationResult] = []
    for metric in names:
        values = [float(results[k][metric]) for k in keys if metric in results[k]]
        errors = [results[k].get(f"{metric}_stderr") for k in keys if metric in results[k]]
        value = sum(values) / len(values)
        stderr: float | None = None
        if all(isinstance(e, int | float) and math.isfinite(e) and e >= 0 for e in errors):
            stderr = math.sqrt(sum(float(e) ** 2 for e in errors if e is not None)) / len(errors)
        samples = sum(docs_per_task.get(k, 0) for k in keys if metric in results[k])
        out.append(
            EvaluationResult(
                metric_name=metric,
                metric_value=value,
                stderr=stderr,
                num_samples=samples or None,
                metadata={"tasks": [k for k in keys if metric in results[k]]},
            )
        )
    return out


def _custom_tasks_module(extra: Path | None) -> types.ModuleType:
    """The bundled tasks plus the user's, as one module (LightEval's registry accepts one custom module)."""
    tables: list[Any] = []
    for path in [_TASKS_MODULE, *([extra] if extra else [])]:
        spec = importlib.util.spec_from_file_location(f"assay_lighteval_tasks_{len(tables)}", path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot load LightEval tasks from {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        table = getattr(module, "TASKS_TABLE", None)
        if not isinstance(table, list):
            raise ValueError(f"{path} has no TASKS_TABLE list of LightevalTaskConfig")
        tables.extend(table)
    combined = types.ModuleType("assay_lighteval_tasks")
    combined.TASKS_TABLE = tables  # type: ignore[attr-defined]
    return combined


class _Progress:
    """Turns request counts into throttled ``running_evaluation`` events for every benchmark of a run."""

    def __init__(self, reporters: list[JobCallbacks]) -> None:
        self._reporters = reporters
        self._last_sent = 0.0
        self._first_sent = False

    def send(self, done: int, total: int, *, force: bool = False) -> None:
        """``done`` of ``total`` requests: sent when forced, when finished, for the first finished request (so a run
        whose requests all finish within one interval still shows it moved), and else at most every interval."""
        now = time.monotonic()
        first = done > 0 and not self._first_sent
        if not (force or first or done >= total) and now - self._last_sent < _PROGRESS_INTERVAL_SECONDS:
            return
        self._first_sent = self._first_sent or done > 0
        self._last_sent = now
        for reporter in self._reporters:
            reporter.report_status(
                JobStatusUpdate(
                    status=JobStatus.RUNNING,
                    phase=JobPhase.RUNNING_EVALUATION,
                    progress=done / total if total else 1.0,
                    completed_steps=done,
                    total_steps=total,
                    current_step=f"{done}/{total} requests",
                )
            )


def _report(reporters: list[JobCallbacks], phase: JobPhase, step: str) -> None:
    for reporter in reporters:
        reporter.report_status(JobStatusUpdate(status=JobStatus.RUNNING, phase=phase, current_step=step))


class LightEvalAdapter(FrameworkAdapter):
    """Runs the spec's LightEval tasks (and its group's) and returns one JobResults per benchmark."""

    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> list[JobResults]:
        members = config.members()
        plans = [(member, LightEvalParameters.from_spec(member)) for member in members]
        base_url = openai_base_url(config.model.url, framework="LightEval")
        # litellm's OpenAI client refuses an empty key; local servers ignore it.
        api_key = model_api_key(config, self.settings.mode) or "EMPTY"
        results_root = self.results_dir()
        # Benchmarks with the same num_examples and endpoint settings share one pipeline (max_samples is global).
        batches: dict[tuple[Any, ...], list[tuple[JobSpec, LightEvalParameters]]] = {}
        for member, params in plans:
            key = (member.num_examples, params.custom_tasks, params.system_prompt, tuple(sorted(params.generation.items())),
                   params.max_model_length, params.concurrent_requests, params.timeout, params.api_max_retry)  # fmt: skip
            batches.setdefault(key, []).append((member, params))

        from adapters.lighteval import _pipeline  # LightEval's imports are heavy: only when running

        all_results: list[JobResults] = []
        for number, batch in enumerate(batches.values()):
            started = time.monotonic()
            batch_reporters = [callbacks_for_member(callbacks, member, config) for member, _ in batch]
            first = batch[0][1]
            specs = list(dict.fromkeys(s for _, params in batch for s in params.tasks))
            _report(batch_reporters, JobPhase.LOADING_DATA, f"loading LightEval tasks {','.join(specs)}")
            output_dir = results_root / ("lighteval" if len(batches) == 1 else f"lighteval-{number}")
            # Only this run's files are its artifacts (a re-run in the same run dir starts clean).
            shutil.rmtree(output_dir, ignore_errors=True)
            cache_dir = Path(tempfile.mkdtemp(prefix="assay-lighteval-cache-"))
            progress = _Progress(batch_reporters)
            try:
                outcome = _pipeline.LightEvalRun(
                    tasks=",".join(specs),
                    custom_tasks=_custom_tasks_module(first.custom_tasks),
                    model_name=config.model.name,
                    base_url=base_url,
                    api_key=api_key,
                    max_samples=batch[0][0].num_examples,
                    output_dir=output_dir,
                    cache_dir=cache_dir,
                    max_model_length=first.max_model_length,
                    concurrent_requests=first.concurrent_requests,
                    timeout=first.timeout,
                    api_max_retry=first.api_max_retry,
                    system_prompt=first.system_prompt,
                    generation_parameters=first.generation,
                ).execute(
                    on_loaded=functools.partial(progress.send, 0, force=True),
                    on_progress=progress.send,
                )
            finally:
                shutil.rmtree(cache_dir, ignore_errors=True)
            # LightEval turns a request that failed every retry into an empty answer (scored 0): a run where
            # none succeeded is an endpoint failure, not a score.
            if outcome.requests_total and outcome.requests_ok == 0:
                raise RuntimeError(
                    f"every request to the model endpoint {base_url} failed "
                    f"({outcome.requests_total} requests); first error: {outcome.first_failure or 'not reported'}"
                )
            _report(batch_reporters, JobPhase.POST_PROCESSING, "reading LightEval results")
            artifacts = {
                str(path.relative_to(output_dir)): str(path)
                for path in sorted(output_dir.rglob("*"))
                if path.is_file()
            }
            elapsed = time.monotonic() - started
            for member, params in batch:
                metrics = metrics_for_tasks(params.tasks, outcome.results, outcome.docs_per_task)
                evaluated = max((m.num_samples or 0 for m in metrics), default=0)
                all_results.append(
                    JobResults(
                        id=member.id,
                        benchmark_id=member.benchmark_id,
                        benchmark_index=member.benchmark_index,
                        model_name=member.model.name,
                        results=metrics,
                        num_examples_evaluated=evaluated,
                        duration_seconds=elapsed,
                        completed_at=datetime.now(UTC),
                        evaluation_metadata={
                            "framework": "lighteval",
                            "framework_version": package_version("lighteval"),
                            "tasks": list(params.tasks),
                            "max_samples": member.num_examples,
                            "requests_ok": outcome.requests_ok,
                            "requests_failed": outcome.requests_total - outcome.requests_ok,
                            "artifacts": artifacts,
                        },
                    )
                )
        return all_results
