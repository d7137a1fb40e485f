"""A warm start for Python adapters: a server that has imported an adapter environment's SDK (and, for a
built-in adapter, its framework) once, and forks a fresh child per run that looks to the adapter like a new
``python script.py`` or ``python -m package`` process.

Standard library only, and runs under any Python 3.9+ on Linux (it is started with the adapter environment's
own interpreter, so that what it imports is that environment's). The hub (``assay.runtimes._warm``) starts it:

    <python> forkserver.py --parent <hub pid> --control <fd> [--preload a,b] [--adapter <name>]

with the control socket (``AF_UNIX``, ``SOCK_SEQPACKET``) as file descriptor ``<fd>`` and, in its environment, the
variables every run of this server shares (a run's own ones come with its request) plus ``ASSAY_RUN`` set to
spaces: the slot each child writes its run marker into (see :func:`_environ_slot`). ``--adapter <name>`` is
the built-in adapter bootstrap: run with the hub's Python, it finds the adapter's environment (built by
``assay-adapter``; not built here) and re-executes this file with that environment's interpreter, preloading
``adapters.sdk`` and the framework's modules.

The server never runs adapter code. Messages are JSON, one per packet. To the hub: ``{"ready": {...}}`` once
the preloads are in, ``{"id", "pid"}`` once a child runs in its own session (its process group exists and it
carries its marker), ``{"id", "exit"}`` with its exit status as ``subprocess`` reports it (negative: killed by
a signal), ``{"id", "error"}`` when it could not fork. From the hub: a request (``id``, ``kind`` ``module`` or
``script``, ``target``, ``argv``, ``path0``, ``env``, ``cwd``, ``marker``, ``limits``, ``affinity``) with the
run's output pipe attached (``SCM_RIGHTS``). The server exits when the hub's end of the socket closes (the hub
exited or let it go), and its children are killed with it (``PR_SET_PDEATHSIG``).

What a child does before it runs the adapter, so that no state crosses runs: a new session (its own process
group), parent-death signal, the hub's pipe as stdout and stderr and ``/dev/null`` as stdin, every other file
descriptor closed but those the preloads opened (a file is opened again: the child's own offset), signal
handlers and mask as a new interpreter has them, the run's environment (``os.environ`` and the C environment;
``time.tzset``), the run marker, the hub's resource limits and CPU affinity, the run's cwd, ``sys.argv``/``sys.orig_argv``/``sys.path[0]`` as the interpreter sets them, a fresh ``__main__``, new
random seeds (``random`` through its fork hook, NumPy's global generator). It ends like the interpreter: non-
daemon threads joined, ``atexit`` handlers run, streams flushed, ``SystemExit`` codes kept, an uncaught
exception printed by ``sys.excepthook`` and exit 1. Not renewed: the string hash seed (fixed per interpreter)
and objects the preloaded modules built at import (the same in a fresh process that imported them).
"""

from __future__ import annotations

import array
import atexit
import builtins
import contextlib
import ctypes
import gc
import json
import os
import selectors
import signal
import socket
import stat
import sys
import threading
import time
import traceback
import types
from typing import Any

# The dispositions this interpreter started with, before the server changes any: those of a fresh interpreter
# exec'd by the hub, ignores it inherited included (SIGHUP under nohup, SIGINT in a background job). Each child
# gets them back, so it sees what a cold run of the same command would.
_FRESH_SIGNALS: dict[int, Any] = {
    signum: signal.getsignal(signum)
    for signum in signal.valid_signals()
    if signum not in (signal.SIGKILL, signal.SIGSTOP)
}
_FRESH_MASK = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the blocked set, inherited across exec too

MARKER_VARIABLE = "ASSAY_RUN"
PR_SET_PDEATHSIG = 1
# Exit statuses of the server itself, read by the hub when it exits before it is ready.
EXIT_NOT_BUILT = 3
EXIT_USAGE = 2
_MAX_MESSAGE = 1 << 20
# Frameworks a built-in adapter's environment holds, imported by its server besides adapters.sdk: the modules
# each adapter imports lazily when it runs (the import is the cost: lm-eval's take ~2 s; the adapters' own
# modules are not preloaded, they are the adapter's code). Only what forks safely: guidellm's import starts
# loguru's queue-writer thread (a child's log lines would be written by the server's thread) and mteb's starts
# polars' threads, so those two preload the SDK alone.
FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "lm_eval": (
        "lm_eval",
        "lm_eval.tasks",
        "lm_eval.evaluator",
        "lm_eval.models.openai_completions",
        "lm_eval.utils",
    ),
    "lighteval": ("lighteval",),
    "inspect": ("inspect_ai",),
    "garak": ("garak",),
    "guidellm": (),
    "mteb": (),
}


