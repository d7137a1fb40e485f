"""Runtimes that execute evaluation adapters; today the local one, which runs them as subprocesses.

Names load with their module on first use (PEP 562), so ``assay.runtimes.sidecar`` comes without the local
runtime: ``assay up`` spawns the sidecar before it imports the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assay._lazy import exports

if TYPE_CHECKING:
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

_HOMES = {
    "LOG_FILE_NAME": "local",
    "ExitReason": "local",
    "GroupMember": "local",
    "LocalExit": "local",
    "LocalLaunch": "local",
    "LocalRuntime": "local",
    "RunKey": "local",
    "write_json": "local",
    "DEFAULT_MAX_BYTES": "logs",
    "format_timestamp": "logs",
    "read_log": "logs",
    "read_log_bounded": "logs",
}


__getattr__ = exports(__name__, _HOMES)


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
