"""Warm start of Python adapters: fork servers (``adapters/forkserver.py``) that hold an adapter environment's
imports, and fork each run from them instead of starting an interpreter.

A launch's command is eligible when it is ``assay-adapter <name>`` (the hub's own script, optionally after
``exec``) or ``<python> <script.py>`` with nothing else; anything else runs as ``/bin/sh -c`` as before. There is
one server per (how it starts, the environment its runs share): a run's environment minus its own variables
(job spec path, run marker, launch credential path), so whatever a preloaded module reads from the environment
at import is what the run would have read. A server starts on first use (that launch starts cold: a server
takes as long to start as a cold run, and may preload more than it needs), is stopped after
``idle_seconds`` (5 minutes by default) without a run, and when the runtime closes; one that died is started again by the next run.
Any failure to start warm (a server that cannot start or serve, a marker that does not fit) is a
:class:`WarmStartError`: the runtime logs it once per command and runs that launch cold.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import logging
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from assay.runtimes._processes import MARKER_VARIABLE, exit_status, signal_group

__all__ = ["FORKSERVER", "WarmNotReady", "WarmPlan", "WarmPool", "WarmStartError", "plan_warm"]

logger = logging.getLogger(__name__)

# The wheel and the source tree both hold adapters/ beside assay/ (pyproject's packages); the hub never imports
# it (import-linter: the hub and the adapters are apart), it starts the file with an adapter's interpreter.
FORKSERVER = Path(__file__).resolve().parents[2] / "adapters" / "forkserver.py"
# A run's own variables: the rest of its environment is shared by every run of one server. TRACEPARENT and
# TRACESTATE name the run's launch span while the hub traces (assay.telemetry.tracing): one server per launch
# otherwise, each paying the imports the warm start exists to save.
_PER_RUN = frozenset(
    {"EVALHUB_JOB_SPEC_PATH", "EVALHUB_AUTH_TOKEN_PATH", MARKER_VARIABLE, "TRACEPARENT", "TRACESTATE"}
)
_SLOT_BYTES = 4096  # room for the run marker in a child's /proc/<pid>/environ (a group of ~90 benchmarks)
_READY_SECONDS = 120.0  # preloading a framework on a loaded machine
_CLOSE_SECONDS = 5.0
_RETRY_SECONDS = 60.0  # a server that could not start is not tried again for this long
_MAX_SERVERS = 8
_MAX_MESSAGE = 1 << 20
# What a script's server preloads: eval-hub-sdk's adapter API (skipped where it is not installed).
_SCRIPT_PRELOAD = ("evalhub.adapter",)
_PYTHON_NAME = re.compile(r"python(\d+(\.\d+)?)?")
_ADAPTER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class WarmStartError(RuntimeError):
    """This launch cannot start warm; it starts cold."""


class WarmNotReady(WarmStartError):
    """The launch's fork server is still starting: this launch starts cold, the next ones warm."""


@dataclass(frozen=True, slots=True)
class WarmPlan:
    """How an eligible command starts warm: its server's command line, and what the child runs."""

    server: tuple[str, ...]
    kind: Literal["module", "script"]
    target: str  # module name, or the script's absolute path
    argv: tuple[str, ...]  # sys.argv before the run (runpy sets argv[0] of a module)
    orig_argv: tuple[str, ...]  # sys.orig_argv after the interpreter
    path0: str  # sys.path[0] as the interpreter would set it


