"""``python -m adapters.inspect``: run the Inspect AI adapter on the job spec (see adapters.sdk)."""

import logging

from adapters.inspect.adapter import InspectAdapter
from adapters.sdk import run_adapter

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
for noisy in ("httpx", "httpcore", "openai"):  # one line per model request otherwise
    logging.getLogger(noisy).setLevel(logging.WARNING)

raise SystemExit(run_adapter(InspectAdapter()))
