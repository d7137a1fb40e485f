"""Per-benchmark accounting of model traffic, reported in the benchmark's terminal ``completed`` event as
``benchmark_status_event.usage``.

What the counters mean:

- ``requests``: model requests the adapter made; ``cache_hits``: those answered from the cache;
- ``upstream_requests``: calls sent to the model server, retries included; ``retries``: the re-sent ones;
- ``errors``: requests whose final answer was not 2xx (after retries) or never arrived;
- ``prompt_tokens`` / ``completion_tokens`` / ``total_tokens``: summed from the OpenAI ``usage`` objects
  of answers the model server produced for this run (JSON bodies, or the ``usage`` chunk of a stream);
- ``cached_prompt_tokens`` / ``cached_completion_tokens`` / ``cached_total_tokens``: the same for answers
  served from the cache (tokens this run did not pay for);
- ``benchmark_indices``: the benchmarks whose traffic these counters include. A group launch (one process
  for several benchmarks) cannot say which of its requests belongs to which benchmark unless it sends
  ``X-Assay-Benchmark-Index``; its unattributed traffic counts towards the launch's first benchmark, and
  that benchmark's report lists every index of the launch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Accounting", "Usage", "usage_from_body", "usage_from_sse_line"]

_TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(slots=True)
class Usage:
    requests: int = 0
    cache_hits: int = 0
    upstream_requests: int = 0
    retries: int = 0
    errors: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TOKEN_FIELDS, 0))
    cached_tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TOKEN_FIELDS, 0))
    benchmark_indices: set[int] = field(default_factory=set)

    def add_tokens(self, usage: dict[str, Any] | None, *, cached: bool) -> None:
        if not usage:
            return
        target = self.cached_tokens if cached else self.tokens
        for name in _TOKEN_FIELDS:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                target[name] += value
        # Embeddings report only prompt_tokens and total_tokens; some servers omit total_tokens.
        if not isinstance(usage.get("total_tokens"), int):
            target["total_tokens"] += sum(
                v for k in ("prompt_tokens", "completion_tokens") if isinstance(v := usage.get(k), int)
            )

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "upstream_requests": self.upstream_requests,
            "retries": self.retries,
            "errors": self.errors,
        }
        report.update(self.tokens)
        report.update({f"cached_{name}": value for name, value in self.cached_tokens.items()})
        report["benchmark_indices"] = sorted(self.benchmark_indices)
        return report


class Accounting:
    """Counters per (job id, benchmark index)."""

    def __init__(self) -> None:
        self._usage: dict[tuple[str, int], Usage] = {}

    def of(self, job_id: str, index: int) -> Usage:
        usage = self._usage.get((job_id, index))
        if usage is None:
            usage = self._usage[(job_id, index)] = Usage(benchmark_indices={index})
        return usage

    def report(self, job_id: str, index: int) -> dict[str, Any]:
        """The counters for a terminal event; all zero for a benchmark that made no model calls."""
        return self.of(job_id, index).report()


def usage_from_body(body: bytes) -> dict[str, Any] | None:
    """The ``usage`` object of an OpenAI-style JSON answer, if it has one."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    usage = parsed.get("usage") if isinstance(parsed, dict) else None
    return usage if isinstance(usage, dict) else None


def usage_from_sse_line(line: bytes) -> dict[str, Any] | None:
    """The ``usage`` of one ``data: {...}`` line of a stream (sent last when ``include_usage`` is asked)."""
    if not line.startswith(b"data:") or b'"usage"' not in line:
        return None
    return usage_from_body(line[5:].strip())
