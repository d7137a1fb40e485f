"""The smallest eval-hub-sdk adapter: one phase event, then one result (``score: 1.0``), then exit 0.

Used by ``bench/orchestration.py`` as the local command of provider ``trivial`` under both EvalHub and
Assay, so that what is timed is the hub's orchestration, not the evaluation.
"""

from __future__ import annotations

from evalhub.adapter import (
    DefaultCallbacks,
    EvaluationResult,
    FrameworkAdapter,
    JobCallbacks,
    JobPhase,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
)


class TrivialAdapter(FrameworkAdapter):
    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> JobResults:
        callbacks.report_status(JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.RUNNING_EVALUATION))
        return JobResults(
            id=config.id,
            benchmark_id=config.benchmark_id,
            benchmark_index=config.benchmark_index,
            model_name=config.model.name,
            results=[EvaluationResult(metric_name="score", metric_value=1.0)],
            num_examples_evaluated=1,
            duration_seconds=0.0,
        )


def main() -> None:
    adapter = TrivialAdapter()  # loads job.json from EVALHUB_JOB_SPEC_PATH
    callbacks = DefaultCallbacks.from_adapter(adapter)
    callbacks.report_results(adapter.run_benchmark_job(adapter.job_spec, callbacks))


if __name__ == "__main__":
    main()