def plan_warm(command: str, env: Mapping[str, str], cwd: Path) -> WarmPlan | None:
    """The warm start of ``command`` run with ``env`` in ``cwd``, or None when it must run as a shell command."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if words[:1] == ["exec"]:
        words = words[1:]
    if len(words) != 2 or not cwd.is_dir():
        return None
    program, argument = words
    path = env.get("PATH")
    if program == "assay-adapter":
        if not _ADAPTER_NAME.fullmatch(argument):
            return None
        ours = Path(sys.executable).parent / "assay-adapter"
        found = shutil.which(program, path=path)
        if found is None or Path(found).absolute() != ours.absolute():
            return None  # another assay-adapter first on the provider's PATH: run what it says
        return WarmPlan(
            server=(sys.executable, str(FORKSERVER), "--adapter", argument),
            kind="module",
            target=f"adapters.{argument}",
            argv=("-m",),
            orig_argv=("-m", f"adapters.{argument}"),
            path0=os.path.realpath(cwd),
        )
    if not argument.endswith(".py") or not _PYTHON_NAME.fullmatch(os.path.basename(program)):
        return None
    interpreter = str(cwd / program) if "/" in program else shutil.which(program, path=path)
    script = cwd / argument
    if interpreter is None or not _is_binary(Path(interpreter)) or not script.is_file():
        return None
    return WarmPlan(
        server=(interpreter, str(FORKSERVER), "--preload", ",".join(_SCRIPT_PRELOAD)),
        kind="script",
        target=str(script.absolute()),
        argv=(argument,),
        orig_argv=(argument,),
        path0=os.path.dirname(os.path.realpath(script)),
    )


def _is_binary(path: Path) -> bool:
    """An executable ELF file: a wrapper script (a pyenv shim) picks its Python from the cwd and env: cold."""
    try:
        with path.open("rb") as file:
            return os.access(path, os.X_OK) and file.read(4) == b"\x7fELF"
    except OSError:
        return False


def _limits() -> dict[str, tuple[int, int]]:
    """The hub's resource limits: what a process it spawns inherits."""
    limits = {}
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            with contextlib.suppress(OSError, ValueError):
                limits[name] = resource.getrlimit(getattr(resource, name))
    return limits


