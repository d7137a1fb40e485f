"""GuideLLM adapter: throughput and latency load profiles against an OpenAI-compatible endpoint.

Run it with ``python -m adapters.guidellm`` (or ``assay-adapter guidellm``) in the environment built from
``requirements.txt``. Parameters (``spec.parameters``, all optional; see README.md):

- ``profile``: synchronous | concurrent | throughput | constant | poisson | sweep (default: the benchmark id,
  or synchronous for the bundled ``smoke`` benchmark).
- ``rate``: streams for concurrent, requests/s for constant and poisson (a number or a list: one run per
  value), the number of runs for sweep, the maximum concurrency for throughput.
- ``max_requests`` / ``num_examples``: requests per run (the smaller wins); ``max_seconds``: seconds per run.
  Without either: 8 requests for ``smoke``, else 100 requests or 120 s.
- ``data``: a local data file (.jsonl/.json/.csv/.txt/.parquet/.arrow with a ``prompt`` column) or GuideLLM's
  synthetic spec (``"prompt_tokens=256,output_tokens=128"``); ``prompt_tokens`` / ``output_tokens`` for
  synthetic prompts (default 256 / 128; ``smoke`` uses the bundled ``data/prompts.jsonl``); with a data file,
  ``output_tokens`` is each request's ``max_tokens`` (32 for ``smoke``), unless the file has an
  ``output_tokens_count`` column.
- ``request_format``: ``/v1/completions`` (default) or ``/v1/chat/completions``.
- ``tokenizer``: a local tokenizer folder (default the bundled ``data/tokenizer``); ``seed`` (42);
  ``request_timeout`` (seconds).

Metrics: ``requests_per_second``, ``output_tokens_per_second``, ``total_tokens_per_second`` (higher is
better) and, in milliseconds, ``time_to_first_token_ms_*``, ``inter_token_latency_ms_*``,
``time_per_output_token_ms_*``, ``request_latency_ms_*`` with ``_mean`` (with stderr), ``_p50``, ``_p95``,
``_p99`` (lower is better), plus request counts and ``error_rate``.
"""

from __future__ import annotations

from adapters.guidellm.adapter import GuideLLMAdapter

__all__ = ["GuideLLMAdapter"]
