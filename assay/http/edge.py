"""The JSON policy at the edge, before any route runs: what PostgreSQL and strict JSON cannot hold is refused
with a 400 naming the field, so nothing is half-committed and nothing answers 500.

- ``NaN``, ``Infinity``, ``-Infinity`` and numbers too large for a double (``1e999``) in a JSON body: refused
  (``not_finite``), wherever they are, ``custom`` included (never silently stored as ``null``).
- A NUL character (``\\u0000``) in a body string or key, in the path or in a query parameter: refused
  (``nul_character``); PostgreSQL's ``text`` and ``jsonb`` cannot store it.
- A lone surrogate escape (``\\ud800`` without its pair) in a body string or key: refused (``lone_surrogate``);
  it is valid JSON but no Unicode text, and has no UTF-8 for PostgreSQL.
- Objects and arrays nested deeper than 64 levels: refused (``too_deep``) at the first level past it; the
  models' serializer gives up a few hundred levels down (a 500), and no document of the API nests like that.
- One exception, for adapters: Python's ``json.dumps`` writes ``NaN`` for a metric that is not a number, so in a
  status event (``POST /api/v1/evaluations/jobs/{id}/events``) a non-finite value among
  ``benchmark_status_event.metrics`` is stored as ``null`` (the run's test then says ``metric_not_numeric``),
  the run keeps every other metric, and it carries a ``metrics_not_finite`` warning naming them unless the
  adapter sent a warning of its own. Anywhere else in a status event the rule above holds.

A body that is not JSON at all is left to the route, which answers ``invalid_json_request``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Message, Receive, Scope

from assay.api import error_path
from assay.core import summarise
from assay.errors import AssayError, FieldError, InvalidQuery, InvalidRequest

__all__ = ["is_json_media", "replay", "screen_request"]

log = logging.getLogger(__name__)

_EVENTS_ROUTE = re.compile(r"^/api/v1/evaluations/jobs/[^/]+/events/?$")
_MAX_DEPTH = 64
# What a body must hold, as bytes, for the policy to find anything in it: a NaN or Infinity token; a number that
# may not fit a double (an exponent of three digits, or 200 digits in a row: 210 integer digits and a two-digit
# exponent are the least that overflow); a \u0000 or surrogate escape; a NUL byte (also in every UTF-16 or UTF-32
# body, whose ASCII brackets are padded with NULs); UTF-8 bytes of a surrogate, which the parser's surrogatepass
# decoding lets through. A body without any of these and with at most 64 brackets has nothing to screen.
_SUSPECT = re.compile(
    rb"NaN|Infinity|[eE][+-]?[0-9]{3}|[0-9]{200}|\\u0000|\\u[dD][89a-fA-F]|\x00|\xed[\xa0-\xbf]"
)
_METRICS = ("benchmark_status_event", "metrics")


class _NotFinite:
    """Where the parser met a number JSON cannot carry; ``text`` is how it was written."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _constant(text: str) -> _NotFinite:
    return _NotFinite(text)


def _float(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


def _is_json(scope: Scope) -> bool:
    """The bodies FastAPI parses as JSON: no content type, ``application/json`` or ``application/*+json``."""
    content_type = ""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-type":
            content_type = value.decode("latin-1")
    return not content_type.split(";", 1)[0].strip() or is_json_media(content_type)


def is_json_media(content_type: str) -> bool:
    """A ``Content-Type`` value (parameters allowed) FastAPI parses as JSON: ``application/json`` or
    ``application/*+json``, in any case."""
    kind, _, subtype = content_type.split(";", 1)[0].strip().lower().partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def _text_fault(text: str) -> str | None:
    """What PostgreSQL cannot store in a string: a NUL, or a lone surrogate (``\\ud800`` escaped alone is valid
    JSON but no Unicode text, so it has no UTF-8)."""
    if "\x00" in text:
        return "nul_character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "lone_surrogate"
    return None


def _shown(key: str) -> str:
    """A key as an error may name it: NULs and lone surrogates written as their JSON escapes."""
    return key.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def _walk(value: Any, loc: tuple[int | str, ...]) -> Iterator[tuple[tuple[int | str, ...], str]]:
    """Every place in ``value`` that breaks the policy: (location, ``not_finite``, ``nul_character``,
    ``lone_surrogate`` or ``too_deep``)."""
    if isinstance(value, dict | list) and value and len(loc) >= _MAX_DEPTH:
        yield loc, "too_deep"  # and nothing below it: the walk stays shallow too
    elif isinstance(value, _NotFinite):
        yield loc, "not_finite"
    elif isinstance(value, str):
        fault = _text_fault(value)
        if fault is not None:
            yield loc, fault
    elif isinstance(value, dict):
        for key, item in value.items():
            fault = _text_fault(key)
            if fault is not None:
                key = _shown(key)
                yield (*loc, key), fault
            yield from _walk(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*loc, index))


