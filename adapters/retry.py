"""How long to wait before trying a failed call again: one policy for the adapter SDK's event delivery, the
sidecar's model proxy and event forwarder, and the MTEB adapter's embeddings client.

:class:`Backoff` gives exponential backoff with jitter: the n-th retry waits a random time between half and
all of ``min(maximum, initial * 2 ** (n - 1))``, so the sidecars of many pods do not retry in step, unless the
server said how long to wait (``Retry-After``, read by :func:`retry_after_seconds`).

Standard library only: the sidecar image and every adapter image copy this one file beside their package.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "retry_after_seconds"]

# RFC 9110 §10.2.3 delay-seconds is digits; a decimal fraction is accepted too (some servers send one).
_DELAY_SECONDS = re.compile(r"\d+(\.\d+)?")
# 2 ** 62 times any initial delay is past every maximum; a larger power only risks a float overflow.
_MAX_DOUBLINGS = 62


def retry_after_seconds(value: str | None, *, cap: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date), at least 0 and at most
    ``cap`` when one is given; None when the value is absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - datetime.now(UTC)).total_seconds())
    return seconds if cap is None else min(seconds, cap)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``initial`` seconds before the first retry (at most), doubling up to
    ``maximum``."""

    initial: float
    maximum: float
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number ``attempt`` (1 for the first retry)."""
        doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
        return min(self.maximum, self.initial * 2.0**doublings)

    def delay(self, attempt: int, *, retry_after: float | None = None, at_most: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt``: ``retry_after`` (the server's word) when given,
        else a random time in the upper half of the ceiling, itself no longer than ``at_most`` when given."""
        if retry_after is not None:
            return retry_after
        ceiling = self.ceiling(attempt)
        if at_most is not None:
            ceiling = min(ceiling, at_most)
        return self.rng.uniform(ceiling / 2, ceiling)
