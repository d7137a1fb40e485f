"""Waiting on a condition with a deadline: what the tests do instead of sleeping a fixed time."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx


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


def wait_for_server(
    process: subprocess.Popen[Any],
    answers: Callable[[], bool],
    what: str,
    *,
    timeout: float,
    interval: float = 0.2,
) -> None:
    """Wait until the server ``process`` started ``answers()`` (a connection error counts as not yet); fail at
    once, naming ``what``, if the process exits first, and after ``timeout`` seconds if it never answers."""

    def answered() -> bool:
        if process.poll() is not None:
            said = process.stderr.read() if process.stderr is not None else b""
            said = said.decode(errors="replace") if isinstance(said, bytes) else said
            raise AssertionError(f"{what} exited with status {process.returncode} before it answered: {said}")
        try:
            return answers()
        except httpx.TransportError:
            return False

    wait_for(answered, what, timeout=timeout, interval=interval)
