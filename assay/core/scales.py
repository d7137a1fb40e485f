"""The default scales: well-known proportion metrics get ``[0, 1]`` without anyone writing it down.

A composite score mixes benchmarks on one normalised ``[0, 1]`` scale, so each benchmark's primary
metric needs a range. EvalHub's files, the eval-hub-sdk CLI (whose ``PrimaryScore`` has no ``scale``)
and most hand-written providers never say it. Every metric named here is a proportion in the
framework that reports it, so its range is ``[0, 1]``; a scale written anywhere in the chain
(job -> collection -> provider) always wins over this table. A metric that is neither here nor
given a scale is still accepted: its benchmark keeps its own test and is left out of the composite
(``unscored``), which ``coverage`` shows (docs/lifecycle.md, "Scoring").

The names come from the frameworks' metric registries:

- lm-evaluation-harness: ``lm_eval.api.metrics`` (``acc``, ``acc_norm``, ``acc_mutual_info``,
  ``exact_match``, ``f1``, ``mcc``, ``brier_score``...) and the task metrics of the bundled tasks
  (IFEval's ``prompt_level_*``/``inst_level_*``, TruthfulQA's ``mc1``/``mc2``, code tasks' ``pass@1``);
- LightEval: ``lighteval.metrics.metrics.Metrics`` (``em``, ``qem``, ``pem``, ``pqem``,
  ``quasi_exact_match``, ``prefix_exact_match``, ``extractive_match``, ``loglikelihood_acc``...);
- MTEB: the scores of ``mteb.abstasks`` (``main_score``, ``accuracy``, ``f1``, ``ap``, ``ndcg_at_10``,
  ``map_at_k``, ``mrr_at_k``, ``recall_at_k``, ``v_measure``...);
- garak: the detector rates of its report digest (``attack_success_rate``, ``pass_rate``);
- GuideLLM reports latencies and throughputs, which have no natural range: none is listed, so
  a GuideLLM benchmark needs an explicit scale to count in a composite (the built-in provider has one).

``accuracy`` and ``score`` are EvalHub's own generic names (its sample files and the SDK's examples).
lm-eval's ``metric,filter`` keys (``exact_match,strict-match``) and LightEval's ``metric:arguments`` keys
(``pass@k:k=1&n=1``) are looked up by the metric part.
"""

from __future__ import annotations

from assay.api import MetricScale

#: Metric name -> (framework(s) that report it). Every entry's range is [0, 1].
PROPORTION_METRICS: dict[str, str] = {
    # EvalHub's generic names
    "accuracy": "EvalHub, MTEB",
    "score": "EvalHub",
    # lm-evaluation-harness
    "acc": "lm-eval, LightEval",
    "acc_norm": "lm-eval, LightEval",
    "acc_mutual_info": "lm-eval",
    "exact_match": "lm-eval, LightEval",
    "f1": "lm-eval, LightEval, MTEB",
    "mcc": "lm-eval",
    "brier_score": "lm-eval",
    "mc1": "lm-eval, LightEval",
    "mc2": "lm-eval, LightEval",
    "truthfulqa_mc1": "LightEval",
    "truthfulqa_mc2": "LightEval",
    "prompt_level_strict_acc": "lm-eval, LightEval",
    "inst_level_strict_acc": "lm-eval, LightEval",
    "prompt_level_loose_acc": "lm-eval, LightEval",
    "inst_level_loose_acc": "lm-eval, LightEval",
    "pass@1": "lm-eval, LightEval",
    "pass_at_1": "lm-eval",
    "pass@k": "LightEval",
    "rougeL_acc": "lm-eval",
    "rouge1_acc": "lm-eval",
    "rouge2_acc": "lm-eval",
    "bleu_acc": "lm-eval",
    "pct_stereotype": "lm-eval",
    "contains": "lm-eval",
    # LightEval
    "em": "LightEval",
    "qem": "LightEval",
    "pem": "LightEval",
    "pqem": "LightEval",
    "quasi_exact_match": "LightEval",
    "prefix_exact_match": "LightEval",
    "prefix_quasi_exact_match": "LightEval",
    "extractive_match": "LightEval",
    "loglikelihood_acc": "LightEval",
    "loglikelihood_acc_norm": "LightEval",
    "loglikelihood_acc_norm_nospace": "LightEval",
    "loglikelihood_f1": "LightEval",
    "multi_f1_numeric": "LightEval",
    # MTEB
    "main_score": "MTEB",
    "f1_weighted": "MTEB",
    "precision": "MTEB",
    "recall": "MTEB",
    "ap": "MTEB",
    "max_ap": "MTEB",
    "max_f1": "MTEB",
    "max_accuracy": "MTEB",
    "v_measure": "MTEB",
    "ndcg_at_1": "MTEB",
    "ndcg_at_3": "MTEB",
    "ndcg_at_5": "MTEB",
    "ndcg_at_10": "MTEB",
    "ndcg_at_100": "MTEB",
    "map_at_10": "MTEB",
    "map_at_100": "MTEB",
    "map_at_1000": "MTEB",
    "mrr_at_10": "MTEB",
    "mrr_at_100": "MTEB",
    "recall_at_10": "MTEB",
    "recall_at_100": "MTEB",
    "precision_at_10": "MTEB",
    # garak
    "attack_success_rate": "garak",
    "pass_rate": "garak",
}

_UNIT = MetricScale(min=0.0, max=1.0)


def metric_name(metric: str) -> str:
    """The metric part of lm-eval's ``metric,filter`` and LightEval's ``metric:arguments`` keys."""
    return metric.partition(",")[0].partition(":")[0]


def default_scale(metric: str | None) -> MetricScale | None:
    """``[0, 1]`` for a well-known proportion metric, else None (the metric has no default scale)."""
    if metric is None or metric_name(metric) not in PROPORTION_METRICS:
        return None
    return _UNIT.model_copy()


__all__ = ["PROPORTION_METRICS", "default_scale", "metric_name"]
