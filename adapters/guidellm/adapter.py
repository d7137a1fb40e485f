"""The GuideLLM adapter: runs one GuideLLM load profile against the job's model endpoint and reports
throughput and latency.

GuideLLM runs in this process through its Python API (the same steps as its ``benchmark_generative_text``
entry point) so that a progress tracker can report real progress: completed runs of the profile and the
fraction of the current run's request or time budget. Its JSON, CSV and HTML reports are written under the
run's ``results`` directory and listed as artifacts.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from adapters.guidellm.config import GuideLLMRun, plan_run
from adapters.guidellm.report import metrics_from_report
from adapters.sdk import (
    FrameworkAdapter,
    JobCallbacks,
    JobPhase,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
    callbacks_for_member,
    results_from_metrics,
)

__all__ = ["GuideLLMAdapter"]

# Progress events at most this often: a run may complete many requests per second.
_PROGRESS_INTERVAL_SECONDS = 1.0


def _offline_environment() -> None:
    # The tokenizer and data are local; nothing may be fetched from the Hub, and nothing phoned home.
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
    }.items():
        os.environ.setdefault(key, value)


class _ProgressReporter:
    """Turns GuideLLM's progress hooks into ``running_evaluation`` events with progress and step counts."""

    def __init__(self, callbacks: JobCallbacks, run: GuideLLMRun) -> None:
        self._callbacks = callbacks
        self._run = run
        self._completed_runs = 0
        self._last_sent = 0.0
        self._last_progress = -1.0

    def started(self, strategy: str) -> None:
        self._send(strategy, self._completed_runs / self._run.expected_runs, force=True)

    def updated(self, strategy: str, done_fraction: float | None, processed: int) -> None:
        fraction = done_fraction if done_fraction is not None else 0.0
        if self._run.max_requests:
            fraction = max(fraction, min(1.0, processed / self._run.max_requests))
        overall = (self._completed_runs + min(1.0, max(0.0, fraction))) / self._run.expected_runs
        self._send(f"{strategy}: {processed} requests", overall)

    def completed(self, strategy: str) -> None:
        self._completed_runs += 1
        self._send(f"{strategy} finished", self._completed_runs / self._run.expected_runs, force=True)

    def _send(self, step: str, progress: float, *, force: bool = False) -> None:
        now = time.monotonic()
        # Progress never goes backwards on the wire, and a sweep may run more strategies than it announced.
        progress = min(1.0, max(progress, self._last_progress))
        if not force and (
            now - self._last_sent < _PROGRESS_INTERVAL_SECONDS or progress == self._last_progress
        ):
            return
        self._last_sent, self._last_progress = now, progress
        self._callbacks.report_status(
            JobStatusUpdate(
                status=JobStatus.RUNNING,
                phase=JobPhase.RUNNING_EVALUATION,
                progress=round(progress, 4),
                current_step=step,
                total_steps=max(self._run.expected_runs, self._completed_runs),
                completed_steps=self._completed_runs,
            )
        )


