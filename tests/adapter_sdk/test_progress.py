"""adapters.sdk.progress: the progress thread the lm-eval and Inspect adapters share, and the steps update."""

from __future__ import annotations

import threading

import pytest

from adapters.sdk import JobPhase, JobStatus
from adapters.sdk.progress import PeriodicReporter, steps_done


class _Counting(PeriodicReporter):
    """Counts its flushes; raises on the ``fail_at``-th one."""

    def __init__(self, *, interval: float, fail_at: int | None = None) -> None:
        super().__init__(name="test-progress", interval=interval)
        self.flushes = 0
        self.fail_at = fail_at
        self.flushed = threading.Event()

    def flush(self) -> None:
        self.flushes += 1
        self.flushed.set()
        if self.fail_at is not None and self.flushes >= self.fail_at:
            raise ConnectionError("the hub is gone")


def test_steps_done_is_a_running_evaluation_update_with_counts_and_fraction() -> None:
    update = steps_done(1, 3, "1/3 samples done")
    assert (update.status, update.phase) == (JobStatus.RUNNING, JobPhase.RUNNING_EVALUATION)
    assert (update.progress, update.completed_steps, update.total_steps) == (0.3333, 1, 3)
    assert update.current_step == "1/3 samples done"
    # More done than announced (a framework that ran extra steps) never passes 100 %.
    over = steps_done(5, 4, "scoring")
    assert (over.progress, over.completed_steps) == (1.0, 4)


def test_stop_sends_the_last_counts_unless_told_not_to() -> None:
    reporter = _Counting(interval=3600).start()
    reporter.stop()
    assert reporter.flushes == 1
    quiet = _Counting(interval=3600).start()
    quiet.stop(flush=False)
    assert quiet.flushes == 0


def test_the_thread_reports_until_a_delivery_fails_and_stop_raises_that_failure() -> None:
    reporter = _Counting(interval=0.001, fail_at=1).start()
    assert reporter.flushed.wait(10)
    reporter._thread.join(10)  # the thread ends on the failure, without being told to stop
    assert not reporter._thread.is_alive()
    with pytest.raises(ConnectionError, match="the hub is gone"):
        reporter.stop()
    assert reporter.flushes == 1  # after a failure, stop does not try again
