"""Evaluation policy wire models: "when a model version matching this rule appears, evaluate it like this
and gate it against that baseline". Tenant-scoped, validated like collections (every invalid field named).

String values in ``action`` (benchmark parameters, the experiment name, the endpoint template, the job
name) may use placeholders filled from the model version: ``{model}``, ``{version}``, ``{source}``,
``{registry}``, ``{stage}``, ``{event}`` and ``{tag:KEY}``. An unknown placeholder is refused at create
time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import re2
from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from assay.api.common import PassCriteria, Resource, ResourceId, Tag, WireModel, check_composite_threshold
from assay.api.jobs import CollectionRef, Experiment, JobBenchmark, ModelAuth

TriggerSource = Literal["mlflow", "kubeflow", "cloudevents", "github", "gitlab"]
TRIGGER_SOURCES: tuple[TriggerSource, ...] = ("mlflow", "kubeflow", "cloudevents", "github", "gitlab")

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_FIELDS = frozenset({"model", "version", "source", "registry", "stage", "event"})


def placeholder_problem(text: str) -> str | None:
    """Why ``text`` is not a valid template (an unknown or empty placeholder), or None."""
    for match in PLACEHOLDER.finditer(text):
        name = match.group(1)
        if name in _FIELDS or (name.startswith("tag:") and len(name) > 4):
            continue
        return (
            f"unknown placeholder {{{name}}}: use {{model}}, {{version}}, {{source}}, {{registry}}, "
            "{stage}, {event} or {tag:KEY}"
        )
    return None


def template_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside ``value`` (dicts and lists walked), with its dotted path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from template_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from template_strings(item, f"{path}[{index}]")


class PolicyRule(WireModel):
    """Which model versions the policy applies to; every given condition must hold."""

    sources: list[TriggerSource] = Field(
        min_length=1,
        description="Where the model version comes from: mlflow, kubeflow, cloudevents, github, gitlab.",
    )
    registry: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        None, description="Only this registry (its URL or name as the event reports it)."
    )
    model_name: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        None,
        description="A glob over the model name (`*`, `?`, `[...]`); for CI events, the repository path.",
    )
    model_name_regex: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        None, description="A regular expression the whole model name must match."
    )
    events: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        description="Only these events (model_version.created, model_version_alias.created, "
        "model_version_tag.set, push, pull_request, merge_request, release, workflow_dispatch, ...).",
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tags the version must carry; the value `*` means any value."
    )
    aliases: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        default_factory=list, description="The version must hold at least one of these aliases."
    )
    stages: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        description="The version's stage (MLflow stage, Kubeflow state) is one of these.",
    )

    @field_validator("model_name_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                # RE2 runs in time linear in the input: a pattern like (a+)+$ cannot stall the hub. It refuses
                # what it cannot run that way (backreferences, lookaround).
                re2.compile(value)
            except re2.error as exc:
                raise ValueError(
                    f"not a regular expression RE2 can run (no backreferences or lookaround): {exc}"
                ) from None
        return value

    @model_validator(mode="after")
    def _one_name_rule(self) -> PolicyRule:
        if self.model_name is not None and self.model_name_regex is not None:
            raise ValueError("give model_name (a glob) or model_name_regex, not both")
        return self


class EndpointResolution(WireModel):
    """Where the model under evaluation is served: the registry's metadata first, else the template."""

    metadata_keys: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        default_factory=lambda: ["serving_endpoint", "endpoint"],
        description="Tags (MLflow tags, Kubeflow custom properties) holding the endpoint URL, tried in order "
        "after the endpoint the event itself names.",
    )
    template: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = Field(
        None, description="An http(s) URL template, e.g. `http://{model}-v{version}.models.svc/v1`."
    )

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            problem = placeholder_problem(value)
            if problem:
                raise ValueError(problem)
            if not value.startswith(("http://", "https://", "{")):
                raise ValueError("must be an http(s) URL template")
        return value


