"""The errors the adapter SDK raises, one tree so an adapter can catch what it can handle.

::

    AdapterSDKError
    ├── JobSpecError (also ValueError)      job.json is missing a field, has a wrong one, or is not JSON
    ├── ParameterError (also ValueError)    a benchmark parameter (``spec.parameters``) is invalid
    ├── CallbackError                       an event could not be delivered to the hub (or its sidecar)
    │   ├── CallbackRejected                the receiver refused it for good (a 4xx other than 408/425/429)
    │   └── CallbackUndelivered             retryable failures outlasted the retry budget
    └── OCIPushError (also RuntimeError)    an OCI artifact could not be built or pushed

A missing job.json raises the built-in ``FileNotFoundError`` (as eval-hub-sdk does), naming the path and
how it was chosen.
"""

from __future__ import annotations

__all__ = [
    "AdapterSDKError",
    "CallbackError",
    "CallbackRejected",
    "CallbackUndelivered",
    "JobSpecError",
    "OCIPushError",
    "ParameterError",
]


class AdapterSDKError(Exception):
    """Base of every error the adapter SDK raises on purpose."""


class JobSpecError(AdapterSDKError, ValueError):
    """The job spec file is not valid JSON or does not match the contract; the message names file and fields."""


class ParameterError(AdapterSDKError, ValueError):
    """A benchmark parameter is invalid (or inconsistent across a group); the message names it."""


class CallbackError(AdapterSDKError):
    """An event (status or results) was not delivered."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class CallbackRejected(CallbackError):
    """The receiver answered with a permanent error: retrying the same body cannot succeed."""

    def __init__(self, message: str, *, url: str, status_code: int, server_message: str) -> None:
        super().__init__(message, url=url)
        self.status_code = status_code
        self.server_message = server_message


class CallbackUndelivered(CallbackError):
    """Every attempt failed with a transient error until the retry budget ran out."""

    def __init__(self, message: str, *, url: str, attempts: int, last_error: str) -> None:
        super().__init__(message, url=url)
        self.attempts = attempts
        self.last_error = last_error


class OCIPushError(AdapterSDKError, RuntimeError):
    """Building or pushing an OCI artifact failed; the message names the reference and the cause."""
