"""JSON for the hub's hot paths (responses, log lines, the database's JSON parameters, run files): orjson, several
times faster than the standard library's encoder, and the standard library's output whenever orjson refuses a
value.

orjson refuses an integer beyond 64 bits, a key that is not a string, a string with a lone surrogate and a type
that neither it nor ``default`` knows: such a document is written by ``json.dumps`` (ASCII, a lone surrogate
escaped) as it was before orjson, so nothing a job holds is changed or dropped on its way out. Where both encoders
write a document they write the same JSON values; orjson spells a float's exponent without ``+`` (``1e16``) and
writes other than ASCII as UTF-8. Decoding stays with the standard library: orjson reads an integer beyond 64 bits
as a float.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["dumps", "dumps_text"]


def dumps(value: Any, *, indent: bool = False, default: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as UTF-8 JSON: compact, or indented by two spaces with ``indent``. ``default`` turns a value
    neither encoder knows into one they do, as ``json.dumps``'s does."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_INDENT_2 if indent else None)
    except TypeError:  # orjson.JSONEncodeError is one
        if indent:
            return json.dumps(value, indent=2, default=default).encode("ascii")
        return json.dumps(value, separators=(",", ":"), default=default).encode("ascii")


def dumps_text(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """:func:`dumps` as text (one line)."""
    return dumps(value, default=default).decode("utf-8")
