"""Expand a job request into its frozen plan: the effective benchmarks with every setting resolved.

The plan is computed once at submission and stored with the job. Events, aggregation and retries
read only the plan, so editing or deleting a collection or provider afterwards changes nothing
about a job already accepted (EvalHub 1.0.2 re-read the collection live).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from assay.api import CollectionSpec, MetricScale, ProviderSpec
from assay.api.jobs import JobBenchmark, JobRequest, mlflow_name_problem
from assay.core.catalogue import find_benchmark
from assay.core.scoring import ScoreLayer, resolve_score_config
from assay.errors import FieldError, InvalidRequest, NotFound

DEFAULT_COMPOSITE_THRESHOLD = 0.5


class FrozenScore(BaseModel):
    """How one benchmark is judged, resolved job -> collection -> provider at submission."""

    metric: str | None = None
    lower_is_better: bool = False
    scale: MetricScale | None = None
    threshold: float | None = None


class FrozenRuntime(BaseModel):
    """The provider's runtime as it was at submission (a retry reruns exactly this)."""

    local_command: str | None = None
    local_env: dict[str, str] = Field(default_factory=dict)
    k8s: dict[str, Any] | None = None
    group: bool = False  # one process runs all of the job's benchmarks of this provider


class PlannedBenchmark(BaseModel):
    index: int
    provider_id: str
    id: str
    weight: float = 1.0
    parameters: dict[str, Any] = Field(default_factory=dict)
    num_examples: int | None = None
    test_data_ref: dict[str, Any] | None = None
    hardware_config: dict[str, Any] | None = None
    timeout_seconds: float | None = None
    score: FrozenScore = Field(default_factory=FrozenScore)
    runtime: FrozenRuntime = Field(default_factory=FrozenRuntime)
    fingerprint: str = ""
    unavailable: str | None = Field(
        None,
        description="Why this hub cannot run the benchmark (its provider has no runtime for it): the run "
        "is failed with code local_runtime_not_enabled as soon as the job is accepted, as EvalHub does.",
    )

    def document(self) -> dict[str, Any]:
        """The benchmark as the job's ``plan`` and the evaluation card show it (no runtime; unset keys left out)."""
        score = self.score
        primary: dict[str, Any] = {"metric": score.metric, "lower_is_better": score.lower_is_better}
        if score.scale is not None:
            primary["scale"] = score.scale.model_dump()
        entry: dict[str, Any] = {
            "benchmark_index": self.index,
            "provider_id": self.provider_id,
            "id": self.id,
            "weight": self.weight,
            "num_examples": self.num_examples,
            "parameters": self.parameters,
            "test_data_ref": self.test_data_ref,
            "primary_score": primary if score.metric else None,
            "pass_criteria": {"threshold": score.threshold} if score.threshold is not None else None,
            "timeout_seconds": self.timeout_seconds,
            "fingerprint": self.fingerprint,
        }
        return {k: v for k, v in entry.items() if v is not None}


class Plan(BaseModel):
    benchmarks: list[PlannedBenchmark]
    composite_threshold: float = DEFAULT_COMPOSITE_THRESHOLD
    composite_threshold_source: Literal["job", "collection", "default"] = "default"
    collection_id: str | None = None
    collection_updated_at: str | None = None


def _fingerprint(model: Mapping[str, Any], planned: PlannedBenchmark) -> str:
    """What determines a benchmark run's result: model, benchmark, parameters, data, adapter."""
    identity = {
        "model": {"url": model.get("url", ""), "name": model.get("name", "")},
        "provider_id": planned.provider_id,
        "benchmark_id": planned.id,
        "parameters": planned.parameters,
        "num_examples": planned.num_examples,
        "test_data_ref": planned.test_data_ref,
        "runtime": planned.runtime.model_dump(mode="json"),
    }
    encoded = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(encoded.encode()).hexdigest()


def _override_for(overrides: list[JobBenchmark], provider_id: str, benchmark_id: str) -> JobBenchmark | None:
    return next((o for o in overrides if o.provider_id == provider_id and o.id == benchmark_id), None)


Entry = tuple[str, JobBenchmark, JobBenchmark | None]
"""(path in the request, the benchmark entry, the job's override of a collection member)."""


