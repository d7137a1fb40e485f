"""Progress sent from a background thread, so a slow callback never holds up the evaluation: the base of the
adapters' progress reporters."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import Self

from adapters.sdk.models import JobPhase, JobStatus, JobStatusUpdate

__all__ = ["DEFAULT_INTERVAL_SECONDS", "PeriodicReporter", "steps_done"]

DEFAULT_INTERVAL_SECONDS = 2.0


def steps_done(done: int, total: int, step: str) -> JobStatusUpdate:
    """``running/running_evaluation`` with ``done`` (at most ``total``) of ``total`` steps, their fraction to four
    decimals as ``progress``, and ``step`` as ``current_step``; ``total`` must be positive."""
    done = min(done, total)
    return JobStatusUpdate(
        status=JobStatus.RUNNING,
        phase=JobPhase.RUNNING_EVALUATION,
        progress=round(done / total, 4),
        completed_steps=done,
        total_steps=total,
        current_step=step,
    )


class PeriodicReporter(ABC):
    """Calls :meth:`flush` every ``interval`` seconds from a thread named ``name`` until stopped. A delivery
    failure stops the reporting and is raised by :meth:`stop`, never dropped."""

    def __init__(self, *, name: str, interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._logger = logging.getLogger(type(self).__module__)

    @abstractmethod
    def flush(self) -> None:
        """Send what changed since the last report."""

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, *, flush: bool = True) -> None:
        """Stop the thread, send the last counts (when ``flush``), and raise the first delivery failure."""
        self._stop.set()
        self._thread.join()
        if flush and self._error is None:
            self.flush()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception as exc:
                self._logger.error("progress reporting stopped: %s", exc)
                self._error = exc
                return
