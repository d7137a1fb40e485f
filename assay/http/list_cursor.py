"""Keyset paging of the job list: the ``cursor`` a page's ``next`` link carries, and the page's links.

A cursor is the place of the page's last job in the list order (``created_at`` DESC, ``id`` DESC), written as
``base64url("1|<created_at in microseconds since the epoch>|<job id>")``. It holds nothing the caller has not
seen already (that job's ``created_at`` and ``id``): no secret, no internal sequence. It is opaque to clients
and checked strictly on the way in: anything that does not decode to that shape is a 400 naming ``cursor``.
A hand-made cursor can only place the page somewhere in the caller's own list (every query is scoped to the
caller's tenant), so it reveals nothing a client could not list anyway.

``offset`` keeps working as the EvalHub contract says (the MCP server pages with it; eval-hub-sdk never
pages); ``next`` always carries a cursor, so following it costs the same on page 1 and page 4000.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi import Request

from assay.errors import FieldError, InvalidQuery
from assay.http.context import Paging
from assay.store import EvaluationPage, ListPosition

_VERSION = "1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MICROS = int((datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH) / timedelta(microseconds=1))
# Job ids are UUIDs; any printable id without the separator is accepted, so a cursor never outlives its format.
_ID = re.compile(r"[\x21-\x7e]{1,255}")
_MAX_CURSOR = 512


def encode(position: ListPosition) -> str:
    micros = (position.created_at - _EPOCH) // timedelta(microseconds=1)
    raw = f"{_VERSION}|{micros}|{position.id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _invalid(reason: str) -> InvalidQuery:
    return InvalidQuery(
        f"Query parameter 'cursor' is not a cursor from this list's 'next' link ({reason})",
        errors=[FieldError("cursor", "invalid", "use the cursor of a page's next.href unchanged")],
    )


def decode(raw: str) -> ListPosition:
    if not raw or len(raw) > _MAX_CURSOR:
        raise _invalid("empty or too long")
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise _invalid("not base64url") from None
    parts = text.split("|", 2)
    if len(parts) != 3 or parts[0] != _VERSION:
        raise _invalid("unknown format")
    micros, job_id = parts[1], parts[2]
    if not micros.isascii() or not micros.isdigit() or int(micros) > _MAX_MICROS:
        raise _invalid("bad position")
    if not _ID.fullmatch(job_id):
        raise _invalid("bad job id")
    return ListPosition(_EPOCH + timedelta(microseconds=int(micros)), job_id)


def position(request: Request, page: Paging) -> ListPosition | None:
    """The ``cursor`` parameter, decoded (None without one); with ``offset`` too it is a 400."""
    raw = request.query_params.get("cursor")
    if raw is None:
        return None
    if page.offset:
        raise InvalidQuery(
            "Use either 'cursor' (from a page's next link) or 'offset', not both",
            message_code="query_parameter_mismatch",
            errors=[FieldError("cursor", "conflict", "cannot be combined with offset")],
        )
    return decode(raw)


def links(request: Request, page: Paging, result: EvaluationPage) -> dict[str, dict[str, str]]:
    """``first`` is the request without its place (``offset``, ``cursor``); ``next``, present only when jobs
    follow this page, is the same query from after the page's last job."""

    def href(params: list[tuple[str, str]]) -> str:
        query = urlencode(params)
        return request.url.path + (f"?{query}" if query else "")

    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset", "cursor")]
    found = {"first": {"href": href([*kept, ("limit", str(page.limit))])}}
    last = result.last
    if result.more and last is not None:
        found["next"] = {"href": href([*kept, ("limit", str(page.limit)), ("cursor", encode(last))])}
    return found


__all__ = ["decode", "encode", "links", "position"]