def build_plan(
    request: JobRequest,
    *,
    providers: Mapping[str, ProviderSpec],
    collection: CollectionSpec | None = None,
    collection_updated_at: str | None = None,
    runtime: Literal["local", "kubernetes"] = "local",
) -> Plan:
    """The frozen plan of ``request``, or :class:`InvalidRequest` / :class:`NotFound` naming every problem.

    ``providers`` maps every provider id the request (or its collection) names to the provider the
    caller sees; a missing one is a 404 for a job's own benchmark list (as in EvalHub) and a 400 for a
    collection that references it.
    """
    entries, errors = _entries(request, collection)
    missing: list[str] = []
    if request.collection is None:
        missing = sorted({base.provider_id for _, base, _ in entries if base.provider_id not in providers})
    planned: list[PlannedBenchmark] = []
    model = request.model.model_dump(mode="json")
    for index, (path, base, override) in enumerate(entries):
        if base.provider_id in missing:
            errors.append(
                FieldError(
                    f"{path}.provider_id",
                    "resource_not_found",
                    f"provider {base.provider_id!r} does not exist",
                )
            )
            continue
        item = _plan_benchmark(index, path, base, override, request, providers, runtime, errors)
        if item is not None:
            planned.append(item.model_copy(update={"fingerprint": _fingerprint(model, item)}))
    errors += _job_errors(request, planned, errors)
    if missing and all(e.code == "resource_not_found" for e in errors):
        # Only providers that do not exist: 404, as in EvalHub. With other errors, one 400 lists them all.
        raise NotFound(f"Provider(s) {', '.join(map(repr, missing))} do not exist", errors=errors)
    if errors:
        codes = {e.code for e in errors}
        single = next(iter(codes)) if len(codes) == 1 else None
        message_code = single if single in ("model_url_required", "resource_does_not_exist") else None
        listed = "; ".join(f"{e.path}: {e.message}" for e in errors)
        raise InvalidRequest(
            f"The evaluation job is invalid: {listed}", message_code=message_code, errors=errors
        )
    if request.pass_criteria is not None:
        threshold, source = request.pass_criteria.threshold, "job"
    elif collection is not None and collection.pass_criteria is not None:
        threshold, source = collection.pass_criteria.threshold, "collection"
    else:
        threshold, source = DEFAULT_COMPOSITE_THRESHOLD, "default"
    return Plan(
        benchmarks=planned,
        composite_threshold=threshold,
        composite_threshold_source=source,
        collection_id=request.collection.id if request.collection else None,
        collection_updated_at=collection_updated_at,
    )


def _entries(request: JobRequest, collection: CollectionSpec | None) -> tuple[list[Entry], list[FieldError]]:
    """The benchmarks to plan: the job's own list, or its collection's members with the job's overrides
    (an override naming a benchmark the collection does not have is an error)."""
    if request.collection is None:
        assert request.benchmarks is not None  # the request model guarantees one of the two
        return [(f"benchmarks[{i}]", b, None) for i, b in enumerate(request.benchmarks)], []
    if collection is None:
        raise NotFound(f"Collection {request.collection.id!r} does not exist")
    errors: list[FieldError] = []
    members = {(b.provider_id, b.id) for b in collection.benchmarks}
    for i, given in enumerate(request.collection.benchmarks):
        if (given.provider_id, given.id) not in members:
            errors.append(
                FieldError(
                    f"collection.benchmarks[{i}]",
                    "resource_does_not_exist",
                    f"benchmark ({given.provider_id!r}, {given.id!r}) is not in collection "
                    f"{request.collection.id!r}",
                )
            )
    entries: list[Entry] = []
    for i, ref in enumerate(collection.benchmarks):
        base = JobBenchmark.model_validate(
            ref.model_dump(exclude_none=True, exclude={"url"}) | {"weight": ref.weight}
        )
        override = _override_for(request.collection.benchmarks, ref.provider_id, ref.id)
        entries.append((f"collection.benchmarks[{i}]", base, override))
    return entries, errors


