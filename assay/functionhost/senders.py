"""Who may deliver a CloudEvent: the broker's identity, or a hub administrator replaying by hand.

Shared by the CloudEvent function host (:mod:`assay.functionhost.host`) and the hub's access middleware
(:mod:`assay.http.auth`, rule ``sender``). It lives here, not in :mod:`assay.http`, so the event functions
check senders without importing the FastAPI app.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from assay.errors import Forbidden, TemporaryError, Unauthenticated
from assay.functionhost.app import read_event

if TYPE_CHECKING:  # assay.auth is imported by the function that checks senders, on its first event
    from cloudevents.http import CloudEvent

    from assay.auth import Access, Principal
    from assay.settings import Settings

__all__ = ["SenderGate", "bearer_of", "verify_sender"]

log = logging.getLogger(__name__)


class SenderGate:
    """An event function's check of who delivers, before the event is read: with ``ASSAY_EVENT_SENDERS`` set,
    :func:`verify_sender` (401/403 otherwise); without it, a warning at the first delivery that anyone who
    reaches the function may deliver (docs/security.md). Every event function passes its requests here."""

    def __init__(self) -> None:
        self._access: Access | None = None
        self._warned = False

    async def admit(self, settings: Settings, request: Request) -> CloudEvent | Response:
        """The delivery's CloudEvent once its sender is checked, or the answer refusing it (the sender's 401, 403
        or 503, or the 400 of a body that is no CloudEvent)."""
        refusal = await self._refusal(settings, request)
        return refusal if refusal is not None else await read_event(request)

    async def _refusal(self, settings: Settings, request: Request) -> Response | None:
        """The answer refusing this delivery, or None to go on."""
        if not settings.event_senders:
            if not self._warned:
                self._warned = True
                log.warning(
                    "ASSAY_EVENT_SENDERS is not set: this function accepts events from anyone who reaches it"
                )
            return None
        if self._access is None:
            # Imported here: only a function that checks senders authenticates anyone.
            from assay.auth import build_access

            self._access = build_access(settings)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            await verify_sender(self._access, bearer_of(headers), headers)
        except (Unauthenticated, Forbidden) as exc:
            log.warning("event delivery refused: %s", exc.message)
            return JSONResponse({"message_code": exc.message_code, "message": exc.message}, exc.status)
        except TemporaryError as exc:  # the cluster could not review the token now: the broker delivers again
            log.warning("event delivery deferred: %s", exc.message)
            body = {"message_code": exc.message_code, "message": exc.message}
            return JSONResponse(body, 503, headers={"Retry-After": "5"})
        return None


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
