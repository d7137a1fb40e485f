"""The local runtime seen from the lifecycle: turns a planned benchmark into a subprocess launch and
reports the process's start and exit back as lifecycle steps."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from assay.core.credentials import LaunchSigner
from assay.core.jobspec import job_spec
from assay.core.plan import PlannedBenchmark
from assay.lifecycle.ports import Lifecycle
from assay.lifecycle.progress import runtime_exited, runtime_spawned
from assay.runtimes import GroupMember, LocalExit, LocalLaunch, LocalRuntime, RunKey, write_json
from assay.runtimes.observation import RunObservation, SeenLaunch
from assay.runtimes.sidecar import LocalSidecar
from assay.store import EvaluationRecord, RunRow
from assay.telemetry import tracing

SIDECAR_JOB_INFO = "sidecar-job-info.json"
HUB_TOKEN = "hub-token"  # the launch credential of <evaluation>/<index>, read by the local sidecar
_TOKEN_SLACK_SECONDS = 3600.0  # a credential outlives its run's timeout by this much (late, buffered events)
_DRAIN_SECONDS = 30.0
# Recording a run's end while the database is away: tried again, doubling up to this, until the hub stops.
_EXIT_RETRY_SECONDS = (0.5, 10.0)

log = logging.getLogger(__name__)


class LocalRunner:
    """:class:`~assay.lifecycle.ports.Runtime` over :class:`~assay.runtimes.LocalRuntime`."""

    name = "local"
    watches = False
    queues_launches = True

    def __init__(
        self, ctx: Lifecycle, root: Path, *, signer: LaunchSigner, sidecar: LocalSidecar | None = None
    ) -> None:
        self._ctx = ctx
        self._root = root
        self._signer = signer
        self._sidecar = sidecar
        self._starting = asyncio.Lock()
        # Per queued launch, until its process starts: (provider, when it was queued, its timeout).
        self._queued: dict[RunKey, tuple[str, float, float]] = {}
        self._stop_by: float | None = None  # the shutdown's deadline, once it began
        settings = ctx.settings
        self._runtime = LocalRuntime(
            root,
            max_parallel=settings.local_max_parallel,
            on_exit=self._exited,
            on_spawn=self._spawned,
            stop_grace_seconds=settings.stop_grace_seconds,
            warm_start=settings.local_warm_start,
        )

    async def _spawned(self, key: RunKey, runtime_ref: str) -> bool:
        """Record the start before the process exists (the runtime starts it only after this returned True)."""
        queued = self._queued.get(key)
        timeout = self._ctx.settings.benchmark_timeout_seconds
        if queued is not None:
            provider, at, timeout = queued
            if self._ctx.metrics is not None:
                self._ctx.metrics.queue_wait.labels(self._ctx.metrics.provider_label(provider)).observe(
                    time.monotonic() - at
                )
        allowed = await runtime_spawned(
            self._ctx, key.evaluation_id, key.index, key.attempt, runtime_ref, timeout
        )
        self._queued.pop(key, None)
        return allowed

    async def _exited(self, exit_: LocalExit) -> None:
        key = exit_.key
        self._queued.pop(key, None)  # a launch that never started
        if self._sidecar is not None and exit_.reason == "exited":
            if self._stop_by is not None and self._sidecar.spooled(key.evaluation_id):
                # Shutting down with the job's events still on their way (kept on disk by the sidecar): the
                # next hub receives them, and judges the run only after they arrived (see lost()).
                return
            # A result the sidecar is still retrying towards us is not a result never sent.
            await self._sidecar.drain(key.evaluation_id, timeout=self._left(_DRAIN_SECONDS))
        failures = 0
        while True:
            try:
                await asyncio.wait_for(
                    runtime_exited(
                        self._ctx,
                        key.evaluation_id,
                        key.index,
                        key.attempt,
                        exit_.reason,
                        exit_.returncode,
                        exit_.detail,
                    ),
                    self._budget(),
                )
                return
            except (psycopg.OperationalError, TimeoutError) as exc:
                # The database is away: its end is recorded once it is back. While the hub stops, what the
                # deadline leaves unrecorded the next hub's sweep judges (the process is gone: runtime_lost).
                failures += 1
                first, most = _EXIT_RETRY_SECONDS
                delay = min(most, first * 2 ** (failures - 1))
                if self._left(delay) < delay:
                    log.warning("the end of %s was not recorded before the hub stopped: %s", key, exc)
                    return
                log.warning("recording the end of %s failed (%s); again in %g s", key, exc, delay)
                await asyncio.sleep(delay)

    def _budget(self) -> float | None:
        """Seconds left before the shutdown's deadline; None while the hub is not stopping."""
        return None if self._stop_by is None else max(0.0, self._stop_by - time.monotonic())

    def _left(self, wanted: float) -> float:
        """``wanted`` seconds, or less when the hub is stopping and its deadline is nearer."""
        budget = self._budget()
        return wanted if budget is None else min(wanted, budget)

    async def start_sidecar(self) -> None:
        """Start the sidecar unless it answers already: once, for whoever asks first (the local hub before it
        serves, a function's first launch); every launch waits for it."""
        if self._sidecar is not None and not self._sidecar.url:
            async with self._starting:
                if not self._sidecar.url:
                    await self._sidecar.start()

    async def launch(
        self, evaluation: EvaluationRecord, runs: Sequence[tuple[PlannedBenchmark, int]]
    ) -> None:
        (planned, attempt), *others = runs
        command = planned.runtime.local_command
        if command is None:
            raise RuntimeError(f"provider {planned.provider_id!r} has no runtime.local.command")
        timeout = self._ctx.timeout_of(planned)
        callback_url = self._ctx.settings.callback_base_url()
        model_url: str | None = None
        await self.start_sidecar()
        if self._sidecar is not None:
            # Model traffic and events go through the sidecar: response cache, retries, accounting.
            callback_url = self._sidecar.url
            model_url = self._route_model(self._sidecar.url, evaluation, [p for p, _ in runs], timeout)
        spec = job_spec(
            evaluation.id,
            evaluation.request,
            planned,
            callback_url=callback_url,
            model_url=model_url,
            group=[p for p, _ in others],
        )
        key = RunKey(evaluation.id, planned.index, attempt)
        members = tuple(GroupMember(RunKey(evaluation.id, p.index, a), p.id) for p, a in others)
        token_path = self._write_credential(evaluation, runs, timeout)
        env = dict(planned.runtime.local_env)
        env.update(tracing.carrier_env())  # the launch span (tracing on): the adapter may join its trace,
        tracing.write_carrier(
            *(self._root / evaluation.id / str(p.index) for p, _ in runs)
        )  # the sidecar too
        if self._sidecar is None:
            env["EVALHUB_AUTH_TOKEN_PATH"] = str(token_path)  # no sidecar: the adapter calls the hub itself
        for member_key in (key, *(m.key for m in members)):
            self._queued.setdefault(member_key, (planned.provider_id, time.monotonic(), timeout))
        await self._runtime.launch(
            LocalLaunch(
                key=key,
                provider_id=planned.provider_id,
                benchmark_id=planned.id,
                command=command,
                env=env,
                job_spec=spec,
                timeout_seconds=timeout,
                members=members,
            )
        )

    def _write_credential(
        self, evaluation: EvaluationRecord, runs: Sequence[tuple[PlannedBenchmark, int]], timeout: float
    ) -> Path:
        """One launch credential for the launch's benchmarks and attempts, beside each member's run files
        (mode 0600); returns the lead's file."""
        token = self._signer.issue(
            evaluation.tenant,
            evaluation.id,
            [(p.index, a) for p, a in runs],
            self._ctx.clock(),
            timeout + _TOKEN_SLACK_SECONDS,
        )
        paths = []
        for planned, _ in runs:
            path = self._root / evaluation.id / str(planned.index) / HUB_TOKEN
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(token)
            os.replace(temporary, path)
            paths.append(path)
        return paths[0]

    def _route_model(
        self, sidecar_url: str, evaluation: EvaluationRecord, group: list[PlannedBenchmark], timeout: float
    ) -> str | None:
        """Point the adapter at ``/model/<job>/<index>/<original path>`` on the sidecar, and tell the
        sidecar where that goes (``sidecar-job-info.json``, the layout EvalHub's local sidecar uses)."""
        lead = group[0]
        model = evaluation.request.get("model") or {}
        url = str(model.get("url") or "")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None  # nothing to proxy: the adapter gets the URL as given
        info = {
            "model": {
                "url": f"{parts.scheme}://{parts.netloc}",
                "name": str(model.get("name") or ""),
                "http_timeout": f"{int(timeout)}s",
            },
            "provider_id": lead.provider_id,
            "benchmark_id": lead.id,
            "benchmark_indices": [p.index for p in group],
        }
        write_json(self._root / evaluation.id / str(lead.index) / SIDECAR_JOB_INFO, info)
        query = f"?{parts.query}" if parts.query else ""
        return f"{sidecar_url}/model/{evaluation.id}/{lead.index}{parts.path}{query}"

    async def stop(
        self,
        evaluation_id: str,
        index: int | None = None,
        *,
        purge: bool = False,
        tenant: str | None = None,
        before: Mapping[int, int] | None = None,
    ) -> None:
        await self._runtime.stop(evaluation_id, index, before=before)
        if purge:
            # Hard delete: the job's files (job.json, logs) go with it, as in EvalHub.
            shutil.rmtree(self._root / evaluation_id, ignore_errors=True)

    def is_active(self, evaluation_id: str, index: int, attempt: int) -> bool:
        return RunKey(evaluation_id, index, attempt) in self._runtime.active()

    def lost(self, evaluation_id: str, row: RunRow) -> bool:
        if row.runtime_ref is not None and self._runtime.owns(row.runtime_ref):
            return False  # ours: its exit is tracked
        if self._sidecar is not None and self._sidecar.spooled(evaluation_id):
            return False  # its events, kept on disk across the restart, are still being delivered
        return RunKey(evaluation_id, row.run.index, row.run.attempt) not in self._runtime.active()

    async def kill_orphan(self, evaluation_id: str, row: RunRow) -> None:
        if row.runtime_ref is None:
            return
        if self._runtime.owns(row.runtime_ref):
            await self._runtime.stop(evaluation_id, row.run.index)
        else:
            await self._runtime.kill_orphan(
                row.runtime_ref, RunKey(evaluation_id, row.run.index, row.run.attempt)
            )

    def log_path(self, evaluation_id: str, index: int, provider_id: str, benchmark_id: str) -> Path:
        return self._runtime.log_path(evaluation_id, index, provider_id, benchmark_id)

    async def observe(self, evaluation: EvaluationRecord, now: datetime) -> Sequence[RunObservation]:
        return ()  # exits are reported by the local runtime itself

    def evaluation_of(self, resource: Mapping[str, Any]) -> str | None:
        return None

    def launch_of(self, resource: Mapping[str, Any]) -> SeenLaunch | None:
        return None  # local processes send no resource events

    async def remove(self, launch: SeenLaunch, tenant: str) -> None:
        return None

    def hold(self) -> None:
        """Shutdown began: nothing more starts from the queue."""
        self._runtime.hold()

    async def close(self, stop_by: float | None = None) -> None:
        """Stop every run; recording their ends gets until ``stop_by`` (``time.monotonic()``), if given."""
        self._stop_by = stop_by
        await self._runtime.close()