def main(argv: list[str]) -> int:
    args = _parse(argv)
    if args is None:
        print(
            "usage: forkserver.py --parent PID --control FD [--preload a,b] [--adapter NAME]", file=sys.stderr
        )
        return EXIT_USAGE
    parent, control, preload, adapter = args
    if adapter is not None:
        return _bootstrap(adapter, parent, control, preload)
    _die_with(parent)
    # sys.path[0] is this file's folder (adapters/): a package there (adapters/lm_eval) would hide the real one.
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    sock = socket.socket(fileno=control)
    server = _Server(sock, parent)
    server.preload(preload)
    server.serve()
    return 0


def _parse(argv: list[str]) -> tuple[int, int, list[str], str | None] | None:
    parent: int | None = None
    control: int | None = None
    preload: list[str] = []
    adapter: str | None = None
    rest = list(argv)
    while rest:
        flag = rest.pop(0)
        if not rest:
            return None
        value = rest.pop(0)
        if flag == "--parent" and value.isdigit():
            parent = int(value)
        elif flag == "--control" and value.isdigit():
            control = int(value)
        elif flag == "--preload":
            preload += [name for name in value.split(",") if name]
        elif flag == "--adapter" and value.isidentifier():
            adapter = value
        else:
            return None
    return None if parent is None or control is None else (parent, control, preload, adapter)


