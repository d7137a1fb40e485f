"""Turn a (group) job spec into one lm-evaluation-harness run: which tasks, with which few-shot count and limit,
against which endpoint, with which client settings.

Pure: no lm-eval import, no I/O, so the mapping is testable and documented in one place. The parameters are
listed in ``adapters/lm_eval/README.md`` and in :class:`LMEvalParameters`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from adapters.sdk import JobSpec, ParameterError, openai_base_url, validate_parameters

__all__ = [
    "BUNDLED_TASKS",
    "HarnessPlan",
    "LMEvalParameters",
    "MemberPlan",
    "ParameterError",
    "endpoint_url",
    "plan_harness",
]

BUNDLED_TASKS = Path(__file__).resolve().parent / "tasks"
# Settings of the one LM client that serves every task of the run: they must agree across the group.
_RUN_WIDE = ("model_type", "num_concurrent", "max_retries", "max_gen_toks", "request_timeout", "tasks_dir")


class LMEvalParameters(BaseModel):
    """``spec.parameters`` understood by the lm-eval adapter; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(
        default=None, description="lm-eval task or group name; default: the benchmark id."
    )
    num_fewshot: int | None = Field(default=None, ge=0, description="Few-shot examples; default: the task's.")
    filter: str | None = Field(
        default=None, description="Which of the task's filters is reported under the bare metric names."
    )
    model_type: Literal["completions", "chat"] = Field(
        default="completions",
        description="`completions` (lm-eval local-completions) or `chat` (local-chat-completions, with the "
        "chat template applied by the server).",
    )
    num_concurrent: int = Field(default=2, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(default=3, ge=1, description="Attempts per request (lm-eval's tenacity retry).")
    max_gen_toks: int | None = Field(
        default=None, ge=1, description="Default generation length for tasks that do not set one."
    )
    request_timeout: int = Field(default=300, ge=1, description="Seconds per request.")
    tasks_dir: str | None = Field(
        default=None,
        description="A directory of the user's lm-eval task YAMLs, searched before the bundled ones.",
    )


class MemberPlan(BaseModel):
    """One benchmark of the group: the lm-eval task that runs it and its per-task settings."""

    benchmark_id: str
    benchmark_index: int
    task: str
    num_fewshot: int | None
    limit: int | None
    filter: str | None


class HarnessPlan(BaseModel):
    """Everything one ``simple_evaluate`` call needs (the LM client's settings come from the lead benchmark)."""

    endpoint: str
    model_name: str
    chat: bool
    num_concurrent: int
    max_retries: int
    max_gen_toks: int | None
    request_timeout: int
    include_paths: list[Path]
    members: list[MemberPlan]

    @property
    def tasks(self) -> list[str]:
        return [m.task for m in self.members]


def endpoint_url(model_url: str, *, chat: bool) -> str:
    """The full completions (or chat completions) URL for an OpenAI-compatible base URL given with or
    without ``/v1``, a trailing slash, or an endpoint path."""
    url = openai_base_url(model_url, framework="lm-eval")
    return url + ("/chat/completions" if chat else "/completions")


def _parameters(member: JobSpec) -> LMEvalParameters:
    return validate_parameters(
        LMEvalParameters,
        member.parameters,
        context=f"benchmark {member.benchmark_id!r}",
        field_prefix="parameters.",
    )


def plan_harness(spec: JobSpec) -> HarnessPlan:
    """The harness run for ``spec`` and its group members (``spec.members()``, lead first)."""
    members = spec.members()
    parameters = [_parameters(m) for m in members]
    lead = parameters[0]
    for member, params in zip(members[1:], parameters[1:], strict=True):
        given = params.model_fields_set
        for name in _RUN_WIDE:
            if name in given and getattr(params, name) != getattr(lead, name):
                raise ParameterError(
                    f"benchmark {member.benchmark_id!r}: parameters.{name}={getattr(params, name)!r} differs from "
                    f"{getattr(lead, name)!r} of {members[0].benchmark_id!r}; the tasks of one job share one "
                    "lm-eval run, so it must be the same for all of them"
                )
    include_paths = [BUNDLED_TASKS]
    if lead.tasks_dir:
        user_dir = Path(lead.tasks_dir).expanduser()
        if not user_dir.is_dir():
            raise ParameterError(f"parameters.tasks_dir {lead.tasks_dir!r} is not a directory")
        # lm-eval lets later paths override earlier ones: the user's definitions win over the bundled ones.
        include_paths.append(user_dir.resolve())
    plans = [
        MemberPlan(
            benchmark_id=member.benchmark_id,
            benchmark_index=member.benchmark_index,
            task=params.task or member.benchmark_id,
            num_fewshot=params.num_fewshot,
            limit=member.num_examples,
            filter=params.filter,
        )
        for member, params in zip(members, parameters, strict=True)
    ]
    seen: dict[str, str] = {}
    for plan in plans:
        if plan.task in seen:
            raise ParameterError(
                f"benchmarks {seen[plan.task]!r} and {plan.benchmark_id!r} both run lm-eval task {plan.task!r}; "
                "one harness run evaluates a task once"
            )
        seen[plan.task] = plan.benchmark_id
        if plan.limit is not None and plan.limit < 1:
            raise ParameterError(
                f"benchmark {plan.benchmark_id!r}: num_examples must be at least 1, got {plan.limit}"
            )
    chat = lead.model_type == "chat"
    return HarnessPlan(
        endpoint=endpoint_url(spec.model.url, chat=chat),
        model_name=spec.model.name,
        chat=chat,
        num_concurrent=lead.num_concurrent,
        max_retries=lead.max_retries,
        max_gen_toks=lead.max_gen_toks,
        request_timeout=lead.request_timeout,
        include_paths=include_paths,
        members=plans,
    )