def _plan_benchmark(
    index: int,
    path: str,
    base: JobBenchmark,
    override: JobBenchmark | None,
    request: JobRequest,
    providers: Mapping[str, ProviderSpec],
    runtime: Literal["local", "kubernetes"],
    errors: list[FieldError],
) -> PlannedBenchmark | None:
    """One benchmark with every setting resolved (override -> entry -> provider), without its fingerprint;
    None when the benchmark does not exist. What is wrong with it is appended to ``errors``."""
    benchmark = find_benchmark(providers, base.provider_id, base.id, path)
    if isinstance(benchmark, FieldError):
        errors.append(benchmark)
        return None
    layers = [ScoreLayer(base.primary_score, base.pass_criteria)]
    if override is not None:
        layers.insert(0, ScoreLayer(override.primary_score, override.pass_criteria))
    layers.append(ScoreLayer(benchmark.primary_score, benchmark.pass_criteria))
    config = resolve_score_config(layers)
    if config.metric is not None and benchmark.metrics and config.metric not in benchmark.metrics:
        errors.append(
            FieldError(
                f"{path}.primary_score.metric",
                "metric_not_reported",
                f"metric {config.metric!r} is not one of {base.id!r}'s metrics {benchmark.metrics}",
            )
        )
    # Deep copies: the plan must not share anything with the request or the catalogue objects.
    parameters = copy.deepcopy(base.parameters)
    if override is not None:
        parameters.update(copy.deepcopy(override.parameters))
    num_examples = parameters.pop("num_examples", None)
    weight = base.weight if base.weight is not None else 1.0
    if override is not None and override.weight is not None:
        weight = override.weight
    test_data = override.test_data_ref if override and override.test_data_ref else base.test_data_ref
    hardware = override.hardware_config if override and override.hardware_config else base.hardware_config
    hardware = hardware or request.hardware_config
    timeout = override.timeout_seconds if override and override.timeout_seconds else base.timeout_seconds
    frozen_runtime, unavailable = _frozen_runtime(providers[base.provider_id], base.provider_id, runtime)
    if runtime == "kubernetes" and not (frozen_runtime.k8s or {}).get("image"):
        errors.append(
            FieldError(
                f"{path}.provider_id",
                "k8s_runtime_not_enabled",
                f"provider {base.provider_id!r} has no runtime.k8s.image, so it cannot run on the cluster",
            )
        )
    if request.experiment is not None:
        errors += _mlflow_parameter_errors(path, parameters)
    return PlannedBenchmark(
        index=index,
        provider_id=base.provider_id,
        id=base.id,
        weight=weight,
        parameters=parameters,
        num_examples=num_examples,
        test_data_ref=test_data.model_dump(mode="json", exclude_none=True) if test_data else None,
        hardware_config=hardware.model_dump(mode="json", exclude_none=True) if hardware else None,
        timeout_seconds=timeout,
        score=FrozenScore(
            metric=config.metric,
            lower_is_better=config.lower_is_better,
            scale=config.scale.model_copy(deep=True) if config.scale else None,
            threshold=config.threshold,
        ),
        runtime=frozen_runtime,
        unavailable=unavailable,
    )


def _frozen_runtime(
    provider: ProviderSpec, provider_id: str, runtime: Literal["local", "kubernetes"]
) -> tuple[FrozenRuntime, str | None]:
    """The provider's runtime as the plan keeps it, and why this hub cannot run it locally (if it cannot)."""
    how = provider.runtime
    frozen = FrozenRuntime(
        local_command=how.local.command if how and how.local else None,
        local_env={e.name: e.value for e in how.local.env} if how and how.local else {},
        k8s=how.k8s.model_dump(mode="json", exclude_none=True) if how and how.k8s else None,
        group=bool(how and how.group_benchmarks),
    )
    unavailable = None
    if runtime == "local" and frozen.local_command is None:
        # EvalHub accepts the job (202) and fails it at once; its clients and tests expect that.
        unavailable = (
            f"Local runtime is not enabled for provider {provider_id!r}: it has no "
            "runtime.local.command, so the local hub cannot run it"
        )
    return frozen, unavailable


def _mlflow_parameter_errors(path: str, parameters: Mapping[str, Any]) -> list[FieldError]:
    """Each parameter becomes the MLflow parameter ``parameters.<name>`` at export: refuse now what MLflow
    would refuse then."""
    errors: list[FieldError] = []
    for name in parameters:
        problem = mlflow_name_problem(f"parameters.{name}")
        if problem is not None:
            errors.append(
                FieldError(
                    f"{path}.parameters.{name}",
                    "mlflow_name_invalid",
                    f"parameter {name!r} cannot be an MLflow parameter name: {problem}",
                )
            )
    return errors


def _job_errors(
    request: JobRequest, planned: Sequence[PlannedBenchmark], errors: Sequence[FieldError]
) -> list[FieldError]:
    """What is wrong with the job as a whole (checked after its benchmarks; ``errors`` found so far)."""
    found: list[FieldError] = []
    if planned and all(p.weight == 0 for p in planned) and not errors:
        found.append(
            FieldError("benchmarks", "all_weights_zero", "at least one benchmark needs a weight above 0")
        )
    if not request.model.url and not all(
        (p.test_data_ref or {}).get("type") == "pre_recorded_data" for p in planned
    ):
        found.append(
            FieldError(
                "model.url",
                "model_url_required",
                "model.url is required unless every benchmark uses pre_recorded_data test data",
            )
        )
    return found


def launch_groups(plan: Plan, due: Sequence[tuple[int, int]]) -> list[list[tuple[PlannedBenchmark, int]]]:
    """The processes to start for ``due`` (index, attempt) runs: one per benchmark, except that the
    benchmarks of a provider whose runtime takes groups share one (in plan order, the first one leads)."""
    groups: dict[object, list[tuple[PlannedBenchmark, int]]] = {}
    for index, attempt in sorted(due):
        planned = plan.benchmarks[index]
        runtime = planned.runtime
        key: object = (planned.provider_id, runtime.model_dump_json()) if runtime.group else index
        groups.setdefault(key, []).append((planned, attempt))
    return list(groups.values())


__all__ = ["FrozenRuntime", "FrozenScore", "Plan", "PlannedBenchmark", "build_plan", "launch_groups"]
