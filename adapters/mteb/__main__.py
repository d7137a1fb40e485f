"""Entry point: ``python -m adapters.mteb`` runs the job spec at ``EVALHUB_JOB_SPEC_PATH`` (or the default)."""

from adapters.mteb.adapter import MTEBAdapter
from adapters.sdk import configure_logging, run_adapter

configure_logging()
raise SystemExit(run_adapter(MTEBAdapter()))
