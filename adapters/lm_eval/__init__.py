"""The lm-evaluation-harness adapter: all lm-eval benchmarks of a job in one harness run against an
OpenAI-compatible endpoint (``python -m adapters.lm_eval``; parameters in README.md).

Bundled tasks on local JSON Lines (``tasks/``): ``assay_arithmetic`` (40 word problems) and ``assay_capitals``
(50 world capitals), generation tasks scored by exact match.
"""

from __future__ import annotations

from adapters.lm_eval.adapter import LMEvalAdapter

__all__ = ["LMEvalAdapter"]
