"""Scoring configuration: which metric, direction, scale and threshold judge a benchmark.

Each of the four is resolved on its own through the chain job entry -> collection entry -> provider
benchmark, so an entry that names only a metric still inherits the provider's threshold
(EvalHub 1.0.2 silently dropped it). A provider's direction, scale and threshold describe the
provider's primary metric, so they are inherited only while the resolved metric is that metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from assay.api import MetricScale, PassCriteria, PrimaryScore


@dataclass(frozen=True, slots=True)
class ScoreLayer:
    """What one level of the chain (job, collection or provider) says about scoring."""

    primary_score: PrimaryScore | None = None
    pass_criteria: PassCriteria | None = None


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    metric: str | None
    lower_is_better: bool
    scale: MetricScale | None
    threshold: float | None


def resolve_score_config(layers: Sequence[ScoreLayer]) -> ScoreConfig:
    """Resolve scoring from ``layers``, most specific first (job, collection, provider)."""
    metric = next((lay.primary_score.metric for lay in layers if lay.primary_score), None)

    def same_metric(layer: ScoreLayer) -> bool:
        # A layer that names no metric speaks about whatever metric is resolved.
        return layer.primary_score is None or layer.primary_score.metric == metric

    lower_is_better = False
    for layer in layers:
        score = layer.primary_score
        if score is not None and score.metric == metric and "lower_is_better" in score.model_fields_set:
            lower_is_better = score.lower_is_better
            break
    scale = next(
        (
            lay.primary_score.scale
            for lay in layers
            if lay.primary_score and lay.primary_score.metric == metric and lay.primary_score.scale
        ),
        None,
    )
    threshold = next(
        (lay.pass_criteria.threshold for lay in layers if lay.pass_criteria and same_metric(lay)), None
    )
    return ScoreConfig(metric=metric, lower_is_better=lower_is_better, scale=scale, threshold=threshold)


__all__ = ["ScoreConfig", "ScoreLayer", "resolve_score_config"]
