"""The one exception tree of Assay, mapped once to HTTP status and EvalHub ``message_code`` at the edge.

::

    AssayError                       (500 internal_server_error)
    ├── RequestError                 (4xx: the caller can fix it; never retried)
    │   ├── InvalidRequest           400 request_validation_failed, carries FieldError list
    │   ├── InvalidJSON              400 invalid_json_request
    │   ├── InvalidQuery             400 query_bad_parameter / query_parameter_invalid / ...
    │   ├── InvalidIdentity          400 missing_tenant_header / invalid_tenant_header / ...
    │   ├── Unauthenticated          401 unauthorized (no, bad or expired credential; WWW-Authenticate)
    │   ├── Forbidden                403 forbidden (authenticated, but not allowed this verb here)
    │   ├── UnknownTenant            403 unknown_tenant
    │   ├── NotFound                 404 resource_not_found
    │   ├── ReadOnly                 400 read_only_provider / read_only_collection
    │   ├── Conflict                 409 (e.g. job_can_not_be_updated)
    │   ├── Unprocessable            422 (an event that can never apply: Knative dead-letters it)
    │   └── PayloadTooLarge          413 request_body_too_large
    └── TemporaryError               503 service_unavailable (retryable: the database is away, ...)

Handlers raise these; only :mod:`assay.http` turns them into responses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: a dotted path into the body (``benchmarks[0].weight``), a code, a sentence."""

    path: str
    code: str
    message: str


class AssayError(Exception):
    status: int = 500
    message_code: str = "internal_server_error"

    def __init__(
        self,
        message: str,
        *,
        message_code: str | None = None,
        errors: tuple[FieldError, ...] | list[FieldError] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if message_code is not None:
            self.message_code = message_code
        self.errors: tuple[FieldError, ...] = tuple(errors)


class RequestError(AssayError):
    status = 400
    message_code = "bad_request"


class InvalidRequest(RequestError):
    message_code = "request_validation_failed"


class InvalidJSON(RequestError):
    message_code = "invalid_json_request"


class InvalidQuery(RequestError):
    message_code = "query_parameter_invalid"


class InvalidIdentity(RequestError):
    message_code = "invalid_tenant_header"


class Unauthenticated(RequestError):
    status = 401
    message_code = "unauthorized"


class Forbidden(RequestError):
    status = 403
    message_code = "forbidden"


class UnknownTenant(RequestError):
    status = 403
    message_code = "unknown_tenant"


class NotFound(RequestError):
    status = 404
    message_code = "resource_not_found"


class ReadOnly(RequestError):
    message_code = "read_only_resource"


class Conflict(RequestError):
    status = 409
    message_code = "conflict"


class Unprocessable(RequestError):
    status = 422
    message_code = "unprocessable_event"


class PayloadTooLarge(RequestError):
    status = 413
    message_code = "request_body_too_large"


class TemporaryError(AssayError):
    status = 503
    message_code = "service_unavailable"


__all__ = [
    "AssayError",
    "Conflict",
    "FieldError",
    "Forbidden",
    "InvalidIdentity",
    "InvalidJSON",
    "InvalidQuery",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "ReadOnly",
    "RequestError",
    "TemporaryError",
    "Unauthenticated",
    "UnknownTenant",
    "Unprocessable",
]
