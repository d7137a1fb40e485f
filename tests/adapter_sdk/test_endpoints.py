"""openai_base_url: the one model-URL normaliser of the built-in adapters."""

from __future__ import annotations

import pytest

from adapters.sdk import ParameterError, openai_base_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8", "http://h:8/v1"),
        ("http://h:8/", "http://h:8/v1"),
        ("http://h:8/v1", "http://h:8/v1"),
        ("  http://h:8/v1/  ", "http://h:8/v1"),
        ("https://h/model/job-1/v1", "https://h/model/job-1/v1"),
        ("http://h:8/model/j/0/v1/chat/completions", "http://h:8/model/j/0/v1"),
        ("http://h:8/v1/completions/", "http://h:8/v1"),
        ("http://h:8/model/j/0/completions", "http://h:8/model/j/0/v1"),
    ],
)
def test_a_model_url_becomes_its_v1_base(given: str, expected: str) -> None:
    assert openai_base_url(given, framework="F") == expected


def test_an_empty_url_is_refused_naming_the_field_and_the_framework() -> None:
    with pytest.raises(ParameterError, match=r"model\.url is empty: LightEval needs"):
        openai_base_url("  / ", framework="LightEval")


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ParameterError, match=r"model\.url 'h:8/v1' is not an http\(s\) URL"):
        openai_base_url("h:8/v1", framework="F")
    # A ParameterError is a ValueError, which is what callers of the earlier per-adapter copies caught.
    assert issubclass(ParameterError, ValueError)
