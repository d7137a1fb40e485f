"""Launch credentials: a token per launch, bound to tenant, evaluation, attempt and benchmark indices.

The hub issues one at dispatch and hands it to the launch's sidecar (never to the adapter process in a
cluster); the callback route accepts a status event only with a credential whose claims cover the event's
job, benchmark index and the run's current attempt. The token is stateless (HMAC-SHA256 over canonical
JSON claims, keyed by a hub secret), so a scale-to-zero callback function verifies it without a lookup:

    assay-launch.v1.<base64url(claims json)>.<base64url(hmac)>

Pure: the key and ``now`` are passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from assay.errors import Unauthenticated

__all__ = ["LaunchClaims", "LaunchSigner", "b64url", "is_launch_token", "unb64url"]

_PREFIX = "assay-launch.v1."


@dataclass(frozen=True, slots=True)
class LaunchClaims:
    """What one launch may report on: ``runs`` maps each benchmark index to the attempt launched."""

    tenant: str
    evaluation_id: str
    runs: tuple[tuple[int, int], ...]
    expires_at: int  # seconds since the epoch

    def attempt_of(self, index: int) -> int | None:
        """The attempt this launch runs for benchmark ``index``, or None if it does not run it."""
        return next((attempt for i, attempt in self.runs if i == index), None)


def is_launch_token(token: str) -> bool:
    return token.startswith(_PREFIX)


def b64url(raw: bytes) -> str:
    """Unpadded base64url, as tokens carry it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LaunchSigner:
    """Issues and verifies launch credentials with one HMAC key (at least 32 bytes)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a launch signing key must be at least 32 bytes")
        self._key = key

    def _sign(self, body: str) -> str:
        return b64url(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def issue(
        self,
        tenant: str,
        evaluation_id: str,
        runs: Iterable[tuple[int, int]],
        now: datetime,
        lifetime_seconds: float,
    ) -> str:
        claims = {
            "t": tenant,
            "e": evaluation_id,
            "r": sorted([int(index), int(attempt)] for index, attempt in runs),
            "x": int(now.timestamp() + lifetime_seconds),
        }
        body = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        return f"{_PREFIX}{body}.{self._sign(body)}"

    def verify(self, token: str, now: datetime) -> LaunchClaims:
        """The claims of a genuine, unexpired token; :class:`Unauthenticated` for anything else."""
        if not token.startswith(_PREFIX):
            raise Unauthenticated("Not a launch credential")
        body, _, signature = token[len(_PREFIX) :].partition(".")
        if not body or not hmac.compare_digest(
            signature.encode("ascii", "replace"), self._sign(body).encode()
        ):
            raise Unauthenticated("The launch credential is not valid")
        try:
            raw = json.loads(unb64url(body))
            claims = LaunchClaims(
                tenant=str(raw["t"]),
                evaluation_id=str(raw["e"]),
                runs=tuple((int(i), int(a)) for i, a in raw["r"]),
                expires_at=int(raw["x"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise Unauthenticated("The launch credential is not valid") from exc
        if now.timestamp() >= claims.expires_at:
            raise Unauthenticated("The launch credential has expired")
        return claims
