"""The run log format (each line prefixed with a fixed-width UTC RFC 3339 time) and how to read it back.

Readers scan from the end of the file in blocks, so a tail of a large log costs what the tail costs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "DEFAULT_MAX_BYTES",
    "TIMESTAMP_WIDTH",
    "format_timestamp",
    "read_log",
    "read_log_bounded",
]

TIMESTAMP_WIDTH = 27  # len("2026-11-22T03:35:52.123456Z")
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_PREFIX = re.compile(rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z ")
_BLOCK = 64 * 1024


def format_timestamp(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as ``2026-11-22T03:35:52.123456Z``; a naive ``moment`` is taken as UTC."""
    if moment is None:
        moment = datetime.now(UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


def read_log(
    path: Path,
    *,
    tail_lines: int | None = None,
    since: datetime | None = None,
    timestamps: bool = True,
) -> str:
    """The log at ``path``, unbounded in size; see :func:`read_log_bounded` for the arguments."""
    text, _ = _collect(path, tail_lines=tail_lines, since=since, timestamps=timestamps, max_bytes=None)
    return text


def read_log_bounded(
    path: Path,
    *,
    tail_lines: int | None = None,
    since: datetime | None = None,
    timestamps: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[str, bool]:
    """The log at ``path`` as text (every line ending in a newline) and whether it was cut to ``max_bytes``.

    ``tail_lines`` keeps the last lines (``None``: all); ``since`` keeps lines stamped at or after it (a naive
    ``since`` is taken as UTC); ``timestamps=False`` strips the prefixes. Lines without a prefix (a file
    written by something else) are kept as they are. The cap keeps the last whole lines that fit in
    ``max_bytes`` (UTF-8); only a single line larger than the cap is cut, from its start. A missing file
    reads as ``""``.
    """
    if max_bytes < 0:
        raise ValueError("max_bytes must not be negative")
    return _collect(path, tail_lines=tail_lines, since=since, timestamps=timestamps, max_bytes=max_bytes)


def _collect(
    path: Path,
    *,
    tail_lines: int | None,
    since: datetime | None,
    timestamps: bool,
    max_bytes: int | None,
) -> tuple[str, bool]:
    if tail_lines is not None and tail_lines < 0:
        raise ValueError("tail_lines must not be negative")
    # The prefix is fixed-width digits, so comparing the raw bytes orders lines by time without parsing.
    since_key = format_timestamp(since).encode("ascii") if since is not None else None
    kept: list[str] = []
    used = 0
    truncated = False
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return "", False
    with handle:
        lines = _reverse_lines(handle)
        last = next(lines, b"")
        if last:  # empty only when the file ends with a newline (or is empty): no line there
            lines = _chain_first(last, lines)
        for raw in lines:
            if tail_lines is not None and len(kept) >= tail_lines:
                break
            stamped = _PREFIX.match(raw) is not None
            # The runtime writes times in order, so the first older line means every earlier one is older.
            if since_key is not None and stamped and raw[:TIMESTAMP_WIDTH] < since_key:
                break
            body = raw[TIMESTAMP_WIDTH + 1 :] if stamped and not timestamps else raw
            text = body.decode("utf-8", errors="replace")
            if max_bytes is not None:
                size = len(text.encode("utf-8")) + 1
                if used + size > max_bytes:
                    truncated = True
                    room = max_bytes - used - 1
                    if not kept and room > 0:
                        kept.append(text.encode("utf-8")[-room:].decode("utf-8", errors="ignore"))
                    break
                used += size
            kept.append(text)
    kept.reverse()
    return "".join(f"{line}\n" for line in kept), truncated


def _chain_first(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _reverse_lines(handle: BinaryIO) -> Iterator[bytes]:
    """The lines of ``handle`` last first, without their newlines, reading backwards in blocks."""
    position = handle.seek(0, os.SEEK_END)
    carry: list[bytes] = []  # pieces of the line being assembled, in reverse file order
    while position > 0:
        step = min(_BLOCK, position)
        position -= step
        handle.seek(position)
        block = handle.read(step)
        parts = block.split(b"\n")
        carry.append(parts[-1])
        if len(parts) > 1:
            yield b"".join(reversed(carry))
            yield from reversed(parts[1:-1])
            carry = [parts[0]]
    yield b"".join(reversed(carry))