_MESSAGES = {
    "not_finite": "must be a finite number (NaN, Infinity and numbers beyond a double are not JSON values "
    "Assay stores)",
    "nul_character": "must not contain a NUL character (\\u0000)",
    "too_deep": f"must not nest objects and arrays deeper than {_MAX_DEPTH} levels",
    "lone_surrogate": "must be Unicode text (a lone surrogate escape such as \\ud800 is not)",
}


def _null_metrics(document: Any) -> list[str]:
    """Status events: non-finite metric values become null; returns the metric names."""
    event = document.get("benchmark_status_event") if isinstance(document, dict) else None
    metrics = event.get("metrics") if isinstance(event, dict) else None
    if not isinstance(metrics, dict):
        return []
    names = [name for name, value in metrics.items() if isinstance(value, _NotFinite)]
    for name in names:
        metrics[name] = None
    if names and isinstance(event, dict) and not event.get("warning_message"):
        event["warning_message"] = {
            "message": f"Metrics {', '.join(sorted(names))} were not finite numbers (NaN or infinite) and are "
            "stored as null",
            "message_code": "metrics_not_finite",
            "message_origin": "server",
        }
    return names


def may_break_policy(body: bytes) -> bool:
    """Whether the policy could find anything in ``body``; False is certain, True means parse and look."""
    return body.count(b"[") + body.count(b"{") > _MAX_DEPTH or _SUSPECT.search(body) is not None


def screen_body(path: str, body: bytes) -> tuple[bytes, AssayError | None]:
    """The body to pass on (rewritten only for nulled metrics) or the refusal."""
    if not may_break_policy(body):
        return body, None  # most bodies: nothing to find, and the route parses them anyway
    return screen_parsed(path, body)


def screen_parsed(path: str, body: bytes) -> tuple[bytes, AssayError | None]:
    """:func:`screen_body` without its look at the bytes first: the body parsed and walked."""
    if not body.strip():
        return body, None
    try:
        document = json.loads(body, parse_constant=_constant, parse_float=_float)
    except RecursionError:  # nested past the parser's own depth
        error = FieldError(path="$", code="too_deep", message=_MESSAGES["too_deep"])
        return body, InvalidRequest(summarise([error]), errors=[error])
    except ValueError:
        return body, None  # not JSON: the route says so
    nulled = _null_metrics(document) if _EVENTS_ROUTE.match(path) else []
    errors = [
        FieldError(path=error_path(loc) or "$", code=code, message=_MESSAGES[code])
        for loc, code in _walk(document, ())
    ]
    if errors:
        return body, InvalidRequest(summarise(errors), errors=errors)
    if nulled:
        log.warning("status event metrics %s were not finite; stored as null", sorted(nulled))
        return json.dumps(document).encode(), None
    return body, None


def screen_target(scope: Scope) -> AssayError | None:
    """A NUL in the (decoded) path or in a query parameter's name or value."""
    errors: list[FieldError] = []
    if "\x00" in scope.get("path", ""):
        errors.append(FieldError(path="path", code="nul_character", message=_MESSAGES["nul_character"]))
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace"):
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "\\u0000")
            errors.append(FieldError(path=shown, code="nul_character", message=_MESSAGES["nul_character"]))
    if errors:
        return InvalidQuery(summarise(errors, "Invalid query or path parameter"), errors=errors)
    return None


async def screen_request(scope: Scope, receive: Receive) -> tuple[Receive, AssayError | None]:
    """Apply the policy to a request whose body ``receive`` replays whole (RequestMiddleware read it)."""
    refusal = screen_target(scope)
    if refusal is not None or scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return receive, refusal
    first = await receive()
    if first["type"] != "http.request" or not _is_json(scope):
        return replay(first, receive), None
    body, refusal = screen_body(scope.get("path", ""), first.get("body", b""))
    return replay({**first, "body": body}, receive), refusal


def replay(first: Message, then: Receive) -> Receive:
    """``first``, then what ``then`` receives."""
    pending = [first]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await then()

    return replayed
