"""Read one benchmark's metrics out of lm-eval's results dictionary, under the bare metric names the catalogue
uses.

lm-eval keys every value ``"<metric>,<filter>"`` (``"exact_match,strict-match"``, ``"acc,none"``) and its
standard error ``"<metric>_stderr,<filter>"``. A task reports one set of metrics per filter pipeline; the
adapter reports ONE filter's set under the bare names: the ``filter`` parameter when given, else the task's only
filter, else ``strict-match`` (gsm8k's exact answer format), else ``none`` (no post-processing), else the first
in alphabetical order. The filter reported is named in each metric's metadata. Pure: no lm-eval import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.lm_eval.config import MemberPlan, ParameterError
from adapters.sdk import EvaluationResult, finite_number

__all__ = ["FILTER_PREFERENCE", "choose_filter", "evaluated_examples", "member_metrics"]

FILTER_PREFERENCE = ("strict-match", "none")
_STDERR = "_stderr"


def _split(key: str) -> tuple[str, str] | None:
    metric, sep, filter_name = key.partition(",")
    return (metric, filter_name) if sep and metric else None


def choose_filter(available: set[str], requested: str | None, task: str) -> str:
    """The filter whose metrics are reported (see the module docstring for the rule)."""
    if requested is not None:
        if requested not in available:
            raise ParameterError(
                f"parameters.filter {requested!r} is not a filter of lm-eval task {task!r} "
                f"(its filters: {', '.join(sorted(available)) or 'none reported'})"
            )
        return requested
    if len(available) == 1:
        return next(iter(available))
    for preferred in FILTER_PREFERENCE:
        if preferred in available:
            return preferred
    return sorted(available)[0]


def member_metrics(raw: Mapping[str, Any], plan: MemberPlan) -> tuple[list[EvaluationResult], str]:
    """The metrics of ``plan``'s task (or group) and the filter they come from."""
    table = raw.get("results", {}).get(plan.task)
    if not isinstance(table, Mapping):
        raise ValueError(
            f"lm-eval returned no results for task {plan.task!r} (benchmark {plan.benchmark_id!r})"
        )
    values: dict[tuple[str, str], Any] = {}
    for key, value in table.items():
        parts = _split(str(key))
        if parts is not None:
            values[parts] = value
    available = {filter_name for metric, filter_name in values if not metric.endswith(_STDERR)}
    if not available:
        raise ValueError(
            f"lm-eval reported no metrics for task {plan.task!r} (benchmark {plan.benchmark_id!r})"
        )
    chosen = choose_filter(available, plan.filter, plan.task)
    samples = evaluated_examples(raw, plan.task)
    results: list[EvaluationResult] = []
    for (metric, filter_name), value in sorted(values.items()):
        if filter_name != chosen or metric.endswith(_STDERR):
            continue
        number = finite_number(value)
        if number is None:
            continue  # a non-numeric or NaN value (e.g. a metric over zero samples) has no score to report
        stderr = finite_number(values.get((metric + _STDERR, chosen)))
        results.append(
            EvaluationResult(
                metric_name=metric,
                metric_value=number,
                stderr=abs(stderr) if stderr is not None else None,
                num_samples=samples or None,
                metadata={"filter": chosen, "lm_eval_key": f"{metric},{chosen}", "task": plan.task},
            )
        )
    return results, chosen


def evaluated_examples(raw: Mapping[str, Any], task: str) -> int:
    """Examples evaluated for a task, or summed over a group's subtasks."""
    counts = raw.get("n-samples", {})
    entry = counts.get(task)
    if isinstance(entry, Mapping):
        return int(entry.get("effective", 0))
    children = raw.get("group_subtasks", {}).get(task, [])
    return sum(evaluated_examples(raw, child) for child in children if child != task)
