"""Fixtures shared by the built-in adapters' tests: the callback recorder and the local model endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.builtin_adapters.adapter_run import EventRecorder


@pytest.fixture()
def recorder() -> Iterator[EventRecorder]:
    server = EventRecorder()
    yield server
    server.close()


@pytest.fixture(scope="module")
def endpoint(model_server: Any) -> tuple[str, str]:
    """(base URL, model name) of the session's local model server."""
    return model_server.base_url, model_server.model_name
