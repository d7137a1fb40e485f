"""The lm-evaluation-harness adapter: every lm-eval benchmark of a job (the lead spec and its ``group``) runs in
ONE ``lm_eval.simple_evaluate`` call against the job's OpenAI-compatible model endpoint.

Phases per benchmark: ``initializing`` (sent by the SDK), ``loading_data`` (task lookup, few-shot and limits),
``running_evaluation`` with progress counted in answered model requests, ``post_processing`` (raw results and
per-sample logs written, metrics read), then the results. A benchmark whose task exists nowhere gets its own
``failed`` event (``unknown_task``) while the others still run; the process then exits non-zero.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.lm_eval.config import HarnessPlan, MemberPlan, plan_harness
from adapters.lm_eval.harness import LoadedTasks, evaluate, load_tasks, quiet_environment, write_outputs
from adapters.lm_eval.progress import ProgressReporter, RequestCounter
from adapters.lm_eval.results import evaluated_examples, member_metrics
from adapters.sdk import (
    FrameworkAdapter,
    JobCallbacks,
    JobPhase,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
    MessageInfo,
    callbacks_for_member,
    model_api_key,
)

__all__ = ["LMEvalAdapter"]

logger = logging.getLogger("adapters.lm_eval")


class LMEvalAdapter(FrameworkAdapter):
    """Runs lm-eval tasks (bundled, a user's ``tasks_dir``, or lm-eval's own) for a job spec or group spec."""

    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> list[JobResults]:
        started = time.monotonic()
        plan = plan_harness(config)
        routed = {m.benchmark_index: callbacks_for_member(callbacks, m, config) for m in config.members()}
        for member_callbacks in routed.values():
            member_callbacks.report_status(
                JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.LOADING_DATA)
            )

        quiet_environment()
        loaded = load_tasks(plan)
        for unknown in loaded.unknown:
            routed[unknown.member.benchmark_index].report_status(
                JobStatusUpdate(
                    status=JobStatus.FAILED,
                    phase=JobPhase.LOADING_DATA,
                    error_message=MessageInfo(message=str(unknown), message_code="unknown_task"),
                )
            )
        if not loaded.members:
            raise LookupError("; ".join(str(u) for u in loaded.unknown))

        for member in loaded.members:
            routed[member.benchmark_index].report_status(
                JobStatusUpdate(
                    status=JobStatus.RUNNING,
                    phase=JobPhase.RUNNING_EVALUATION,
                    progress=0.0,
                    current_step=f"lm-eval task {member.task}",
                )
            )
        raw = self._evaluate(plan, loaded, config, routed)

        for member in loaded.members:
            routed[member.benchmark_index].report_status(
                JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.POST_PROCESSING, progress=1.0)
            )
        artifacts = write_outputs(raw, self.results_dir())
        duration = time.monotonic() - started
        results = [
            self._member_results(config, plan, member, raw, loaded, artifacts, duration)
            for member in loaded.members
        ]
        if loaded.unknown:
            # Report the benchmarks that ran before failing the process for the ones that could not.
            for result in results:
                routed[result.benchmark_index].report_results(result)
            raise LookupError("; ".join(str(u) for u in loaded.unknown))
        return results

    def _evaluate(
        self, plan: HarnessPlan, loaded: LoadedTasks, config: JobSpec, routed: dict[int, JobCallbacks]
    ) -> dict[str, Any]:
        counter = RequestCounter()
        reporter = ProgressReporter(
            counter, loaded.routes, {m.benchmark_index: routed[m.benchmark_index] for m in loaded.members}
        ).start()
        try:
            raw = evaluate(plan, loaded, counter, api_key=model_api_key(config, self.settings.mode) or "")
        except BaseException:
            try:
                reporter.stop()
            except Exception as progress_error:
                # The harness failure is what the job reports; this one is logged, not allowed to hide it.
                logger.error("progress reporting also failed: %s", progress_error)
            raise
        reporter.stop()
        return raw

    def _member_results(
        self,
        config: JobSpec,
        plan: HarnessPlan,
        member: MemberPlan,
        raw: dict[str, Any],
        loaded: LoadedTasks,
        artifacts: dict[str, Path],
        duration: float,
    ) -> JobResults:
        metrics, chosen_filter = member_metrics(raw, member)
        leaves = sorted(task for task, index in loaded.routes.items() if index == member.benchmark_index)
        mine = {"lm_eval_results": str(artifacts["lm_eval_results"])}
        mine.update(
            {f"samples_{t}": str(artifacts[f"samples_{t}"]) for t in leaves if f"samples_{t}" in artifacts}
        )
        n_shot = raw.get("n-shot", {})
        return JobResults(
            id=config.id,
            benchmark_id=member.benchmark_id,
            benchmark_index=member.benchmark_index,
            model_name=config.model.name,
            results=metrics,
            num_examples_evaluated=evaluated_examples(raw, member.task),
            duration_seconds=round(duration, 3),
            completed_at=datetime.now(UTC),
            evaluation_metadata={
                "artifacts": mine,
                "lm_eval_task": member.task,
                "lm_eval_version": raw.get("lm_eval_version"),
                "filter": chosen_filter,
                "num_fewshot": {t: n_shot.get(t) for t in leaves},
                "model_type": "chat" if plan.chat else "completions",
                "endpoint": plan.endpoint,
            },
        )
