"""``python -m adapters.garak``: run the garak adapter on the job spec (see adapters.sdk)."""

from adapters.garak.adapter import GarakAdapter
from adapters.sdk import run_adapter

raise SystemExit(run_adapter(GarakAdapter()))
