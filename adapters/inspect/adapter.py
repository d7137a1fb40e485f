"""The Inspect AI adapter: one benchmark is one Inspect task run (``eval_async``) against the job's OpenAI-compatible
endpoint, through the sidecar.

Phases: ``initializing`` (sent by the SDK), ``loading_data`` (parameters, task lookup, tiktoken cache),
``running_evaluation`` with progress counted in samples done out of samples planned (times epochs),
``post_processing`` (metrics read from the log), then the results with every scorer metric and its stderr, and the
``.eval`` log as the artifact ``inspect_log``. A sample or scorer error that Inspect tolerated (``fail_on_error``) is
counted in ``samples_errored`` and sent as a warning; one it did not fails the benchmark with the sample's error
(``sample_error``), and a task that cannot be loaded with ``task_load_failed``. SIGTERM cancels the Inspect run
cleanly (its log is written with status ``cancelled``) and the SDK reports ``cancelled``.
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.inspect.config import InspectPlan, plan_inspect
from adapters.inspect.progress import ProgressReporter, SampleCounter
from adapters.inspect.results import SAMPLES_ERRORED, metric_results
from adapters.inspect.runner import (
    RunOutcome,
    ensure_tiktoken_cache,
    quiet_environment,
    read_log,
    run_eval,
)
from adapters.sdk import (
    FrameworkAdapter,
    JobCallbacks,
    JobPhase,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
    MessageInfo,
    model_api_key,
    package_version,
)

__all__ = ["InspectAdapter", "InspectRunFailed"]

logger = logging.getLogger("adapters.inspect")

# Inspect's openai-api provider wants a key; a keyless local endpoint accepts any.
_NO_KEY = "assay-no-key"


class InspectRunFailed(RuntimeError):
    """Inspect ended the run with status ``error`` (or without a log); already reported as ``failed``."""


class InspectAdapter(FrameworkAdapter):
    """Runs an Inspect task (shipped, a task file, or a registered one such as ``inspect_evals/gsm8k``)."""

    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> JobResults:
        started = time.monotonic()
        callbacks.report_status(JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.LOADING_DATA))
        plan = plan_inspect(config)
        quiet_environment()
        ensure_tiktoken_cache()
        callbacks.report_status(
            JobStatusUpdate(
                status=JobStatus.RUNNING,
                phase=JobPhase.RUNNING_EVALUATION,
                progress=0.0,
                current_step=f"Inspect task {plan.task_label}",
            )
        )
        log_dir = self.results_dir() / "inspect-logs"
        outcome = self._evaluate(plan, config, callbacks, log_dir)
        if outcome.stopped_by is not None:
            logger.warning("the Inspect run was cancelled; its log: %s", outcome.log_file)
            signal.raise_signal(outcome.stopped_by)  # the SDK's handler reports the benchmark cancelled
        log = outcome.log
        if log is None and outcome.log_file is not None:
            log = read_log(outcome.log_file)
        self._fail_unless_success(log, outcome, callbacks, plan)

        callbacks.report_status(
            JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.POST_PROCESSING, progress=1.0)
        )
        samples = list(log.samples or [])
        errored = [s for s in samples if s.error is not None]
        results = metric_results(log.results.model_dump(mode="json"), samples_errored=len(errored))
        names = [r.metric_name for r in results]
        warnings = []
        if errored:
            first = errored[0]
            warnings.append(
                f"{len(errored)} of {len(samples)} samples ended with an error and are not scored "
                f"(first: sample {first.id!r}, epoch {first.epoch}: {first.error.message})"
            )
        if plan.primary_metric is not None and plan.primary_metric not in names:
            warnings.append(
                f"the primary metric {plan.primary_metric!r} is not among the task's metrics ({', '.join(names)})"
            )
        if warnings:
            callbacks.report_status(
                JobStatusUpdate(
                    status=JobStatus.RUNNING,
                    phase=JobPhase.POST_PROCESSING,
                    warning_message=MessageInfo(
                        message="; ".join(warnings),
                        message_code="sample_errors" if errored else "primary_metric_missing",
                    ),
                )
            )
        assert outcome.log_file is not None  # a successful log was read from somewhere
        return JobResults(
            id=config.id,
            benchmark_id=config.benchmark_id,
            benchmark_index=config.benchmark_index,
            model_name=config.model.name,
            results=results,
            num_examples_evaluated=len(samples) - len(errored),
            duration_seconds=round(time.monotonic() - started, 3),
            completed_at=datetime.now(UTC),
            evaluation_metadata={
                # The .eval log: an adapter result file (MLflow child run, OCI layer); `inspect view` opens it.
                "artifacts": {"inspect_log": str(outcome.log_file.resolve())},
                "inspect_task": log.eval.task,
                "inspect_task_spec": plan.task,
                "inspect_ai_version": package_version("inspect-ai"),
                "inspect_evals_version": package_version("inspect-evals"),
                "epochs": log.eval.config.epochs,
                SAMPLES_ERRORED: len(errored),
                "model": plan.model,
                "endpoint": plan.base_url,
            },
        )

    def _evaluate(
        self, plan: InspectPlan, config: JobSpec, callbacks: JobCallbacks, log_dir: Path
    ) -> RunOutcome:
        counter = SampleCounter()
        reporter = ProgressReporter(counter, callbacks).start()
        api_key = model_api_key(config, self.settings.mode) or _NO_KEY
        try:
            outcome = run_eval(plan, counter, api_key=api_key, log_dir=log_dir)
        except BaseException as exc:
            try:
                reporter.stop(flush=False)
            except Exception as progress_error:
                logger.error("progress reporting also failed: %s", progress_error)
            if counter.snapshot()[1] == 0 and isinstance(exc, Exception):
                # Inspect failed before the task started: the task could not be found or built.
                callbacks.report_status(
                    JobStatusUpdate(
                        status=JobStatus.FAILED,
                        phase=JobPhase.LOADING_DATA,
                        error_message=MessageInfo(
                            message=f"Inspect task {plan.task_label!r} could not be loaded: "
                            f"{type(exc).__name__}: {exc}",
                            message_code="task_load_failed",
                        ),
                    )
                )
            raise
        reporter.stop(flush=outcome.stopped_by is None)
        return outcome

    def _fail_unless_success(
        self, log: Any, outcome: RunOutcome, callbacks: JobCallbacks, plan: InspectPlan
    ) -> None:
        if log is not None and log.status == "success" and log.results is not None:
            return
        where = f" (log: {outcome.log_file})" if outcome.log_file else ""
        if log is None:
            message, code = f"Inspect returned no log for task {plan.task_label!r}", "inspect_error"
        else:
            errored = [s for s in (log.samples or []) if s.error is not None]
            detail = log.error.message if log.error is not None else f"status {log.status}"
            if errored:
                first = errored[0]
                message = (
                    f"Inspect task {plan.task_label!r} failed: sample {first.id!r} (epoch {first.epoch}) raised "
                    f"{first.error.message}; {len(errored)} of {len(log.samples or [])} samples failed"
                )
                code = "sample_error"
            else:
                message, code = f"Inspect task {plan.task_label!r} failed: {detail}", "inspect_error"
        callbacks.report_status(
            JobStatusUpdate(
                status=JobStatus.FAILED,
                phase=JobPhase.RUNNING_EVALUATION,
                error_message=MessageInfo(message=message + where, message_code=code),
            )
        )
        raise InspectRunFailed(message)
