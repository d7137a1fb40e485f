"""Turn a job spec into one Inspect AI evaluation: which task (a shipped one, a task file, or a registered task such
as ``inspect_evals/gsm8k``) with which arguments, epochs and limits, against which endpoint, with which client
settings.

Pure: no Inspect import, no I/O beyond checking that a named task file exists, so the mapping is testable and
documented in one place. The parameters are listed in ``adapters/inspect/README.md`` and in
:class:`InspectParameters`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from adapters.sdk import JobSpec, ParameterError, openai_base_url, validate_parameters

__all__ = [
    "SHIPPED_TASKS",
    "TASKS_DIR",
    "InspectParameters",
    "InspectPlan",
    "ParameterError",
    "ShippedTask",
    "plan_inspect",
    "resolve_task",
]

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
# The Inspect "service" name of the job's endpoint: the model is ``openai-api/assay/<model.name>``.
SERVICE = "assay"


@dataclass(frozen=True)
class ShippedTask:
    """A task module shipped in ``tasks/`` and the defaults it runs with (overridable by parameters)."""

    file: str
    defaults: tuple[tuple[str, Any], ...] = ()


# The shipped tasks run offline on repo data. The tool task emulates tool calling by default: the bundled
# llama.cpp server has no native tool support (no Jinja chat templates), and emulation works on any chat endpoint.
SHIPPED_TASKS: dict[str, ShippedTask] = {
    "assay_qa": ShippedTask("assay_qa.py"),
    "assay_graded": ShippedTask("assay_graded.py"),
    "assay_tools": ShippedTask("assay_tools.py", defaults=(("emulate_tools", True),)),
}


class InspectParameters(BaseModel):
    """``spec.parameters`` understood by the Inspect adapter; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(
        default=None,
        description="A shipped task (assay_qa, assay_graded, assay_tools), a registered task (inspect_evals/gsm8k), "
        "or a task file (tasks.py or tasks.py@name, relative to tasks_dir); default: the benchmark id, looked up "
        "among the shipped tasks and then as inspect_evals/<id>.",
    )
    tasks_dir: str | None = Field(
        default=None, description="Directory that relative task files are found in."
    )
    task_args: dict[str, Any] = Field(default_factory=dict, description="Arguments of the @task function.")
    epochs: int | None = Field(default=None, ge=1, description="Times each sample runs; default: the task's.")
    epochs_reducer: str | list[str] | None = Field(
        default=None,
        description="How a sample's epochs combine (mean, median, mode, max, at_least_<k>, ...).",
    )
    sample_shuffle: int | None = Field(default=None, description="Shuffle the samples with this seed first.")
    max_tokens: int | None = Field(default=None, ge=1, description="Generation length; default: the task's.")
    temperature: float | None = Field(default=None, ge=0, description="Sampling temperature.")
    max_connections: int = Field(default=2, ge=1, description="Model requests in flight at once.")
    max_samples: int | None = Field(
        default=None, ge=1, description="Samples run at once (Inspect's default)."
    )
    message_limit: int | None = Field(
        default=None, ge=1, description="Messages per sample (multi-turn tasks)."
    )
    token_limit: int | None = Field(default=None, ge=1, description="Tokens per sample.")
    time_limit: int | None = Field(default=None, ge=1, description="Seconds per sample.")
    max_retries: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Inspect's own retries of a failed model call. The sidecar already retries 429/5xx with "
        "backoff, so the default 0 keeps the two from multiplying.",
    )
    request_timeout: int = Field(default=600, ge=1, description="Seconds per model request attempt.")
    fail_on_error: bool | float = Field(
        default=True,
        description="Inspect's fail_on_error: true fails the benchmark on the first sample error, false never, a "
        "fraction < 1 or a count >= 1 when that many samples fail. Tolerated errors are reported.",
    )
    emulate_tools: bool | None = Field(
        default=None,
        description="Describe tools in the prompt instead of the API's tools field (for endpoints without "
        "native tool calling); default: the shipped task's setting, else false.",
    )