async def _run_guidellm(run: GuideLLMRun, reporter: _ProgressReporter) -> dict[str, Any]:
    """GuideLLM's ``benchmark_generative_text`` without its console, plus our progress tracker; returns the
    report as JSON-compatible data."""
    # GuideLLM is imported here, not at module level: it takes seconds and only the adapter's env has it.
    from guidellm.benchmark.benchmarker import (  # type: ignore[import-not-found, unused-ignore]
        Benchmarker,
    )
    from guidellm.benchmark.entrypoints import (  # type: ignore[import-not-found, unused-ignore]
        resolve_backend,
        resolve_constraints,
        resolve_output_formats,
        resolve_profile,
        resolve_to_single_benchmark,
        resolve_tokenizer,
    )
    from guidellm.benchmark.progress import (  # type: ignore[import-not-found, unused-ignore]
        BenchmarkerProgress,
        CompositeBenchmarkerProgress,
        GenerativeLoggingBenchmarkerProgress,
    )
    from guidellm.benchmark.schemas import (  # type: ignore[import-not-found, unused-ignore]
        GenerativeBenchmark,
        GenerativeBenchmarkAccumulator,
        GenerativeBenchmarksReport,
    )
    from guidellm.data import create_data_loader  # type: ignore[import-not-found, unused-ignore]
    from guidellm.scheduler import NonDistributedEnvironment  # type: ignore[import-not-found, unused-ignore]
    from guidellm.schemas.benchmark import BenchmarkScenario  # type: ignore[import-not-found, unused-ignore]

    class AssayProgress(BenchmarkerProgress):  # type: ignore[misc, unused-ignore]
        def __init__(self) -> None:
            super().__init__()
            self._strategy = ""

        async def on_initialize(self, profile: Any) -> None:
            self.profile = profile

        async def on_benchmark_start(self, strategy: Any) -> None:
            self._strategy = str(strategy.type_)
            reporter.started(self._strategy)

        async def on_benchmark_update(self, accumulator: Any, scheduler_state: Any) -> None:
            remaining = scheduler_state.progress.remaining_fraction
            done = None if remaining is None else 1.0 - float(remaining)
            reporter.updated(self._strategy, done, int(scheduler_state.processed_requests))

        async def on_benchmark_complete(self, benchmark: Any) -> None:
            reporter.completed(self._strategy)

        async def on_finalize(self) -> None:
            return None

    scenario = BenchmarkScenario.create(scenario=None, spec=run.spec)
    args = resolve_to_single_benchmark(scenario.get_benchmarks())
    backend, model = await resolve_backend(backend_args=args.backend, console=None)
    await resolve_tokenizer(args=args, model=model, console=None)
    requests = await create_data_loader(
        loader_config=args.data_loader,
        data_config=args.data,
        tokenizer_config=args.tokenizer,
        column_mapper_config=args.data_column_mapper,
        preprocessors_config=args.data_preprocessors,
        finalizer_config=args.data_finalizer,
        random_seed=args.seed.value,
        console=None,
    )
    constraints = resolve_constraints(args)
    profile = await resolve_profile(
        profile=args.profile, constraints=constraints, console=None, random_seed=args.seed.value
    )
    outputs = await resolve_output_formats(outputs=args.outputs, console=None)
    report = GenerativeBenchmarksReport(config=scenario)
    trackers = CompositeBenchmarkerProgress([GenerativeLoggingBenchmarkerProgress(), AssayProgress()])
    async for benchmark in Benchmarker().run(
        accumulator_class=GenerativeBenchmarkAccumulator,
        benchmark_class=GenerativeBenchmark,
        requests=requests,
        backend=backend,
        profile=profile,
        environment=NonDistributedEnvironment(),
        progress=trackers,
        sample_size=args.metrics.sample_size,
        warmup=args.profile.warmup,
        cooldown=args.profile.cooldown,
        prefer_response_metrics=args.metrics.prefer_response_metrics,
        slo=args.metrics.slo,
        confidence=args.metrics.confidence,
        warnings=args.metrics.warnings,
    ):
        if benchmark:
            report.benchmarks.append(benchmark)
    if (conclusion := profile.conclusion) is not None:
        report.conclusions.append(conclusion)
    for output in outputs:
        await output.finalize(report)
    data: dict[str, Any] = json.loads(report.model_dump_json())
    return data


class GuideLLMAdapter(FrameworkAdapter):
    """Runs GuideLLM for each benchmark of the job spec (one, or each member of a group)."""

    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> list[JobResults]:
        _offline_environment()
        return [
            self._run_member(member, callbacks_for_member(callbacks, member, config))
            for member in config.members()
        ]

    def _run_member(self, member: JobSpec, callbacks: JobCallbacks) -> JobResults:
        started = time.monotonic()
        results_dir = self.results_dir(member)
        callbacks.report_status(JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.LOADING_DATA))
        run = plan_run(
            benchmark_id=member.benchmark_id,
            parameters=member.parameters,
            num_examples=member.num_examples,
            model_url=member.model.url,
            model_name=member.model.name,
            output_dir=results_dir,
        )
        (results_dir / "guidellm-scenario.json").write_text(json.dumps(run.spec, indent=2))
        callbacks.report_status(
            JobStatusUpdate(
                status=JobStatus.RUNNING,
                phase=JobPhase.RUNNING_EVALUATION,
                progress=0.0,
                current_step=f"{run.profile} profile, {run.data_description}",
                total_steps=run.expected_runs,
                completed_steps=0,
            )
        )
        report = asyncio.run(_run_guidellm(run, _ProgressReporter(callbacks, run)))
        callbacks.report_status(JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.POST_PROCESSING))
        metrics, summary = metrics_from_report(report)
        artifacts = {
            name: str(results_dir / file)
            for name, file in (
                ("guidellm_report_json", "benchmarks.json"),
                ("guidellm_report_csv", "benchmarks.csv"),
                ("guidellm_report_html", "benchmarks.html"),
                ("guidellm_scenario", "guidellm-scenario.json"),
            )
            if (results_dir / file).is_file()
        }
        return JobResults(
            id=member.id,
            benchmark_id=member.benchmark_id,
            benchmark_index=member.benchmark_index,
            model_name=member.model.name,
            results=results_from_metrics(metrics),
            num_examples_evaluated=int(summary["requests_total"]),
            duration_seconds=time.monotonic() - started,
            completed_at=datetime.now(UTC),
            evaluation_metadata={
                "framework": "guidellm",
                "profile": run.profile,
                "data": run.data_description,
                "max_requests": run.max_requests,
                "max_seconds": run.max_seconds,
                "latency_unit": "ms",
                **summary,
                "artifacts": artifacts,
            },
        )