def _bootstrap(adapter: str, parent: int, control: int, preload: list[str]) -> int:
    """Run with the hub's Python: exec this file again with the adapter environment's interpreter."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    from adapters.envs import AdapterEnvError, env_dir

    try:
        target = env_dir(adapter)
    except AdapterEnvError as exc:
        print(f"forkserver: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not os.path.isfile(os.path.join(target, ".ready")):
        print(f"forkserver: the environment of {adapter!r} is not built yet ({target})", file=sys.stderr)
        return EXIT_NOT_BUILT
    python = os.path.join(target, "bin", "python")
    modules = ["adapters.sdk", *FRAMEWORKS.get(adapter, ()), *preload]
    os.execv(
        python,
        [python, os.path.abspath(__file__), "--parent", str(parent), "--control", str(control),
         "--preload", ",".join(modules)],
    )  # fmt: skip


def _prctl_pdeathsig(signum: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _die_with(parent: int) -> None:
    """SIGKILL when the process that started us exits; if it already did, exit now."""
    _prctl_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _environ_slot() -> tuple[int, int]:
    """Where ``ASSAY_RUN``'s value lies in memory, and its length: the bytes ``/proc/<pid>/environ`` shows.

    ``/proc/<pid>/environ`` is the environment a process was exec'd with, read from its memory; a forked child
    that replaces ``os.environ`` still shows the server's there. So the server is started with ``ASSAY_RUN``
    set to spaces, and each child writes its run's marker over them: the hub finds a child left by a hub that
    died (``kill_orphan``) exactly as it finds a process it spawned. Returns (0, 0) when there is no slot.
    """
    with open("/proc/self/stat", "rb") as file:
        stat = file.read()
    fields = stat[stat.rfind(b")") + 2 :].split()
    env_start, env_end = int(fields[47]), int(fields[48])  # fields 50 and 51 of proc(5)
    with open("/proc/self/environ", "rb") as file:
        data = file.read()
    prefix = MARKER_VARIABLE.encode() + b"="
    at = 0 if data.startswith(prefix) else data.find(b"\0" + prefix) + 1
    if (at <= 0 and not data.startswith(prefix)) or len(data) != env_end - env_start:
        return 0, 0
    end = data.find(b"\0", at)
    value = data[at + len(prefix) : end if end >= 0 else len(data)]
    if not value or value.strip(b" "):
        return 0, 0
    return env_start + at + len(prefix), len(value)


def _write_memory(address: int, data: bytes) -> None:
    fd = os.open("/proc/self/mem", os.O_RDWR)
    try:
        if os.pwrite(fd, data, address) != len(data):
            raise OSError("short write to /proc/self/mem")
    finally:
        os.close(fd)


class _Server:
    def __init__(self, sock: socket.socket, parent: int) -> None:
        self._sock = sock
        self._parent = parent
        self._pid = os.getpid()
        self._children: dict[int, tuple[Any, int]] = {}  # pidfd -> (request id, pid)
        self._slot = (0, 0)
        self._preloaded_fds: frozenset[tuple[int, int, int]] = frozenset()
        # What a child gets back: the umask before anything was imported (the hub's, inherited).
        umask = os.umask(0o022)
        os.umask(umask)
        self._umask = umask
        # Not for the children: the marker slot's placeholder.
        os.environ.pop(MARKER_VARIABLE, None)

    def preload(self, modules: list[str]) -> None:
        loaded: list[str] = []
        failed: dict[str, str] = {}
        started = time.monotonic()
        for name in modules:
            try:
                __import__(name)
                loaded.append(name)
            except BaseException as exc:  # a broken preload costs its warm start only, never the server
                failed[name] = f"{type(exc).__name__}: {exc}"
        self._slot = self._check_slot()
        # What the preloads left open (garak's log file): a fresh process that imported them would have it too.
        self._preloaded_fds = frozenset(_identities(set(_open_fds()) - {self._sock.fileno()}))
        gc.collect()
        if hasattr(gc, "freeze"):
            gc.freeze()  # children do not copy the preloaded objects' pages when their collector runs
        self._send(
            {
                "ready": {
                    "pid": self._pid,
                    "python": sys.executable,
                    "version": list(sys.version_info[:3]),
                    "preloaded": loaded,
                    "failed": failed,
                    "seconds": round(time.monotonic() - started, 3),
                    "slot": self._slot[1],
                    "threads": threading.active_count(),
                }
            }
        )

    def _check_slot(self) -> tuple[int, int]:
        """The marker slot, once written and read back through /proc (else 0: the hub runs cold)."""
        try:
            address, length = _environ_slot()
            if not length:
                return 0, 0
            probe = b"probe," + b" " * (length - 6)
            _write_memory(address, probe)
            with open("/proc/self/environ", "rb") as file:
                seen = (MARKER_VARIABLE.encode() + b"=" + probe) in file.read()
            _write_memory(address, b" " * length)
            return (address, length) if seen else (0, 0)
        except (OSError, ValueError, IndexError):
            return 0, 0

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ, None)
        while True:
            for key, _ in selector.select():
                if key.data is None:
                    if not self._receive(selector):
                        return  # the hub is gone; the children follow us (PR_SET_PDEATHSIG)
                else:
                    self._reap(selector, key.fileobj)

    def _receive(self, selector: selectors.BaseSelector) -> bool:
        fds = array.array("i")
        try:
            data, ancillary, _flags, _ = self._sock.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(4 * fds.itemsize))
        except (ConnectionError, OSError):
            return False
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        request_id = None
        try:
            request = json.loads(data)
            request_id = request["id"]
            if len(fds) != 1:
                raise ValueError(f"a request carries one file descriptor, got {len(fds)}")
            self._fork(selector, request, fds[0])
        except Exception as exc:
            for fd in fds:
                _close_quietly(fd)
            self._send({"id": request_id, "error": f"{type(exc).__name__}: {exc}"})
        return True

    def _fork(self, selector: selectors.BaseSelector, request: dict[str, Any], output: int) -> None:
        ready_read, ready_write = os.pipe()
        try:
            pid = os.fork()
        except BaseException:
            os.close(ready_read)
            os.close(ready_write)
            raise
        if pid == 0:
            os.close(ready_read)
            _child(request, output, ready_write, self._pid, self._slot, self._umask, self._preloaded_fds)
        os.close(ready_write)
        os.close(output)
        try:
            # The child says so once it leads its own group and carries its marker; EOF if it died first.
            os.read(ready_read, 1)
        finally:
            os.close(ready_read)
        pidfd = os.pidfd_open(pid)
        selector.register(pidfd, selectors.EVENT_READ, (request["id"], pid))
        self._children[pidfd] = (request["id"], pid)
        self._send({"id": request["id"], "pid": pid})

    def _reap(self, selector: selectors.BaseSelector, pidfd: Any) -> None:
        request_id, pid = self._children.pop(pidfd)
        selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self._send({"id": request_id, "exit": os.waitstatus_to_exitcode(status)})

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._sock.sendmsg([json.dumps(message).encode()])
        except OSError:
            os._exit(0)  # the hub is gone


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


# -- the child ---------------------------------------------------------------------------------------------


def _child(
    request: dict[str, Any],
    output: int,
    ready: int,
    server: int,
    slot: tuple[int, int],
    umask: int,
    preloaded: frozenset[tuple[int, int, int]],
) -> None:
    """Never returns."""
    try:
        os.dup2(output, 1)
        os.dup2(output, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.setsid()
        _prctl_pdeathsig(signal.SIGKILL)
        if os.getppid() != server:
            os._exit(128 + signal.SIGKILL)  # the server died while we were being born
        _reset_signals()
        os.environ.clear()
        os.environ.update(request["env"])
        if hasattr(time, "tzset"):
            time.tzset()
        _mark(slot, str(request["marker"]))
        os.write(ready, b"1")
        _close_fds(keep=preloaded)
        _apply_limits(request, umask)
        os.chdir(request["cwd"])
        sys.argv = list(request["argv"])
        sys.orig_argv = [sys.executable, *request["orig_argv"]]
        if sys.path:
            sys.path[0] = request["path0"]
        else:
            sys.path.insert(0, request["path0"])
        _reseed()
    except BaseException:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(1)
    _finish(_run(request))


def _reset_signals() -> None:
    """Dispositions and mask of a fresh interpreter exec'd by the hub: the server's own at its start
    (:data:`_FRESH_SIGNALS`: default, SIGINT raising KeyboardInterrupt unless it was ignored, SIGPIPE and SIGXFSZ
    ignored as Python sets them, and whatever the hub's process ignored) and its blocked set."""
    for signum, disposition in _FRESH_SIGNALS.items():
        if disposition is None:  # installed outside Python: a fresh exec resets it to the default
            disposition = signal.SIG_DFL
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(signum, disposition)
    signal.pthread_sigmask(signal.SIG_SETMASK, _FRESH_MASK)
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)


