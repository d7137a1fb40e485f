"""The local runtime's adapter log: output copied from the process's pipe, one timestamped line at a time."""

from __future__ import annotations

import asyncio
import os
from typing import BinaryIO

from assay.runtimes.logs import format_timestamp

MAX_LINE_BYTES = 64 * 1024
_READ_CHUNK = 64 * 1024


class LineWriter:
    """Appends output to the log one timestamped line at a time, capping lines at ``MAX_LINE_BYTES``."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._partial = bytearray()
        self._dropped = 0

    def feed(self, data: bytes) -> None:
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self._take(data[start:end])
            self._emit()
            start = end + 1
        self._take(data[start:])
        self.flush()

    def finish(self) -> None:
        """Write a last line that had no newline."""
        if self._file.closed:  # the run was torn down while its output was still being read
            return
        if self._partial or self._dropped:
            self._emit()
        self.flush()

    def write_line(self, text: str) -> None:
        self._file.write(f"{format_timestamp()} {text}\n".encode())

    def flush(self) -> None:
        self._file.flush()

    def _take(self, piece: bytes) -> None:
        room = max(0, MAX_LINE_BYTES - len(self._partial))
        self._partial += piece[:room]
        self._dropped += max(0, len(piece) - room)

    def _emit(self) -> None:
        raw = bytes(self._partial)
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        text = raw.decode("utf-8", errors="replace")
        if self._dropped:
            text += f" [line truncated: {self._dropped} more bytes]"
        self.write_line(text)
        self._partial.clear()
        self._dropped = 0


async def copy_output(read_fd: int, writer: LineWriter) -> None:
    loop = asyncio.get_running_loop()
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    try:
        stream = asyncio.StreamReader(limit=_READ_CHUNK)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), pipe)
    except BaseException:
        pipe.close()
        raise
    try:
        while chunk := await stream.read(_READ_CHUNK):
            writer.feed(chunk)
    finally:
        transport.close()
        writer.finish()
