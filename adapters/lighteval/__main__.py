"""Entry point: ``python -m adapters.lighteval`` runs the job spec at ``EVALHUB_JOB_SPEC_PATH`` (or the default)."""

from adapters.lighteval.adapter import LightEvalAdapter
from adapters.sdk import configure_logging, run_adapter

configure_logging()
raise SystemExit(run_adapter(LightEvalAdapter()))
