"""Metric, direction, scale and threshold resolve independently through job -> collection -> provider."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from assay.api import MetricScale, PassCriteria, PrimaryScore
from assay.core import ScoreLayer, resolve_score_config

PROVIDER = ScoreLayer(
    PrimaryScore(metric="acc", lower_is_better=False, scale=MetricScale(min=0, max=1)),
    PassCriteria(threshold=0.5),
)


def test_entry_with_metric_only_keeps_the_provider_threshold() -> None:
    """EvalHub 1.0.2 dropped the provider threshold here and silently skipped the test."""
    config = resolve_score_config([ScoreLayer(PrimaryScore(metric="acc")), PROVIDER])
    assert (config.metric, config.threshold, config.scale) == ("acc", 0.5, MetricScale(min=0, max=1))


def test_provider_settings_do_not_leak_onto_another_metric() -> None:
    provider = ScoreLayer(
        PrimaryScore(metric="acc", lower_is_better=True, scale=MetricScale(min=0, max=100)),
        PassCriteria(threshold=50),
    )
    config = resolve_score_config([ScoreLayer(PrimaryScore(metric="bleu")), provider])
    assert (config.metric, config.threshold, config.scale, config.lower_is_better) == (
        "bleu",
        None,
        None,
        False,
    )
    # A well-known proportion gets the default [0, 1] (assay/core/scales.py), never the provider's scale.
    f1 = resolve_score_config([ScoreLayer(PrimaryScore(metric="f1")), provider])
    assert (f1.threshold, f1.scale, f1.lower_is_better) == (None, MetricScale(min=0, max=1), False)


def test_provider_direction_is_used_unless_overridden() -> None:
    provider = ScoreLayer(PrimaryScore(metric="asr", lower_is_better=True, scale=MetricScale(min=0, max=1)))
    assert resolve_score_config([ScoreLayer(PrimaryScore(metric="asr")), provider]).lower_is_better
    overridden = ScoreLayer(PrimaryScore(metric="asr", lower_is_better=False))
    assert not resolve_score_config([overridden, provider]).lower_is_better


def test_thresholds_come_from_the_most_specific_layer() -> None:
    job = ScoreLayer(pass_criteria=PassCriteria(threshold=0.9))
    collection = ScoreLayer(pass_criteria=PassCriteria(threshold=0.7))
    assert resolve_score_config([job, collection, PROVIDER]).threshold == 0.9
    assert resolve_score_config([ScoreLayer(), collection, PROVIDER]).threshold == 0.7


@given(st.floats(allow_nan=False, allow_infinity=False), st.booleans())
def test_an_empty_chain_above_the_provider_is_the_provider(threshold: float, lower: bool) -> None:
    provider = ScoreLayer(PrimaryScore(metric="m", lower_is_better=lower), PassCriteria(threshold=threshold))
    config = resolve_score_config([ScoreLayer(), ScoreLayer(), provider])
    assert (config.metric, config.threshold, config.lower_is_better) == ("m", threshold, lower)
