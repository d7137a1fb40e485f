"""Webhook authenticity: MLflow (HMAC-SHA256 over ``{delivery_id}.{timestamp}.{body}``, ``v1,<base64>``,
stale timestamps refused), GitHub (``X-Hub-Signature-256: sha256=<hex>`` over the raw body) and GitLab
(``X-Gitlab-Token``, a shared secret). Every comparison is constant-time. Pure: the clock is passed in."""

from __future__ import annotations

import base64
import hashlib
import hmac

from assay.errors import AssayError, FieldError


class BadSignature(AssayError):
    """401: the delivery is not signed with the tenant's secret (or is too old to be trusted)."""

    status = 401
    message_code = "invalid_webhook_signature"


def mlflow_signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` MLflow 3 sends: ``v1,`` + base64 HMAC-SHA256 of
    ``{delivery_id}.{timestamp}.{payload}`` (the payload as the UTF-8 text of the body)."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_mlflow(
    secret: str,
    *,
    signature: str | None,
    delivery_id: str | None,
    timestamp: str | None,
    body: bytes,
    now: float,
    tolerance_seconds: float,
) -> None:
    """Raise :class:`BadSignature` unless the three MLflow headers are present, the timestamp lies within
    ``tolerance_seconds`` of ``now`` (a replay of an old delivery is refused) and the signature matches."""
    missing = [
        name
        for name, value in (
            ("X-MLflow-Signature", signature),
            ("X-MLflow-Delivery-Id", delivery_id),
            ("X-MLflow-Timestamp", timestamp),
        )
        if not value
    ]
    if missing:
        raise BadSignature(
            f"The delivery lacks {', '.join(missing)}",
            errors=[FieldError(name, "required", "header missing") for name in missing],
        )
    assert signature is not None and delivery_id is not None and timestamp is not None
    try:
        sent_at = int(timestamp) if len(timestamp) <= 12 else int("x")  # seconds: 12 digits reach year 33658
    except ValueError:
        raise BadSignature(
            "X-MLflow-Timestamp is not a Unix timestamp",
            errors=[FieldError("X-MLflow-Timestamp", "invalid", "not an integer Unix timestamp")],
        ) from None
    if abs(now - sent_at) > tolerance_seconds:
        raise BadSignature(
            f"X-MLflow-Timestamp is {now - sent_at:.0f} s away from now (allowed {tolerance_seconds:g} s): "
            "a stale or replayed delivery",
            message_code="stale_webhook_timestamp",
            errors=[FieldError("X-MLflow-Timestamp", "stale", "outside the allowed window")],
        )
    expected = mlflow_signature(secret, delivery_id, timestamp, body)
    # MLflow sends one signature; Standard Webhooks allows several, space-separated.
    if not any(hmac.compare_digest(expected.encode(), s.encode()) for s in signature.split()):
        raise BadSignature(
            "X-MLflow-Signature does not match the body signed with this tenant's secret",
            errors=[FieldError("X-MLflow-Signature", "mismatch", "signature does not match")],
        )


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github(secret: str, *, signature: str | None, body: bytes) -> None:
    if not signature:
        raise BadSignature(
            "The delivery lacks X-Hub-Signature-256",
            errors=[FieldError("X-Hub-Signature-256", "required", "header missing")],
        )
    if not hmac.compare_digest(github_signature(secret, body).encode(), signature.strip().encode()):
        raise BadSignature(
            "X-Hub-Signature-256 does not match the body signed with this tenant's secret",
            errors=[FieldError("X-Hub-Signature-256", "mismatch", "signature does not match")],
        )


def verify_gitlab(secret: str, *, token: str | None) -> None:
    if not token:
        raise BadSignature(
            "The delivery lacks X-Gitlab-Token",
            errors=[FieldError("X-Gitlab-Token", "required", "header missing")],
        )
    if not hmac.compare_digest(secret.encode(), token.encode()):
        raise BadSignature(
            "X-Gitlab-Token is not this tenant's secret token",
            errors=[FieldError("X-Gitlab-Token", "mismatch", "token does not match")],
        )


__all__ = [
    "BadSignature",
    "github_signature",
    "mlflow_signature",
    "verify_github",
    "verify_gitlab",
    "verify_mlflow",
]
