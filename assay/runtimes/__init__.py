"""Runtimes that execute evaluation adapters; today the local one, which runs them as subprocesses.

Names load with their module on first use (PEP 562), so ``assay.runtimes.sidecar`` comes without the local
runtime: ``assay up`` spawns the sidecar before it imports the app."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    "LOG_FILE_NAME": "assay.runtimes.local",
    "ExitReason": "assay.runtimes.local",
    "GroupMember": "assay.runtimes.local",
    "LocalExit": "assay.runtimes.local",
    "LocalLaunch": "assay.runtimes.local",
    "LocalRuntime": "assay.runtimes.local",
    "RunKey": "assay.runtimes.local",
    "write_json": "assay.runtimes.local",
    "DEFAULT_MAX_BYTES": "assay.runtimes.logs",
    "format_timestamp": "assay.runtimes.logs",
    "read_log": "assay.runtimes.logs",
    "read_log_bounded": "assay.runtimes.logs",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


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