class PolicyAction(WireModel):
    """What to run for a matching version: a collection or benchmarks, as in a job request."""

    collection: CollectionRef | None = None
    benchmarks: list[JobBenchmark] | None = None
    job_name: Annotated[str, StringConstraints(min_length=1, max_length=256)] = "{model} v{version}"
    served_model_name: Annotated[str, StringConstraints(min_length=1, max_length=512)] = Field(
        "{model}", description="`model.name` of the job: the name the serving endpoint knows the model by."
    )
    pass_criteria: PassCriteria | None = None
    experiment: Experiment | None = None
    model_parameters: dict[str, Any] = Field(default_factory=dict)
    model_auth: ModelAuth | None = None
    endpoint: EndpointResolution = Field(default_factory=EndpointResolution)
    tags: list[Tag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _what_to_run(self) -> PolicyAction:
        if (self.collection is None) == (self.benchmarks is None):
            raise ValueError("give either collection or benchmarks")
        if self.benchmarks is not None and not self.benchmarks:
            raise ValueError("benchmarks must list at least one benchmark")
        check_composite_threshold(self.pass_criteria)
        return self


class PolicyBaseline(WireModel):
    """What the evaluation is compared with: the policy's evaluation of the previous version (by version
    order, not arrival), of the version holding an alias, or a fixed job."""

    kind: Literal["previous_version", "alias", "job", "none"] = "previous_version"
    alias: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    job_id: ResourceId | None = None

    @model_validator(mode="after")
    def _needs(self) -> PolicyBaseline:
        if self.kind == "alias" and self.alias is None:
            raise ValueError("kind alias needs alias")
        if self.kind == "job" and self.job_id is None:
            raise ValueError("kind job needs job_id")
        if self.kind != "alias" and self.alias is not None:
            raise ValueError("alias is only used with kind alias")
        if self.kind != "job" and self.job_id is not None:
            raise ValueError("job_id is only used with kind job")
        return self


class PolicyGate(WireModel):
    """Pass criteria beyond the thresholds: no benchmark worse than the baseline by more than ``max_drop``
    (metric units, or a fraction of the baseline with ``relative``) and more than ``sigma`` combined
    standard errors."""

    max_drop: float = Field(0.0, ge=0, allow_inf_nan=False)
    relative: bool = False
    sigma: float = Field(2.0, ge=0, allow_inf_nan=False)
    require_thresholds: bool = Field(True, description="The composite must also pass its threshold.")


class PolicySpec(WireModel):
    """What a client sends to create or replace a policy."""

    id: ResourceId | None = Field(None, description="Optional on create: a readable id; default a UUID.")
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    description: Annotated[str, StringConstraints(max_length=1024)] = ""
    tags: list[Tag] = Field(default_factory=list)
    enabled: bool = True
    rule: PolicyRule
    action: PolicyAction
    baseline: PolicyBaseline = Field(default_factory=PolicyBaseline)
    gate: PolicyGate = Field(default_factory=PolicyGate)
    resource: dict[str, Any] | None = Field(
        None, description="Ignored on input: resource metadata is the server's.", exclude=True
    )


class PolicyResource(Resource):
    file: str | None = Field(
        None, description="Set when the policy comes from a YAML file under the config directory: read-only."
    )


class Policy(BaseModel):
    """A policy as the API returns it."""

    resource: PolicyResource
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    enabled: bool = True
    rule: PolicyRule
    action: PolicyAction
    baseline: PolicyBaseline
    gate: PolicyGate


class PolicyPage(BaseModel):
    first: dict[str, str]
    next: dict[str, str] | None = None
    limit: int
    total_count: int
    items: list[Policy] = Field(default_factory=list)


__all__ = [
    "PLACEHOLDER",
    "TRIGGER_SOURCES",
    "EndpointResolution",
    "Policy",
    "PolicyAction",
    "PolicyBaseline",
    "PolicyGate",
    "PolicyPage",
    "PolicyRule",
    "PolicySpec",
    "TriggerSource",
    "placeholder_problem",
    "template_strings",
]