class InspectPlan(BaseModel):
    """Everything one ``eval_async`` call needs."""

    benchmark_id: str
    task: str  # what Inspect is given: "file.py@name" or a registry name
    task_label: str  # the name the benchmark asked for
    task_args: dict[str, Any]
    base_url: str
    model: str  # openai-api/assay/<model.name>
    epochs: int | None
    epochs_reducer: list[str] | None
    limit: int | None
    sample_shuffle: int | None
    max_tokens: int | None
    temperature: float | None
    max_connections: int
    max_samples: int | None
    message_limit: int | None
    token_limit: int | None
    time_limit: int | None
    max_retries: int
    request_timeout: int
    fail_on_error: bool | float
    emulate_tools: bool
    primary_metric: str | None


def resolve_task(name: str, tasks_dir: str | None) -> tuple[str, ShippedTask | None]:
    """What Inspect is given for the task ``name``, and the shipped task it is (if it is one)."""
    if name in SHIPPED_TASKS:
        shipped = SHIPPED_TASKS[name]
        return f"{TASKS_DIR / shipped.file}@{name}", shipped
    file_part, at, task_name = name.partition("@")
    if file_part.endswith(".py"):
        path = Path(file_part).expanduser()
        if not path.is_absolute():
            if tasks_dir is None:
                raise ParameterError(
                    f"parameters.task {name!r} is a relative task file: give parameters.tasks_dir, or an absolute path"
                )
            path = Path(tasks_dir).expanduser() / path
        if not path.is_file():
            raise ParameterError(f"parameters.task {name!r}: task file {path} does not exist")
        return f"{path.resolve()}{at}{task_name}", None
    if "/" in name:
        return name, None  # a registry name: inspect_evals/gsm8k, or another package's task
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ParameterError(f"parameters.task {name!r} is not a task name")
    return f"inspect_evals/{name}", None


def _reducers(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    reducers = [value] if isinstance(value, str) else list(value)
    if not reducers or any(not r.strip() for r in reducers):
        raise ParameterError("parameters.epochs_reducer must name at least one reducer")
    return reducers


def plan_inspect(spec: JobSpec) -> InspectPlan:
    """The Inspect evaluation for ``spec`` (one benchmark: the provider does not group benchmarks)."""
    if spec.group:
        raise ParameterError("the Inspect adapter runs one benchmark per process; the job spec has a group")
    params = validate_parameters(
        InspectParameters,
        spec.parameters,
        context=f"benchmark {spec.benchmark_id!r}",
        field_prefix="parameters.",
    )
    if not isinstance(params.fail_on_error, bool) and params.fail_on_error < 0:
        raise ParameterError("parameters.fail_on_error must be true, false, a fraction or a count")
    if params.epochs_reducer is not None and params.epochs is None:
        raise ParameterError("parameters.epochs_reducer needs parameters.epochs")
    if params.tasks_dir is not None and not Path(params.tasks_dir).expanduser().is_dir():
        raise ParameterError(f"parameters.tasks_dir {params.tasks_dir!r} is not a directory")
    label = params.task or spec.benchmark_id
    task, shipped = resolve_task(label, params.tasks_dir)
    defaults = dict(shipped.defaults) if shipped is not None else {}
    if spec.num_examples is not None and spec.num_examples < 1:
        raise ParameterError(f"benchmark {spec.benchmark_id!r}: num_examples must be at least 1")
    emulate = (
        params.emulate_tools if params.emulate_tools is not None else bool(defaults.get("emulate_tools"))
    )
    return InspectPlan(
        benchmark_id=spec.benchmark_id,
        task=task,
        task_label=label,
        task_args=dict(params.task_args),
        base_url=openai_base_url(spec.model.url, framework="Inspect"),
        model=f"openai-api/{SERVICE}/{spec.model.name}",
        epochs=params.epochs,
        epochs_reducer=_reducers(params.epochs_reducer),
        limit=spec.num_examples,
        sample_shuffle=params.sample_shuffle,
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        max_connections=params.max_connections,
        max_samples=params.max_samples,
        message_limit=params.message_limit,
        token_limit=params.token_limit,
        time_limit=params.time_limit,
        max_retries=params.max_retries,
        request_timeout=params.request_timeout,
        fail_on_error=params.fail_on_error,
        emulate_tools=emulate,
        primary_metric=spec.primary_score.metric if spec.primary_score is not None else None,
    )
