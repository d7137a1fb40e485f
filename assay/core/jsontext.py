"""JSON for the hub's hot paths (responses, log lines, the database's JSON parameters, run files): orjson, several
times faster than the standard library's encoder, and the standard library's output whenever orjson refuses a
value; JSON is read by orjson too, unless the text could hold what orjson reads differently.

orjson refuses an integer beyond 64 bits, a key that is not a string, a string with a lone surrogate and a type
that neither it nor ``default`` knows: such a document is written by ``json.dumps`` (ASCII, a lone surrogate
escaped) as it was before orjson, so nothing a job holds is changed or dropped on its way out. Where both encoders
write a document they write the same JSON values; orjson spells a float's exponent without ``+`` (``1e16``) and
writes other than ASCII as UTF-8. Reading, orjson turns an integer beyond 64 bits into a float without a word, so
text with a run of 19 digits (every such integer has one) is read by ``json.loads``, as is text orjson refuses
(``NaN``, ``1e400``, a lone surrogate escape): what :func:`loads` returns is what ``json.loads`` returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["dumps", "dumps_text", "loads"]

# Digits in a row that an integer beyond 64 bits needs (2**63 has 19); in a string they only send the text the
# slower way.
_WIDE = re.compile(rb"[0-9]{19}")
_WIDE_TEXT = re.compile(r"[0-9]{19}")


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


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The value of the JSON text ``data``, exactly as ``json.loads`` reads it (see the module docstring)."""
    if isinstance(data, memoryview):
        data = bytes(data)
    wide = _WIDE_TEXT.search(data) if isinstance(data, str) else _WIDE.search(data)
    if wide is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # what json.loads reads and orjson refuses: NaN, 1e400, a lone surrogate escape
    return json.loads(data)
