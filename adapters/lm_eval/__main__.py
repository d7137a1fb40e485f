"""``python -m adapters.lm_eval``: run the lm-evaluation-harness adapter on the job spec (see adapters.sdk)."""

from adapters.lm_eval.adapter import LMEvalAdapter
from adapters.sdk import run_adapter

raise SystemExit(run_adapter(LMEvalAdapter()))
