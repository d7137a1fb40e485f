"""The local runtime: runs each benchmark of an evaluation as a ``/bin/sh -c`` subprocess on this machine.

It bounds how many run at once, writes the job spec where the eval-hub-sdk adapter looks for it, keeps a
timestamped log per benchmark, enforces timeouts and reports every launch's end exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from assay.core.jsontext import dumps
from assay.runtimes._output import LineWriter, copy_output
from assay.runtimes._processes import (
    MARKER_VARIABLE,
    carries_marker,
    exit_status,
    group_alive,
    marked_anywhere,
    marked_group,
    signal_all,
    signal_group,
)
from assay.runtimes._warm import WarmNotReady, WarmPool, WarmStartError, plan_warm
from assay.telemetry import tracing

__all__ = [
    "LOG_FILE_NAME",
    "ExitReason",
    "GroupMember",
    "LocalExit",
    "LocalLaunch",
    "LocalRuntime",
    "RunKey",
    "write_json",
]

logger = logging.getLogger(__name__)

ExitReason = Literal["exited", "timeout", "stopped", "shutdown", "spawn_failed"]

LOG_FILE_NAME = "jobrun.log"
_SHELL = "/bin/sh"
_REF_SCHEME = "local"
# After the process and its group are gone only an escaped daemon can hold the pipe open; don't wait on it.
_DRAIN_SECONDS = 2.0
_ORPHAN_POLL_SECONDS = 0.05
# While the start of a launch cannot be recorded (the database is away) the queue waits, doubling up to this.
_CLAIM_RETRY_SECONDS = (0.25, 5.0)
# A runtime_ref written before the process exists: its pid is not known yet (0); the run's marker finds it.
_UNKNOWN_PID = 0


@dataclass(frozen=True, slots=True)
class RunKey:
    """One attempt at one benchmark of an evaluation job."""

    evaluation_id: str
    index: int
    attempt: int


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A further benchmark of the same evaluation and provider that a launch's one process runs."""

    key: RunKey
    benchmark_id: str


@dataclass(frozen=True, slots=True)
class LocalLaunch:
    """One process: the benchmark ``key`` and, for adapters that take a group, its ``members``."""

    key: RunKey
    provider_id: str
    benchmark_id: str
    command: str
    env: Mapping[str, str]
    job_spec: Mapping[str, Any]
    timeout_seconds: float
    cwd: Path | None = None
    members: tuple[GroupMember, ...] = ()

    @property
    def keys(self) -> tuple[RunKey, ...]:
        return (self.key, *(member.key for member in self.members))


@dataclass(frozen=True, slots=True)
class LocalExit:
    key: RunKey
    reason: ExitReason
    returncode: int | None
    log_path: Path
    detail: str = ""


