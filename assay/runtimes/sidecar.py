"""The local hub's sidecar: one ``python -m adapters.sidecar`` process in local mode that every local adapter
reaches for its model calls and callbacks, the same program a pod runs beside its adapter.

The hub starts it on a free loopback port, restarts it if it dies, and stops it last (after the runtime), so
buffered callbacks still reach the hub while it shuts down. What it buffers is also written to its spool
directory (``work_dir/spool``) until the hub accepted it: events the hub could not take before it stopped (or
before either process was killed) are delivered by the next sidecar, to the next hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assay.settings import Settings

__all__ = ["LocalSidecar", "SidecarOptions", "local_sidecar"]

logger = logging.getLogger(__name__)

_READY_SECONDS = 30.0
_POLL_SECONDS = 0.05
_RESTART_BACKOFF_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class SidecarOptions:
    jobs_root: Path  # where the local runtime writes each launch's sidecar-job-info.json
    hub_url: str  # where events are forwarded
    cache_dir: Path  # the model response cache
    max_concurrency: int
    work_dir: Path  # config, port file, log and the spool of undelivered events
    shutdown_seconds: float = 2.0  # what SIGTERM gives the flush: the spool keeps what it does not deliver

    @property
    def spool_dir(self) -> Path:
        return self.work_dir / "spool"

    def config(self) -> dict[str, Any]:
        return {
            "base_url": "http://127.0.0.1:0",
            "local_mode": True,
            "local": {"jobs_root": str(self.jobs_root)},
            "eval_hub": {"base_url": self.hub_url, "spool_dir": str(self.spool_dir)},
            "cache": {"dir": str(self.cache_dir), "enabled": True},
            "model": {"max_concurrency": self.max_concurrency},
            "shutdown_timeout": f"{self.shutdown_seconds:g}s",
        }


class LocalSidecar:
    """Supervises the sidecar process; ``url`` is where adapters reach it once :meth:`start` returned."""

    def __init__(self, options: SidecarOptions) -> None:
        self._options = options
        self._process: subprocess.Popen[bytes] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self.url = ""

    def spawn(self) -> None:
        """Start the process now and return at once; :meth:`start` then waits for it to answer. ``assay up``
        calls this before it imports the app, so the sidecar's interpreter starts beside the hub's."""
        work = self._options.work_dir
        work.mkdir(parents=True, exist_ok=True)
        config_path = work / "sidecar.json"
        config_path.write_text(json.dumps(self._options.config(), indent=2) + "\n", encoding="utf-8")
        port_file = work / "sidecar.port"
        port_file.unlink(missing_ok=True)
        port = _port_of(self.url)
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()  # a dead sidecar's pipe
        with (work / "sidecar.log").open("ab") as log:
            command = [sys.executable, "-m", "adapters.sidecar", "--config", str(config_path)]
            command += ["--host", "127.0.0.1", "--port", str(port), "--port-file", str(port_file)]
            # The sidecar holds the read end of a pipe we never write to: if this process dies, even by
            # SIGKILL, the pipe closes and the sidecar stops instead of living on as an orphan.
            command.append("--exit-with-stdin")
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def start(self) -> str:
        """Spawn the process unless :meth:`spawn` did, wait until it answers, then keep it running."""
        if self._process is None or self._process.poll() is not None:
            self.spawn()
        await self._ready()
        self._supervisor = asyncio.create_task(self._supervise(), name="assay-sidecar")
        return self.url

    async def _ready(self) -> None:
        work = self._options.work_dir
        port_file = work / "sidecar.port"
        deadline = asyncio.get_running_loop().time() + _READY_SECONDS
        if self._process is None:
            raise RuntimeError("LocalSidecar.start() spawns before it waits")
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the sidecar exited with {self._process.returncode}; see {work / 'sidecar.log'}"
                )
            if port_file.is_file() and (text := port_file.read_text().strip()):
                port = int(text)
                if await asyncio.to_thread(_answers, port):
                    self.url = f"http://127.0.0.1:{port}"
                    return
            if asyncio.get_running_loop().time() > deadline:
                self._kill()
                raise RuntimeError(
                    f"the sidecar did not answer within {_READY_SECONDS:g}s; see {work / 'sidecar.log'}"
                )
            await asyncio.sleep(_POLL_SECONDS)

    async def _supervise(self) -> None:
        # Adapters already hold the sidecar's URL in their job.json: a restart reuses the same port.
        while not self._closing:
            process = self._process
            if process is None or process.poll() is not None:
                logger.warning("the sidecar exited (%s); restarting it", process and process.returncode)
                try:
                    self.spawn()
                    await self._ready()
                except Exception:
                    logger.exception("restarting the sidecar failed")
            await asyncio.sleep(_RESTART_BACKOFF_SECONDS)

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, 9)
            self._process.wait()

    def spooled(self, job_id: str) -> bool:
        """Does the sidecar hold events of ``job_id`` the hub has not accepted yet (on disk, so across restarts)?"""
        return self._spooled(job_id) > 0

    def _spooled(self, job_id: str) -> int:
        try:
            return sum(1 for _ in (self._options.spool_dir / job_id).iterdir())
        except OSError:
            return 0

    async def drain(self, job_id: str, timeout: float) -> int:
        """Wait (up to ``timeout`` s) until the sidecar holds no events of ``job_id`` the hub has not accepted;
        returns how many it still holds.

        The spool is the answer, read from disk: the sidecar writes every event it buffers there before it
        acknowledges it, refuses (503) one it cannot write, and removes it once the hub took it. A run whose
        events all went through synchronously, the usual case, costs one directory lookup: no request."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            pending = self._spooled(job_id)
            if pending == 0 or loop.time() >= deadline:
                return pending
            await asyncio.sleep(min(_POLL_SECONDS, max(0.0, deadline - loop.time())))

    async def close(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM (the sidecar flushes what it buffered; the rest stays in its spool), then SIGKILL after
        ``grace_seconds``."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), grace_seconds)
        except TimeoutError:
            self._kill()


def _answers(port: int) -> bool:
    """Whether the sidecar on loopback ``port`` answers ``GET /health`` with 200. The standard library's client:
    httpx (and for a client of its own, its CA bundle) was 0.1 s of every ``assay up`` before the hub answered,
    for one plain-HTTP request to 127.0.0.1."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def local_sidecar(settings: Settings) -> LocalSidecar | None:
    """The local runtime's sidecar as ``settings`` configure it (not spawned yet), or None when
    ``local_sidecar`` is off."""
    if not settings.local_sidecar:
        return None
    return LocalSidecar(
        SidecarOptions(
            jobs_root=settings.local_jobs_dir,
            hub_url=settings.callback_base_url(),
            cache_dir=settings.model_cache_dir or settings.data_dir / "model-cache",
            max_concurrency=settings.model_max_concurrency,
            work_dir=settings.data_dir / "sidecar",
        )
    )


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1]) if url else 0
