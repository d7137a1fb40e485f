"""``python -m adapters.inspect``: run the Inspect AI adapter on the job spec (see adapters.sdk)."""

from adapters.inspect.adapter import InspectAdapter
from adapters.sdk import configure_logging, run_adapter

configure_logging("httpx", "httpcore", "openai")  # one line per model request otherwise
raise SystemExit(run_adapter(InspectAdapter()))