class _ForkServer:
    """One fork server process and the hub's end of its control socket."""

    def __init__(self, argv: tuple[str, ...], env: dict[str, str], on_idle: Any, idle_seconds: float) -> None:
        self.argv = argv
        self._env = env
        self._on_idle = on_idle
        self._idle_seconds = idle_seconds
        self._loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._spawning: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._next_id = 0
        self._idle: asyncio.TimerHandle | None = None
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._watcher: asyncio.Task[int] | None = None
        self.checked: asyncio.Task[None]  # ready and usable (WarmPool._check)
        self.dead = False

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # From the loop's thread: the server's parent-death signal follows the thread that forked it.
            self._process = subprocess.Popen(
                [*self.argv, "--parent", str(os.getpid()), "--control", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env={**self._env, MARKER_VARIABLE: " " * _SLOT_BYTES},
                cwd="/",
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._loop.add_reader(ours.fileno(), self._readable)
        self._watcher = asyncio.create_task(exit_status(self._process))
        self._watcher.add_done_callback(lambda _: self._lost("the fork server exited"))

    @property
    def live(self) -> int:
        return len(self._exits)

    async def spawn(self, request: dict[str, Any], output: int) -> tuple[int, asyncio.Future[int]]:
        if self.dead or self._sock is None:
            raise WarmStartError("the fork server is gone")
        self._next_id += 1
        request_id = request["id"] = self._next_id
        started: asyncio.Future[int] = self._loop.create_future()
        ended: asyncio.Future[int] = self._loop.create_future()
        self._spawning[request_id] = started
        self._exits[request_id] = ended
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        sent = False
        try:
            await self._send(json.dumps(request).encode(), output)
            sent = True
            pid = await started
        except asyncio.CancelledError:
            if sent:
                # The child may start after all: it is killed as soon as its pid arrives.
                started.add_done_callback(_kill_when_started)
            else:
                self._spawning.pop(request_id, None)
                self._exits.pop(request_id, None)
                self._maybe_idle()
            raise
        except BaseException:
            self._spawning.pop(request_id, None)
            self._exits.pop(request_id, None)
            self._maybe_idle()
            raise
        return pid, ended

    async def _send(self, data: bytes, fd: int) -> None:
        fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        while True:
            sock = self._sock
            if sock is None or self.dead:
                raise WarmStartError("the fork server is gone")
            try:
                sock.sendmsg([data], fds)
                return
            except BlockingIOError:
                writable: asyncio.Future[None] = self._loop.create_future()
                self._loop.add_writer(sock.fileno(), _resolve, writable)
                try:
                    await writable
                finally:
                    self._loop.remove_writer(sock.fileno())
            except OSError as exc:
                raise WarmStartError(f"the fork server is gone: {exc}") from exc

    def _readable(self) -> None:
        while self._sock is not None:
            try:
                data = self._sock.recv(_MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost("the fork server closed its socket")
                return
            try:
                self._handle(json.loads(data))
            except (ValueError, KeyError, TypeError):
                logger.exception("unreadable message from the fork server %s", self.argv)

    def _handle(self, message: dict[str, Any]) -> None:
        if "ready" in message:
            if not self.ready.done():
                self.ready.set_result(message["ready"])
            self._maybe_idle()  # a server never used is let go too
            return
        request_id = int(message["id"])
        if "pid" in message:
            started = self._spawning.pop(request_id, None)
            if started is not None and not started.done():
                started.set_result(int(message["pid"]))
        elif "exit" in message:
            ended = self._exits.pop(request_id, None)
            if ended is not None and not ended.done():
                ended.set_result(int(message["exit"]))
            self._maybe_idle()
        elif "error" in message:
            started = self._spawning.pop(request_id, None)
            self._exits.pop(request_id, None)
            if started is not None and not started.done():
                started.set_exception(WarmStartError(str(message["error"])))
            self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self._exits and not self.dead and self._idle is None:
            self._idle = self._loop.call_later(self._idle_seconds, self._on_idle, self)

    def _lost(self, why: str) -> None:
        """The server is gone (or let go): its children died with it (PR_SET_PDEATHSIG: SIGKILL)."""
        if self.dead:
            return
        self.dead = True
        if self._idle is not None:
            self._idle.cancel()
        if self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        code = self._process.poll() if self._process is not None else None
        if not self.ready.done():
            self.ready.set_exception(WarmStartError(f"{why} before it was ready (exit status {code})"))
            self.ready.exception()  # retrieved: whoever waits reads it, nobody may be waiting
        for started in self._spawning.values():
            if not started.done():
                started.set_exception(WarmStartError(why))
        for ended in self._exits.values():
            if not ended.done():
                ended.set_result(-signal.SIGKILL)
        self._spawning.clear()
        self._exits.clear()

    async def close(self) -> None:
        self._lost("the fork server was stopped")
        if self._process is None or self._watcher is None:
            return
        done, _ = await asyncio.wait({self._watcher}, timeout=_CLOSE_SECONDS)
        if not done:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await asyncio.wait({self._watcher})


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _retrieved(task: asyncio.Task[None]) -> None:
    """A failed check is read by the next launch, or by none."""
    if not task.cancelled():
        task.exception()


def _kill_when_started(started: asyncio.Future[int]) -> None:
    if not started.cancelled() and started.exception() is None:
        signal_group(started.result(), signal.SIGKILL)


class WarmPool:
    """The fork servers of one local runtime."""

    def __init__(self, idle_seconds: float = 300.0) -> None:
        self._idle_seconds = idle_seconds  # a server without a run this long is let go
        self._servers: dict[tuple[Any, ...], _ForkServer] = {}
        self._failed: dict[tuple[Any, ...], tuple[float, str]] = {}  # when, why
        self._reported: set[str] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False

    async def spawn(
        self, plan: WarmPlan, env: Mapping[str, str], cwd: Path, marker: str, output: int
    ) -> tuple[int, asyncio.Future[int]]:
        """Fork the run from its server: its pid, which leads its own process group, and a future of its exit
        status. ``output`` is sent to the server, not closed. A server not yet ready (started now, for the
        runs after this one) raises :class:`WarmNotReady`: this run starts cold rather than wait for it."""
        if len(marker) + 1 > _SLOT_BYTES:
            raise WarmStartError(f"the run marker ({len(marker)} characters) is too long for a warm start")
        server = self._server(plan, env)
        if not server.checked.done():
            raise WarmNotReady("its fork server is starting")
        await server.checked  # raises why it is not usable
        request = {
            "kind": plan.kind,
            "target": plan.target,
            "argv": list(plan.argv),
            "orig_argv": list(plan.orig_argv),
            "path0": plan.path0,
            # The shell of a cold start exports the directory it runs in; so does a warm one.
            "env": {**env, "PWD": os.path.realpath(cwd)},
            "cwd": str(cwd),
            "marker": marker,
            "limits": _limits(),
            "affinity": sorted(os.sched_getaffinity(0)),
        }
        return await server.spawn(request, output)

    async def prepare(self, plan: WarmPlan, env: Mapping[str, str]) -> None:
        """Start the server of ``plan`` run with ``env`` unless it runs, and wait until it is ready;
        raises :class:`WarmStartError` when it cannot serve."""
        await asyncio.shield(self._server(plan, env).checked)

    def _server(self, plan: WarmPlan, env: Mapping[str, str]) -> _ForkServer:
        if self._closed:
            raise WarmStartError("the local runtime is closing")
        shared = {k: v for k, v in env.items() if k not in _PER_RUN}
        key = (plan.server, tuple(sorted(shared.items())))
        server = self._servers.get(key)
        if server is not None and not server.dead:
            return server
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[0] < _RETRY_SECONDS:
            raise WarmStartError(f"its fork server failed a moment ago: {failed[1]}")
        if sum(not s.dead for s in self._servers.values()) >= _MAX_SERVERS:
            raise WarmStartError(f"{_MAX_SERVERS} fork servers run already")
        server = _ForkServer(plan.server, shared, self._retire, self._idle_seconds)
        try:
            server.start()
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._failed[key] = (time.monotonic(), str(exc))
            raise WarmStartError(f"the fork server could not start: {exc}") from exc
        self._servers[key] = server
        server.checked = asyncio.get_running_loop().create_task(self._check(key, server))
        server.checked.add_done_callback(_retrieved)
        return server

    async def _check(self, key: tuple[Any, ...], server: _ForkServer) -> None:
        """Wait for the server's preloads; one that cannot serve is stopped and not tried again for a while."""
        try:
            ready = await asyncio.wait_for(asyncio.shield(server.ready), _READY_SECONDS)
            if int(ready.get("threads", 1)) != 1:
                # A thread of the server's is not in its children: what it serves (a log queue) stays the server's.
                raise WarmStartError(
                    f"preloading started {ready['threads'] - 1} thread(s) in the fork server"
                )
            if int(ready.get("slot", 0)) < _SLOT_BYTES:
                raise WarmStartError("the fork server cannot mark its children (no /proc/<pid>/environ slot)")
        except (WarmStartError, TimeoutError) as exc:
            why = str(exc) or f"not ready after {_READY_SECONDS:.0f} s"
            self._failed[key] = (time.monotonic(), why)
            if self._servers.get(key) is server:
                del self._servers[key]
            await server.close()
            raise WarmStartError(why) from exc
        if ready.get("failed"):
            self._report_once(
                f"preload {server.argv}", f"fork server {server.argv}: not preloaded {ready['failed']}"
            )

    def fallback(self, command: str, error: BaseException) -> None:
        """A launch that could not start warm starts cold: said once per command."""
        self._report_once(command, f"warm start of {command!r} unavailable, starting it cold: {error}")

    def _report_once(self, topic: str, text: str) -> None:
        if topic in self._reported:
            logger.debug("%s", text)
        else:
            self._reported.add(topic)
            logger.warning("%s", text)

    def _retire(self, server: _ForkServer) -> None:
        """Idle for a while: let it go (a later run starts another)."""
        for key, candidate in list(self._servers.items()):
            if candidate is server:
                del self._servers[key]
        task = asyncio.get_running_loop().create_task(server.close())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self) -> None:
        """Stop every server (their children, if any still ran, die with them)."""
        self._closed = True
        servers = list(self._servers.values())
        self._servers.clear()
        await asyncio.gather(*(server.close() for server in servers), *self._retiring)
