"""Fixtures of the adapter SDK tests: a recording events receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from event_recorder import Recorder, serving


@pytest.fixture()
def recorder() -> Iterator[Recorder]:
    with serving() as rec:
        yield rec
