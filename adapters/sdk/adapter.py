"""The adapter base class and the process entry point that runs one adapter and reports for it.

``FrameworkAdapter`` mirrors eval-hub-sdk 1.0.6's (docs/compatibility.md): it loads the job spec and an adapter
implements ``run_benchmark_job``. ``run_adapter`` is what eval-hub-sdk leaves to each adapter's ``main``:
it sends ``running``/``initializing``, reports what the adapter returns, and makes sure every benchmark of
the process ends with a terminal event: ``failed`` (``adapter_error``) when the adapter raises,
``cancelled`` on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adapters.sdk.callbacks import DefaultCallbacks
from adapters.sdk.errors import AdapterSDKError, CallbackError
from adapters.sdk.models import (
    JobCallbacks,
    JobPhase,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
    MessageInfo,
    MessageOrigin,
)
from adapters.sdk.settings import AdapterSettings, EvalHubMode

__all__ = ["EXIT_CANCELLED", "FrameworkAdapter", "configure_logging", "run_adapter"]

logger = logging.getLogger("adapters.sdk")

EXIT_CANCELLED = 143
# While the process is being stopped, failures are reported briefly: the runtime may kill it soon.
_SHUTDOWN_RETRY_SECONDS = 10.0


class FrameworkAdapter(ABC):
    """Base class of an adapter: loads the job spec at construction; subclasses run the benchmark(s).

    The spec comes from ``job_spec_path``, else ``EVALHUB_JOB_SPEC_PATH``, else ``/meta/job.json`` when
    ``EVALHUB_MODE=k8s``, else ``meta/job.json`` (relative to the working directory).
    """

    def __init__(
        self, job_spec_path: str | Path | None = None, *, settings: AdapterSettings | None = None
    ) -> None:
        settings = settings if settings is not None else AdapterSettings.from_env()
        if job_spec_path is not None:
            settings = settings.model_copy(update={"job_spec_path": Path(job_spec_path)})
        self._settings = settings
        path = settings.resolved_job_spec_path
        logger.info("Loading job spec from %s", path)
        try:
            self._job_spec = JobSpec.from_file(path)
        except FileNotFoundError:
            how = (
                "job_spec_path"
                if job_spec_path is not None
                else "EVALHUB_JOB_SPEC_PATH"
                if settings.job_spec_path is not None
                else f"the {settings.mode.value}-mode default; set EVALHUB_JOB_SPEC_PATH to choose another"
            )
            raise FileNotFoundError(f"Job spec file not found: {path} (from {how})") from None
        self._results_root: Path | None = None

    @property
    def settings(self) -> AdapterSettings:
        return self._settings

    @property
    def job_spec(self) -> JobSpec:
        return self._job_spec

    @property
    def local_jobs_base_path(self) -> Path | None:
        """The directory above ``meta/job.json``, scoped to this benchmark run, where result files may be
        written; None in k8s mode or when the spec path does not end in ``meta/job.json``."""
        if self._settings.mode is EvalHubMode.K8S:
            return None
        path = self._settings.resolved_job_spec_path.resolve()
        if path.parts[-2:] != ("meta", "job.json"):
            return None
        return path.parent.parent

    def results_dir(self, member: JobSpec | None = None) -> Path:
        """Where the run's result files go (created): ``results/`` under :attr:`local_jobs_base_path`, or one
        temporary directory per adapter when there is none. With ``member`` and a group job, that member's own
        folder ``<benchmark_index>-<benchmark_id>`` below it, since the group's benchmarks share the run."""
        if self._results_root is None:
            base = self.local_jobs_base_path
            self._results_root = (
                base / "results" if base is not None else Path(tempfile.mkdtemp(prefix="assay-results-"))
            )
        target = self._results_root
        if member is not None and self._job_spec.group:
            target = target / f"{member.benchmark_index}-{member.benchmark_id}"
        target.mkdir(parents=True, exist_ok=True)
        return target

    def generate_additional_info(self, results: JobResults) -> dict[str, Any] | None:
        """Override to send ``additional_info`` with the results (called when it is not already set)."""
        return None

    @abstractmethod
    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> JobResults | list[JobResults]:
        """Run the benchmark (or, with a ``group``, every one of ``config.members()``) and return the
        results: one JobResults, or a list with one per member not already reported through
        ``callbacks.for_benchmark(member).report_results``."""


class _Stopped(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT; a BaseException so adapters' ``except Exception``
    cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, frame: types.FrameType | None) -> None:
    raise _Stopped(signum)


