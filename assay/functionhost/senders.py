"""Who may deliver a CloudEvent: the broker's identity, or a hub administrator replaying by hand.

Shared by the CloudEvent function host (:mod:`assay.functionhost.host`) and the hub's access middleware
(:mod:`assay.http.auth`, rule ``sender``). It lives here, not in :mod:`assay.http`, so the event functions
check senders without importing the FastAPI app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assay.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:  # assay.auth is imported by the function that checks senders, on its first event
    from assay.auth import Access, Principal

__all__ = ["bearer_of", "verify_sender"]


def bearer_of(headers: dict[str, str]) -> str | None:
    raw = headers.get("authorization") or ""
    scheme, _, token = raw.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def verify_sender(access: Access, token: str | None, headers: dict[str, str]) -> Principal:
    """The broker (an identity of ``ASSAY_EVENT_SENDERS``, reviewed with its audience), or an administrator
    of the whole hub (who may replay events by hand); :class:`Unauthenticated` / :class:`Forbidden` else."""
    from assay.auth import Permission

    if token is None:
        raise Unauthenticated("Only the event broker may deliver here (a bearer token is required)")
    senders = access.senders
    if senders is not None and (sender := await senders.sender(token)) is not None:
        return sender
    principal = await access.guard.authenticate(token, headers)
    if not await access.guard.authorize(principal, "*", Permission("deadletters", "create", cluster=True)):
        raise Forbidden(f"{principal.subject!r} is not an event sender of this hub")
    return principal