def _mark(slot: tuple[int, int], marker: str) -> None:
    address, length = slot
    value = (marker + ",").encode()
    if not length or len(value) > length:
        raise RuntimeError(f"run marker of {len(value)} bytes does not fit the slot of {length}")
    _write_memory(address, value + b" " * (length - len(value)))


def _open_fds() -> list[int]:
    return [int(name) for name in os.listdir("/proc/self/fd") if int(name) > 2]


def _identities(fds: set[int]) -> set[tuple[int, int, int]]:
    """(fd, device, inode) of each open descriptor (the one that listed /proc/self/fd is closed by now)."""
    found = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            status = os.fstat(fd)
            found.add((fd, status.st_dev, status.st_ino))
    return found


def _close_fds(keep: frozenset[tuple[int, int, int]]) -> None:
    """Close every descriptor but 0-2 and the preloads' own; a preload's file is opened again, so that this
    process has its own offset in it as a fresh one would (pipes and sockets stay shared with the server)."""
    for fd in _open_fds():
        if not _identities({fd}) & keep:
            _close_quietly(fd)
        else:
            with contextlib.suppress(OSError):
                _reopen(fd)


def _reopen(fd: int) -> None:
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
        return
    with open(f"/proc/self/fdinfo/{fd}") as info:
        flags = int(next(line for line in info if line.startswith("flags:")).split()[1], 8)
    keep = os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_CLOEXEC
    fresh = os.open(f"/proc/self/fd/{fd}", flags & keep)
    try:
        if stat.S_ISREG(mode) and not flags & os.O_APPEND:
            os.lseek(fresh, os.lseek(fd, 0, os.SEEK_CUR), os.SEEK_SET)
        os.dup2(fresh, fd, inheritable=os.get_inheritable(fd))
    finally:
        os.close(fresh)


def _apply_limits(request: dict[str, Any], umask: int) -> None:
    import resource

    for name, (soft, hard) in request.get("limits", {}).items():
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        try:
            if resource.getrlimit(limit) != (soft, hard):
                resource.setrlimit(limit, (soft, hard))
        except (OSError, ValueError):
            pass  # a hard limit above ours cannot be raised without privilege; ours stays
    os.umask(umask)
    affinity = request.get("affinity")
    if affinity and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, affinity)


def _reseed() -> None:
    # random reseeds itself in os.fork's child hook; NumPy's legacy global generator is seeded once at import.
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        with contextlib.suppress(Exception):
            numpy_random.seed()


def _fresh_main() -> types.ModuleType:
    main = types.ModuleType("__main__")
    main.__dict__.update({"__builtins__": builtins, "__annotations__": {}})
    sys.modules["__main__"] = main
    return main


def _run(request: dict[str, Any]) -> int:
    """Run the target as ``__main__``; the exit status the interpreter would give."""
    try:
        main = _fresh_main()
        if request["kind"] == "module":
            import runpy

            # What `python -m` calls; it runs the module in sys.modules["__main__"] and sets sys.argv[0].
            runpy._run_module_as_main(request["target"], alter_argv=True)  # type: ignore[attr-defined, unused-ignore]
        else:
            path = request["target"]
            from importlib.machinery import SourceFileLoader

            main.__dict__.update(
                {"__file__": path, "__cached__": None, "__spec__": None, "__package__": None}
            )
            main.__loader__ = SourceFileLoader("__main__", path)
            with open(path, "rb") as file:
                source = file.read()
            exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)
        return 0
    except SystemExit as exc:
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        return -signal.SIGINT
    except BaseException:
        sys.excepthook(*sys.exc_info())
        return 1


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _finish(code: int) -> None:
    """The interpreter's exit: join non-daemon threads, run atexit handlers, flush the streams."""
    try:
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
    except BaseException:
        pass
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            if stream is sys.stdout and code == 0:
                code = 120
    if code == -signal.SIGINT:
        # An uncaught KeyboardInterrupt ends the process by SIGINT, as Python does.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 128 + signal.SIGINT
    os._exit(code & 0xFF)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
