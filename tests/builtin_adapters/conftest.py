"""Fixtures shared by the built-in adapters' tests: the local model endpoint. The callback recorder is the
root conftest's ``recorder`` (tests.support.recorders)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def endpoint(model_server: Any) -> tuple[str, str]:
    """(base URL, model name) of the session's local model server."""
    return model_server.base_url, model_server.model_name
