"""The model endpoint every built-in adapter talks to: an OpenAI-compatible base URL from the job's ``model.url``."""

from __future__ import annotations

from adapters.sdk.errors import ParameterError

__all__ = ["openai_base_url"]

_ENDPOINT_PATHS = ("/chat/completions", "/completions")


def openai_base_url(model_url: str, *, framework: str) -> str:
    """The OpenAI-compatible base URL, ending in ``/v1``, for a model URL given with or without ``/v1``, a
    trailing slash, or an endpoint path (``/completions``, ``/chat/completions``).

    Raises :class:`ParameterError` naming ``model.url`` (and ``framework``, the one that needs it) when the URL
    is empty or not http(s)."""
    url = model_url.strip().rstrip("/")
    if not url:
        raise ParameterError(f"model.url is empty: {framework} needs an OpenAI-compatible endpoint")
    if not url.startswith(("http://", "https://")):
        raise ParameterError(f"model.url {model_url!r} is not an http(s) URL")
    for suffix in _ENDPOINT_PATHS:
        if url.endswith(suffix):
            url = url.removesuffix(suffix)
            break
    return url if url.endswith("/v1") else url + "/v1"
