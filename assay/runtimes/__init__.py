"""Runtimes that execute evaluation adapters; today the local one, which runs them as subprocesses."""

from __future__ import annotations

from assay.runtimes.local import (
    LOG_FILE_NAME,
    ExitReason,
    GroupMember,
    LocalExit,
    LocalLaunch,
    LocalRuntime,
    RunKey,
    write_json,
)
from assay.runtimes.logs import DEFAULT_MAX_BYTES, format_timestamp, read_log, read_log_bounded

__all__ = [
    "DEFAULT_MAX_BYTES",
    "LOG_FILE_NAME",
    "ExitReason",
    "GroupMember",
    "LocalExit",
    "LocalLaunch",
    "LocalRuntime",
    "RunKey",
    "format_timestamp",
    "read_log",
    "read_log_bounded",
    "write_json",
]
