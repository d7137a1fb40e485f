"""Entry point: ``python -m adapters.mteb`` runs the job spec at ``EVALHUB_JOB_SPEC_PATH`` (or the default)."""

import logging

from adapters.mteb.adapter import MTEBAdapter
from adapters.sdk import run_adapter

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
raise SystemExit(run_adapter(MTEBAdapter()))