@dataclass(eq=False, slots=True)
class _Run:
    launch: LocalLaunch
    job_path: Path
    log_path: Path
    queued: bool = True
    stop_reason: ExitReason | None = None
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    reported: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class LocalRuntime:
    """Runs launches as subprocesses, at most ``max_parallel`` at once, the rest waiting in FIFO order.

    ``on_exit`` is awaited exactly once per benchmark of each launch that was queued (the lead and each group
    member); an exception from it is logged and ignored.

    ``on_spawn`` is awaited for each benchmark of a launch *before* its process starts, with the ``runtime_ref``
    ``local:<instance_id>:0`` (the process is found by its run marker, not its pid): the start is recorded
    first, or it does not happen. It returns False when the run moved on meanwhile (finished, cancelled, a
    later attempt): a launch none of whose benchmarks may start is not started (reported ``stopped``). When it
    raises (the database is away), the launch goes back to the head of the queue and the queue waits, with
    backoff, so nothing starts that could not be recorded.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_parallel: int,
        on_exit: Callable[[LocalExit], Awaitable[None]],
        on_spawn: Callable[[RunKey, str], Awaitable[bool]] | None = None,
        stop_grace_seconds: float = 5.0,
        warm_start: bool = True,
        warm_idle_seconds: float = 300.0,
    ) -> None:
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        if not stop_grace_seconds >= 0:
            raise ValueError("stop_grace_seconds must not be negative")
        self.instance_id: str = uuid.uuid4().hex
        self._root = Path(root).absolute()
        self._max_parallel = max_parallel
        self._on_exit = on_exit
        self._on_spawn = on_spawn
        self._grace = stop_grace_seconds
        self._runs: dict[RunKey, _Run] = {}  # queued or running
        self._queue: deque[_Run] = deque()
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._holding = False  # shutdown began: no new starts
        self._held = False  # a start could not be recorded: no new starts until the retry
        self._claim_failures = 0
        self._resume: asyncio.TimerHandle | None = None
        # Python adapters forked from a server that holds their imports (see assay.runtimes._warm).
        self._warm = WarmPool(warm_idle_seconds) if warm_start else None

    # -- layout ---------------------------------------------------------------------------------------

    def run_dir(self, evaluation_id: str, index: int, provider_id: str, benchmark_id: str) -> Path:
        for name, value in (
            ("evaluation_id", evaluation_id),
            ("provider_id", provider_id),
            ("benchmark_id", benchmark_id),
        ):
            _check_component(name, value)
        if index < 0:
            raise ValueError(f"index must not be negative, got {index}")
        return self._root / evaluation_id / str(index) / provider_id / benchmark_id

    def log_path(self, evaluation_id: str, index: int, provider_id: str, benchmark_id: str) -> Path:
        return self.run_dir(evaluation_id, index, provider_id, benchmark_id) / LOG_FILE_NAME

    # -- public operations ----------------------------------------------------------------------------

    async def launch(self, launch: LocalLaunch) -> Path:
        """Write ``meta/job.json`` and queue the launch; returns the job.json path without waiting for a slot.

        A launch of a key already queued or running is a no-op, and so is one older than the attempt that
        is (a redelivered or stale dispatch). A newer attempt of a running index stops the old one first.
        """
        key = launch.key
        keys = launch.keys
        if any(k.attempt < 1 for k in keys):
            raise ValueError(f"attempt must be at least 1, got {[k.attempt for k in keys]}")
        if any(k.evaluation_id != key.evaluation_id for k in keys) or len({k.index for k in keys}) != len(
            keys
        ):
            raise ValueError("a launch's members must be distinct benchmarks of the same evaluation")
        if not launch.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, got {launch.timeout_seconds}")
        run_dir = self.run_dir(key.evaluation_id, key.index, launch.provider_id, launch.benchmark_id)
        job_path = run_dir / "meta" / "job.json"
        # Stopping the older attempt awaits, so everything is decided again after it.
        while True:
            if self._closed:
                raise RuntimeError("the local runtime is closed")
            active = self.active()
            if any(k in active for k in keys):
                return job_path
            attempts = {k.index: k.attempt for k in keys}
            overlapping = [
                run
                for run in self._runs.values()
                if any(k.evaluation_id == key.evaluation_id and k.index in attempts for k in run.launch.keys)
            ]
            if not overlapping:
                break
            if any(
                k.attempt > attempts[k.index]
                for run in overlapping
                for k in run.launch.keys
                if k.evaluation_id == key.evaluation_id and k.index in attempts
            ):
                logger.info("ignoring launch of %s: a later attempt is active", key)
                return job_path
            await self._stop_runs(overlapping, "stopped")
        write_json(job_path, launch.job_spec)
        for member in launch.members:
            # A member's log is the group's one log: link it where the logs API looks for the member's.
            link = self.log_path(key.evaluation_id, member.key.index, launch.provider_id, member.benchmark_id)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists() and not link.is_symlink():  # a log of its own from an earlier attempt stays
                link.symlink_to(run_dir / LOG_FILE_NAME)
        run = _Run(launch=launch, job_path=job_path, log_path=run_dir / LOG_FILE_NAME)
        self._runs[key] = run
        self._queue.append(run)
        self._pump()
        return job_path

    async def stop(
        self, evaluation_id: str, index: int | None = None, *, before: Mapping[int, int] | None = None
    ) -> None:
        """Stop the evaluation's runs (or one index): queued ones are dropped, running ones terminated;
        with ``before``, only launches whose attempts are all earlier than ``before[index]``.

        Returns once each has ended and its ``on_exit`` (reason ``stopped``) has been awaited.
        """
        runs = [
            run
            for run in self._runs.values()
            if run.launch.key.evaluation_id == evaluation_id
            and (index is None or any(k.index == index for k in run.launch.keys))
            and (
                before is None or all(k.attempt < before.get(k.index, k.attempt + 1) for k in run.launch.keys)
            )
        ]
        await self._stop_runs(runs, "stopped")

    def active(self) -> set[RunKey]:
        """Every benchmark attempt queued or running, group members included."""
        return {k for run in self._runs.values() for k in run.launch.keys}

    def owns(self, runtime_ref: str) -> bool:
        parsed = _parse_ref(runtime_ref)
        return parsed is not None and parsed[0] == self.instance_id

    async def kill_orphan(self, runtime_ref: str, key: RunKey) -> bool:
        """Kill a process left by another (dead) instance, if it still carries ``key``'s marker.

        Every process signalled is checked for the marker first, so a reused pid is never hit. A ref whose
        pid is not known (recorded before the process started) is found by the marker alone. Returns
        whether a process was found with the marker. Refs of this instance are left alone (use stop).
        """
        parsed = _parse_ref(runtime_ref)
        if parsed is None or parsed[0] == self.instance_id:
            return False
        pid = parsed[1]
        marker = _marker(key)

        def marked() -> set[int]:
            return marked_group(pid, marker) if pid != _UNKNOWN_PID else marked_anywhere(marker)

        if not marked() if pid == _UNKNOWN_PID else not carries_marker(pid, marker):
            return False
        logger.info("killing orphan %s of %s", runtime_ref, key)
        signal_all(marked(), signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        while marked() and loop.time() < deadline:
            await asyncio.sleep(_ORPHAN_POLL_SECONDS)
        signal_all(marked(), signal.SIGKILL)
        return True

    async def warm_up(
        self, command: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> bool:
        """Start the fork server that launches of ``command`` with the provider's ``env`` would use, and wait
        until it is ready (a launch that finds its server still starting starts cold). A relative script path
        is taken from ``cwd``. Returns whether such launches start warm."""
        if self._warm is None:
            return False
        full = _provider_env(env or {})
        plan = plan_warm(command, full, cwd or Path("/"))
        if plan is None:
            return False
        try:
            await self._warm.prepare(plan, full)
        except WarmStartError as exc:
            self._warm.fallback(command, exc)
            return False
        return True

    def hold(self) -> None:
        """Shutdown began: start nothing more from the queue. What runs keeps running, and launches are
        still queued, until :meth:`close`."""
        self._holding = True

    async def close(self) -> None:
        """Hub shutdown: stop what runs (reason ``shutdown``) and wait until every run has been reported.

        Launches still queued never started: they are reported ``stopped`` (not a failure), so the hub that
        starts next launches them again."""
        self._holding = True
        self._closed = True
        if self._resume is not None:
            self._resume.cancel()
        await self._stop_runs(list(self._runs.values()), "shutdown")
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._warm is not None:
            await self._warm.close()

    # -- scheduling -----------------------------------------------------------------------------------

    def _pump(self) -> None:
        while (
            self._queue
            and self._running < self._max_parallel
            and not (self._closed or self._holding or self._held)
        ):
            run = self._queue.popleft()
            run.queued = False
            self._running += 1
            # Tracing on: the run's task is in its own launch's trace (its env), never in the pumping task's.
            env, execute = run.launch.env, self._execute(run)
            execute = tracing.traced(
                "adapter run", execute, parent=(env.get("TRACEPARENT"), env.get("TRACESTATE"))
            )
            task = asyncio.create_task(
                execute, name=f"assay-local-{_marker(run.launch.key)}", context=tracing.detached()
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _stop_runs(self, runs: list[_Run], reason: ExitReason) -> None:
        """Drop the queued ones (reported ``stopped``: they never started) and stop the running ones."""
        dropped: list[_Run] = []
        # Dequeue before any await so that a slot freed meanwhile cannot start one of these.
        for run in runs:
            if run.queued:
                self._queue.remove(run)
                run.queued = False
                self._forget(run)
                dropped.append(run)
            elif not run.stop_requested.is_set():
                run.stop_reason = reason
                run.stop_requested.set()
        for run in dropped:
            await self._report(run, "stopped", None, "")
        for run in runs:
            await run.done.wait()

    def _forget(self, run: _Run) -> None:
        if self._runs.get(run.launch.key) is run:
            del self._runs[run.launch.key]

    async def _report(self, run: _Run, reason: ExitReason, returncode: int | None, detail: str) -> None:
        if run.reported:
            return
        run.reported = True
        try:
            for key in run.launch.keys:
                try:
                    await self._on_exit(LocalExit(key, reason, returncode, run.log_path, detail))
                except Exception:
                    logger.exception("on_exit failed for %s", key)
        finally:
            run.done.set()

    # -- one run --------------------------------------------------------------------------------------

    async def _claim(self, run: _Run) -> Literal["start", "skip", "retry"]:
        """Record the start of ``run`` before its process exists (``on_spawn``)."""
        if self._on_spawn is None:
            return "start"
        ref = f"{_REF_SCHEME}:{self.instance_id}:{_UNKNOWN_PID}"
        allowed = []
        for key in run.launch.keys:
            try:
                allowed.append(await self._on_spawn(key, ref) is not False)
            except Exception:
                logger.warning("recording the start of %s failed; it waits in the queue", key, exc_info=True)
                return "retry"
        return "start" if any(allowed) else "skip"

    def _requeue(self, run: _Run) -> None:
        """The start of ``run`` could not be recorded: back to the head of the queue, which waits a while."""
        run.queued = True
        self._queue.appendleft(run)
        self._claim_failures += 1
        first, most = _CLAIM_RETRY_SECONDS
        delay = min(most, first * 2 ** (self._claim_failures - 1))
        self._held = True

        def resume() -> None:
            self._resume = None
            self._held = False
            self._pump()

        self._resume = asyncio.get_running_loop().call_later(delay, resume)

    async def _execute(self, run: _Run) -> None:
        launch = run.launch
        reason: ExitReason
        returncode: int | None = None
        detail = ""
        claim: Literal["start", "skip", "retry"] = "start"
        requeue = False
        try:
            if not run.stop_requested.is_set():
                claim = await tracing.traced("record start", self._claim(run))
            if claim == "retry" and not run.stop_requested.is_set() and not self._closed:
                requeue = True
                return
            if claim == "start":
                self._claim_failures = 0
            if run.stop_requested.is_set() or self._closed or claim != "start":
                # Stopped, shut down or moved on while its start was being recorded: it never starts, and
                # is reported like a launch dropped from the queue.
                reason = "stopped"
            else:
                with run.log_path.open("ab") as log:
                    writer = LineWriter(log)
                    if launch.key.attempt > 1 or os.fstat(log.fileno()).st_size > 0:
                        writer.write_line(f"=== attempt {launch.key.attempt} ===")
                    reason, returncode, detail = await tracing.traced("process", self._supervise(run, writer))
        except Exception as exc:
            # Opening the log can fail (the run directory removed under us); the launch is still reported.
            logger.exception("could not run %s", launch.key)
            reason, returncode, detail = "spawn_failed", None, str(exc)
        finally:
            self._running -= 1
            if requeue:
                self._requeue(run)
            else:
                self._forget(run)
            self._pump()
        await tracing.traced("record exit", self._report(run, reason, returncode, detail))

    async def _supervise(self, run: _Run, writer: LineWriter) -> tuple[ExitReason, int | None, str]:
        launch = run.launch
        read_fd, write_fd = os.pipe()
        cwd = launch.cwd if launch.cwd is not None else run.job_path.parent.parent
        env = self._child_env(run)
        warm = await self._start_warm(run, env, cwd, write_fd)
        if warm == "stopped":
            os.close(read_fd)
            os.close(write_fd)
            return run.stop_reason or "stopped", None, ""
        waiter: asyncio.Future[int]
        if warm is not None:
            pid, waiter = warm  # the child leads its own session too
        else:
            try:
                # Popen rather than the event loop's subprocess support: it spawns with vfork in about a
                # millisecond, where uvloop's fork-based spawn takes several; exit is watched via a pidfd.
                process = subprocess.Popen(
                    [_SHELL, "-c", launch.command],
                    stdin=subprocess.DEVNULL,
                    stdout=write_fd,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                )
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                os.close(read_fd)
                os.close(write_fd)
                writer.write_line(f"=== spawn failed: {exc} ===")
                writer.flush()
                return "spawn_failed", None, str(exc)
            pid = process.pid  # also the process group id: the child leads a new session
            waiter = asyncio.create_task(exit_status(process))
        os.close(write_fd)  # the child holds its copy; EOF comes when every holder is gone
        loop = asyncio.get_running_loop()
        deadline = loop.time() + launch.timeout_seconds
        reader = asyncio.create_task(copy_output(read_fd, writer))
        reason: ExitReason = "exited"
        try:
            stopper = asyncio.create_task(run.stop_requested.wait())
            remaining = None if math.isinf(deadline) else max(0.0, deadline - loop.time())
            watched: set[asyncio.Future[Any]] = {waiter, stopper}
            try:
                done, _ = await asyncio.wait(watched, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            if waiter not in done:
                reason = (run.stop_reason or "stopped") if run.stop_requested.is_set() else "timeout"
                await self._terminate(pid, waiter)
            returncode = await waiter
        except BaseException:
            # Cancelled (the loop is going away without close()): leave no process behind.
            signal_group(pid, signal.SIGKILL)
            reader.cancel()
            waiter.cancel()
            raise
        # Leftovers in the group would outlive the run they belong to and keep the log pipe open.
        signal_group(pid, signal.SIGKILL)
        await asyncio.wait({reader}, timeout=_DRAIN_SECONDS)
        if not reader.done():
            logger.warning("output of %s still open after it exited; no longer reading it", launch.key)
            reader.cancel()
            await asyncio.wait({reader})
        elif not reader.cancelled() and reader.exception() is not None:
            logger.error("reading the output of %s failed", launch.key, exc_info=reader.exception())
        return reason, returncode, ""

    async def _start_warm(
        self, run: _Run, env: dict[str, str], cwd: Path, output: int
    ) -> tuple[int, asyncio.Future[int]] | Literal["stopped"] | None:
        """Fork the launch from its fork server when its command is eligible: (pid, exit status); None to
        start it cold (not eligible, or the warm start failed: said once per command); "stopped" when the
        run was stopped while its server was starting."""
        if self._warm is None:
            return None
        plan = plan_warm(run.launch.command, env, cwd)
        if plan is None:
            return None
        marker = env[MARKER_VARIABLE]
        spawn = asyncio.create_task(self._warm.spawn(plan, env, cwd, marker, output))
        stopper = asyncio.create_task(run.stop_requested.wait())
        try:
            await asyncio.wait({spawn, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not spawn.done():
            spawn.cancel()  # a child forked all the same is killed when its pid arrives
            await asyncio.wait({spawn})
            return "stopped"
        try:
            return spawn.result()
        except WarmNotReady:
            return None  # its server starts for the next launches
        except (WarmStartError, OSError, ValueError) as exc:
            self._warm.fallback(run.launch.command, exc)
            return None

    async def _terminate(self, pgid: int, waiter: asyncio.Future[int]) -> None:
        signal_group(pgid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        await asyncio.wait({waiter}, timeout=self._grace)
        # The leader (``sh -c``) exits at once on SIGTERM while the adapter it started is still reporting its
        # cancel: the whole group gets the rest of the grace, not just the leader.
        while group_alive(pgid) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if not waiter.done() or group_alive(pgid):
            signal_group(pgid, signal.SIGKILL)

    def _child_env(self, run: _Run) -> dict[str, str]:
        env = _provider_env(run.launch.env)
        env.update(
            {
                "EVALHUB_JOB_SPEC_PATH": str(run.job_path),
                MARKER_VARIABLE: ",".join(_marker(k) for k in run.launch.keys),
            }
        )
        return env


# What an adapter may inherit from the hub: where programs, caches and certificates are, the locale, the
# offline switches of the frameworks, thread counts. Anything else (DATABASE_URL, ASSAY_* settings, tokens,
# cloud credentials) stays with the hub; a provider passes what its adapter needs in runtime.local.env.
_INHERITED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TERM",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_RUNTIME_DIR",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "HF_HOME",
        "HF_HUB_OFFLINE",
        "HF_DATASETS_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_DATASETS_CACHE",
        "TIKTOKEN_CACHE_DIR",
        "LITELLM_LOCAL_MODEL_COST_MAP",
        "NLTK_DATA",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
        "ASSAY_ADAPTER_ENVS",
        "MLFLOW_TRACKING_URI",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    }
)
_INHERITED_PREFIXES = ("LC_",)


def _provider_env(launch_env: Mapping[str, str]) -> dict[str, str]:
    """A launch's environment but for its own variables (job spec path, run marker)."""
    # Children get an allow-listed part of the hub's environment (PATH, HOME, locale, offline switches),
    # never its secrets (DATABASE_URL, tokens, webhook secrets); this is not configuration.
    env = adapter_environment(os.environ)  # noqa: TID251
    # The hub's own scripts (``assay-adapter``) come first, found even when its venv is not activated.
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
    env.update(launch_env)
    env.update({"EVALHUB_MODE": "local", "PYTHONUNBUFFERED": "1"})
    return env


def adapter_environment(hub: Mapping[str, str]) -> dict[str, str]:
    """The part of the hub's environment an adapter process inherits (see ``_INHERITED``)."""
    return {k: v for k, v in hub.items() if k in _INHERITED or k.startswith(_INHERITED_PREFIXES)}


def _check_component(name: str, value: str) -> None:
    if not value or value == "." or "/" in value or ".." in value or "\0" in value:
        raise ValueError(f"{name} {value!r} cannot be used as a path component")


def _marker(key: RunKey) -> str:
    return f"{key.evaluation_id}/{key.index}/{key.attempt}"


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` as indented JSON, replacing ``path`` atomically (readers see old or new, whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(document, indent=True, default=_plain) + b"\n"
    # Replace atomically: an adapter of a previous attempt may still be reading the old file.
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        scratch.write_bytes(text)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _parse_ref(runtime_ref: str) -> tuple[str, int] | None:
    parts = runtime_ref.split(":")
    if len(parts) != 3 or parts[0] != _REF_SCHEME or not parts[1]:
        return None
    if not (parts[2].isascii() and parts[2].isdigit()) or int(parts[2]) < 0:
        return None
    return parts[1], int(parts[2])
