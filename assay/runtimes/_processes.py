"""Processes of the local runtime, found and signalled through ``/proc`` and process groups (Linux).

Every adapter process carries its run's marker in ``ASSAY_RUN`` (``evaluation/index/attempt``, comma-separated
for a group launch), so a run's processes are found again after the hub restarts, even those that left
the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path

MARKER_VARIABLE = "ASSAY_RUN"


async def exit_status(process: subprocess.Popen[bytes]) -> int:
    """Wait for ``process`` without blocking the loop: a pidfd becomes readable when it exits
    (Linux 5.3+); elsewhere a worker thread waits."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        return await loop.run_in_executor(None, process.wait)
    try:
        exited: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, readable)
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
        return process.wait()
    finally:
        os.close(pidfd)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def carries_marker(pid: int, marker: str) -> bool:
    """Does the process carry the run marker of ``marker``'s benchmark attempt (alone or in a group)?"""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    prefix = f"{MARKER_VARIABLE}=".encode()
    return any(
        marker in entry[len(prefix) :].decode(errors="replace").split(",")
        for entry in environ
        if entry.startswith(prefix)
    )


def process_group(pid: int) -> int | None:
    """The process group of a live (not zombie) process, from ``/proc/<pid>/stat``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after its last ")" are fixed.
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 3 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[2])


def marked_group(pid: int, marker: str) -> set[int]:
    """``pid`` and the members of its process group that carry ``marker``, alive."""
    found = {pid} if process_group(pid) is not None and carries_marker(pid, marker) else set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if entry.isdigit() and process_group(int(entry)) == pid and carries_marker(int(entry), marker):
            found.add(int(entry))
    return found


def marked_anywhere(marker: str) -> set[int]:
    """Every live process that carries ``marker``, whatever its group."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    return {
        int(entry)
        for entry in entries
        if entry.isdigit() and process_group(int(entry)) is not None and carries_marker(int(entry), marker)
    }


def signal_all(pids: set[int], signum: signal.Signals) -> None:
    for member in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signum)
