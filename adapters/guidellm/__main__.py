"""``python -m adapters.guidellm``: run the GuideLLM adapter on the job spec (see adapters.sdk)."""

from adapters.guidellm.adapter import GuideLLMAdapter
from adapters.sdk import run_adapter

raise SystemExit(run_adapter(GuideLLMAdapter()))
