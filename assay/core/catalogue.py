"""Rules a collection must satisfy against the providers it references (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from assay.api import BenchmarkRef, BenchmarkSpec, CollectionSpec, ProviderSpec
from assay.core.scoring import ScoreLayer, resolve_score_config
from assay.errors import FieldError, InvalidRequest


def find_benchmark(
    providers: Mapping[str, ProviderSpec], provider_id: str, benchmark_id: str, at: str
) -> BenchmarkSpec | FieldError:
    """The benchmark ``(provider_id, benchmark_id)`` among ``providers``, or the error naming ``at``."""
    provider = providers.get(provider_id)
    if provider is None:
        return FieldError(
            f"{at}.provider_id", "resource_does_not_exist", f"provider {provider_id!r} does not exist"
        )
    benchmark = provider.benchmark(benchmark_id)
    if benchmark is None:
        return FieldError(
            f"{at}.id",
            "resource_does_not_exist",
            f"benchmark {benchmark_id!r} does not exist in provider {provider_id!r}",
        )
    return benchmark


@dataclass(frozen=True, slots=True)
class CheckedCollection:
    """A valid collection (each entry's ``url`` filled from its provider) and what to warn about."""

    spec: CollectionSpec
    warnings: list[FieldError] = field(default_factory=list)


def unscaled_warning(at: str, metric: str) -> FieldError:
    """The warning for a weighted benchmark whose metric has no scale: accepted, not in the composite."""
    return FieldError(
        f"{at}.primary_score.scale",
        "scale_unknown",
        f"metric {metric!r} has no known scale, so this benchmark is left out of the composite score "
        "(coverage shows it) and judged by its own test only: set primary_score.scale {min, max} to count it",
    )


def check_collection(spec: CollectionSpec, providers: Mapping[str, ProviderSpec]) -> CheckedCollection:
    """Validate ``spec`` against ``providers`` (id -> provider visible to the caller).

    Every referenced benchmark must exist; every weighted benchmark must resolve a primary metric
    that its provider reports; weights may not all be zero; the composite threshold lives on the
    normalised [0, 1] scale. A weighted metric without a scale (given, or by default in
    assay/core/scales.py) is accepted with a warning. Raises :class:`InvalidRequest` listing every
    problem.
    """
    errors: list[FieldError] = []
    warnings: list[FieldError] = []
    checked: list[BenchmarkRef] = []
    for index, ref in enumerate(spec.benchmarks):
        at = f"benchmarks[{index}]"
        benchmark = find_benchmark(providers, ref.provider_id, ref.id, at)
        if isinstance(benchmark, FieldError):
            errors.append(benchmark)
            checked.append(ref)
            continue
        config = resolve_score_config(
            [
                ScoreLayer(ref.primary_score, ref.pass_criteria),
                ScoreLayer(benchmark.primary_score, benchmark.pass_criteria),
            ]
        )
        if config.metric is None:
            if ref.weight > 0:
                errors.append(
                    FieldError(
                        f"{at}.primary_score",
                        "required",
                        f"benchmark {ref.id!r} has no primary score in its provider: set primary_score.metric",
                    )
                )
        elif benchmark.metrics and config.metric not in benchmark.metrics:
            errors.append(
                FieldError(
                    f"{at}.primary_score.metric",
                    "metric_not_reported",
                    f"metric {config.metric!r} is not one of {ref.id!r}'s metrics {benchmark.metrics}",
                )
            )
        elif config.scale is None and ref.weight > 0:
            warnings.append(unscaled_warning(at, config.metric))
        checked.append(ref.model_copy(update={"url": benchmark.url}))
    if spec.benchmarks and all(ref.weight == 0 for ref in spec.benchmarks):
        errors.append(
            FieldError("benchmarks", "all_weights_zero", "at least one benchmark needs a weight above 0")
        )
    if spec.pass_criteria is not None and not 0.0 <= spec.pass_criteria.threshold <= 1.0:
        errors.append(
            FieldError(
                "pass_criteria.threshold",
                "out_of_range",
                "the composite threshold is on the normalised scale and must lie in [0, 1]",
            )
        )
    if errors:
        listed = "; ".join(f"{e.path}: {e.message}" for e in errors)
        raise InvalidRequest(f"The collection is invalid: {listed}", errors=errors)
    return CheckedCollection(spec.model_copy(update={"benchmarks": checked}), warnings)


__all__ = ["CheckedCollection", "check_collection", "find_benchmark", "unscaled_warning"]
