"""Real progress of an Inspect run: samples done out of samples planned (dataset after limits, times epochs), sent
as ``running/running_evaluation`` with step counts at most every couple of seconds.

Inspect's hooks (``adapters.inspect.runner``) feed a :class:`SampleCounter` from its event loop; the reports go out
from a background thread, so a slow callback never holds up the evaluation. Pure: no Inspect import.
"""

from __future__ import annotations

import threading

from adapters.sdk import JobCallbacks
from adapters.sdk.progress import DEFAULT_INTERVAL_SECONDS, PeriodicReporter, steps_done

__all__ = ["DEFAULT_INTERVAL_SECONDS", "ProgressReporter", "SampleCounter"]


class SampleCounter:
    """Samples planned, finished and errored; safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._errored = 0

    def plan(self, total: int) -> None:
        with self._lock:
            self._total = total

    def finished(self, *, errored: bool) -> None:
        with self._lock:
            self._done += 1
            self._errored += int(errored)

    def snapshot(self) -> tuple[int, int, int]:
        """``(done, total, errored)``; done never exceeds a known total."""
        with self._lock:
            done = min(self._done, self._total) if self._total else self._done
            return done, self._total, self._errored


class ProgressReporter(PeriodicReporter):
    """Sends the counter's state whenever it changed, every ``interval`` seconds, until stopped. A delivery failure
    stops the reporting and is raised by :meth:`stop`, never dropped."""

    def __init__(
        self, counter: SampleCounter, callbacks: JobCallbacks, interval: float = DEFAULT_INTERVAL_SECONDS
    ) -> None:
        super().__init__(name="inspect-progress", interval=interval)
        self._counter = counter
        self._callbacks = callbacks
        self._sent: tuple[int, int] | None = None

    def flush(self) -> None:
        done, total, errored = self._counter.snapshot()
        if total == 0 or self._sent == (done, total):
            return
        step = f"{done}/{total} samples done" + (f" ({errored} with errors)" if errored else "")
        self._callbacks.report_status(steps_done(done, total, step))
        self._sent = (done, total)
