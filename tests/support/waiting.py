"""Waiting on a condition with a deadline: what the tests do instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    condition: Callable[[], Any],
    what: str = "the condition",
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
) -> Any:
    """Poll ``condition`` until it returns something truthy and return that; fail naming ``what`` (and the last
    value) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last value {value!r})")
        time.sleep(interval)
