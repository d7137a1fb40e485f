"""adapters.retry: the one backoff policy and Retry-After reader of the SDK, the sidecar and the MTEB adapter."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from test_delivery import RUNNING, callbacks_for

from adapters.retry import Backoff, retry_after_seconds
from tests.support.recorders import EventRecorder


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), (" 7 ", 7.0), ("0", 0.0), ("0.25", 0.25), ("120", 120.0)],
)
def test_delta_seconds_are_read(value: str, expected: float) -> None:
    assert retry_after_seconds(value) == expected


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "-3", "nan", "inf", "1e3", "3s"])
def test_an_absent_or_unreadable_value_is_none(value: str | None) -> None:
    assert retry_after_seconds(value) is None


def test_an_http_date_is_the_time_until_it() -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    seconds = retry_after_seconds(format_datetime(later, usegmt=True))
    assert seconds is not None
    # The date is written to the second, so the wait lies within a second of 120 before any time passes.
    assert 0 < seconds <= 120


def test_a_date_in_the_past_means_now() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_a_cap_bounds_both_forms() -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    assert retry_after_seconds("3600", cap=300) == 300
    assert retry_after_seconds(format_datetime(later, usegmt=True), cap=300) == 300
    assert retry_after_seconds("10", cap=300) == 10


def test_the_ceiling_doubles_up_to_the_maximum() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    assert [backoff.ceiling(n) for n in range(1, 9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    # A retry count from a day-long outage neither overflows nor passes the maximum.
    assert backoff.ceiling(5000) == 30.0


def test_delays_are_jittered_within_the_upper_half_of_the_ceiling() -> None:
    backoff = Backoff(initial=0.2, maximum=30.0, rng=random.Random(7))
    for attempt in range(1, 12):
        ceiling = backoff.ceiling(attempt)
        delays = {backoff.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered, not one fixed wait


def test_the_servers_word_wins_and_at_most_bounds_the_backoff() -> None:
    backoff = Backoff(initial=1.0, maximum=60.0, rng=random.Random(3))
    assert backoff.delay(6, retry_after=2.5) == 2.5
    assert backoff.delay(1, retry_after=0.0) == 0.0
    assert all(0.1 <= backoff.delay(6, at_most=0.2) <= 0.2 for _ in range(50))


def _waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The waits the SDK chose before each retry, as it logged them."""
    return [
        float(r.args[-1])  # type: ignore[index, arg-type]
        for r in caplog.records
        if r.name == "adapters.sdk" and "not delivered" in r.getMessage()
    ]


def test_a_429_with_retry_after_is_retried_after_the_servers_wait(
    recorder: EventRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.plan((429, {"Retry-After": "0.4"}), (503, {"Retry-After": "0.3"}))
    with caplog.at_level(logging.WARNING, logger="adapters.sdk"):
        callbacks_for(recorder.url).report_status(RUNNING)
    assert [r.answer for r in recorder.requests] == [429, 503, 204]
    # Without the header the first two waits would be jittered within 0.1-0.2 s and 0.2-0.4 s.
    assert _waits(caplog) == [0.4, 0.3]


def test_without_retry_after_the_backoff_is_jittered(
    recorder: EventRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.plan(429, (503, {"Retry-After": "a while"}))
    with caplog.at_level(logging.WARNING, logger="adapters.sdk"):
        callbacks_for(recorder.url).report_status(RUNNING)
    assert [r.answer for r in recorder.requests] == [429, 503, 204]
    first, second = _waits(caplog)
    assert 0.1 <= first <= 0.2
    assert 0.2 <= second <= 0.4
