"""``python -m adapters.inspect``: run the Inspect AI adapter on the job spec (see adapters.sdk)."""

from adapters.inspect.adapter import InspectAdapter
from adapters.sdk import run_adapter

raise SystemExit(run_adapter(InspectAdapter()))