_Handler = Callable[[int, types.FrameType | None], Any] | int | signal.Handlers | None


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    # Signal handlers can only be set from the main thread; elsewhere the caller keeps its own.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, _Handler] = {
        sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _finish_unfinished(
    callbacks: DefaultCallbacks, members: list[JobSpec], status: JobStatus, message: MessageInfo
) -> bool:
    """Send ``status`` for every member without a terminal event; False if any could not be delivered."""
    delivered = True
    for member in members:
        if callbacks.has_terminal_event(member.benchmark_index):
            continue
        try:
            callbacks.for_benchmark(member).report_status(
                JobStatusUpdate(status=status, error_message=message)
            )
        except CallbackError as exc:
            logger.error("could not report %s for %s: %s", status.value, member.benchmark_id, exc)
            delivered = False
        except Exception:
            # Keep reporting the other members; the exit code already says the run failed.
            logger.exception("could not report %s for %s", status.value, member.benchmark_id)
            delivered = False
    return delivered


def _fail_unfinished(callbacks: DefaultCallbacks, members: list[JobSpec], message: MessageInfo) -> int:
    """Report ``failed`` for the unfinished members; the exit code (143 if a signal cut that short)."""
    try:
        _finish_unfinished(callbacks, members, JobStatus.FAILED, message)
    except _Stopped:
        return EXIT_CANCELLED
    return 1


def _report_outcome(outcome: object, members: list[JobSpec], callbacks: DefaultCallbacks) -> None:
    if outcome is None:
        returned: list[JobResults] = []
    elif isinstance(outcome, JobResults):
        returned = [outcome]
    elif isinstance(outcome, list) and all(isinstance(r, JobResults) for r in outcome):
        returned = outcome
    else:
        raise AdapterSDKError(
            f"run_benchmark_job must return JobResults or a list of them, got {type(outcome).__name__}"
        )
    by_index = {m.benchmark_index: m for m in members}
    for results in returned:
        member = by_index.get(results.benchmark_index)
        if member is None:
            raise AdapterSDKError(
                f"run_benchmark_job returned results for benchmark_index {results.benchmark_index}, "
                f"which is not one of this process's benchmarks {sorted(by_index)}"
            )
        if callbacks.has_terminal_event(member.benchmark_index):
            logger.info("results of %s were already reported by the adapter", member.benchmark_id)
            continue
        callbacks.for_benchmark(member).report_results(results)


def configure_logging(*quiet: str) -> None:
    """For an adapter's ``__main__``: INFO and above on stderr with a timestamp and the logger's name; the
    ``quiet`` loggers (e.g. an HTTP client that logs one line per model request) from WARNING only."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


def run_adapter(adapter: FrameworkAdapter, callbacks: DefaultCallbacks | None = None) -> int:
    """Run ``adapter`` on its job spec and report for it; returns the process exit code: 0 when every
    benchmark got its results, 1 on failure, 143 when stopped by SIGTERM/SIGINT.

    Use as ``raise SystemExit(run_adapter(MyAdapter()))``."""
    spec = adapter.job_spec
    members = spec.members()
    callbacks = callbacks if callbacks is not None else DefaultCallbacks.from_adapter(adapter)
    try:
        with _stop_on_signals():
            try:
                for member in members:
                    callbacks.for_benchmark(member).report_status(
                        JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.INITIALIZING)
                    )
                _report_outcome(adapter.run_benchmark_job(spec, callbacks), members, callbacks)
            except _Stopped as stop:
                logger.warning("stopped by %s; reporting the unfinished benchmarks as cancelled", stop)
                # A second signal now kills the process outright.
                if threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                _finish_unfinished(
                    callbacks.with_retry_budget(_SHUTDOWN_RETRY_SECONDS),
                    members,
                    JobStatus.CANCELLED,
                    MessageInfo(
                        message=f"the adapter was stopped by {stop}",
                        message_code="adapter_cancelled",
                        message_origin=MessageOrigin.SDK,
                    ),
                )
                return EXIT_CANCELLED
            except Exception as exc:
                logger.exception("the adapter failed")
                return _fail_unfinished(
                    callbacks,
                    members,
                    MessageInfo(message=str(exc) or type(exc).__name__, message_code="adapter_error"),
                )
            missing = [m.benchmark_id for m in members if not callbacks.has_terminal_event(m.benchmark_index)]
            if missing:
                logger.error("the adapter returned without results for %s", ", ".join(missing))
                return _fail_unfinished(
                    callbacks,
                    members,
                    MessageInfo(
                        message="the adapter finished without reporting results for this benchmark",
                        message_code="results_missing",
                        message_origin=MessageOrigin.SDK,
                    ),
                )
            return 0
    finally:
        callbacks.close()
