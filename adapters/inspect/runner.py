"""Run one Inspect AI evaluation for an :class:`InspectPlan`: the job's endpoint as Inspect's OpenAI-compatible
``openai-api`` model, Inspect's hooks feeding the progress counter, the ``.eval`` log written into the run's result
folder, and SIGTERM/SIGINT turned into a clean Inspect cancellation.

Inspect is imported here only (it lives in the adapter's own environment, not the hub's).

Cancellation: ``eval_async`` runs on an event loop of our own whose SIGTERM/SIGINT handlers cancel it; Inspect then
stops its samples, writes the log with status ``cancelled`` and returns. Afterwards the signal is raised again under
the handlers that were in place before (the SDK's), so the SDK reports the benchmark ``cancelled`` and the process
exits with 143, as for every other adapter.

Offline token counting: Inspect estimates tokens with tiktoken's ``o200k_base``, which tiktoken downloads on first
use. tiktoken looks in ``TIKTOKEN_CACHE_DIR`` for a file named by the SHA-1 of the encoding's URL; the litellm wheel
ships those files, and :func:`ensure_tiktoken_cache` copies them into the cache folder (``TIKTOKEN_CACHE_DIR`` when
set, else ``<environment>/share/assay-tiktoken``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import sys
import tempfile
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.inspect.config import InspectPlan
from adapters.inspect.progress import SampleCounter

__all__ = ["ENCODING_FILES", "RunOutcome", "ensure_tiktoken_cache", "quiet_environment", "run_eval"]

logger = logging.getLogger("adapters.inspect")

# sha1 of https://openaipublic.blob.core.windows.net/encodings/<name>.tiktoken: o200k_base, cl100k_base.
ENCODING_FILES = ("fb374d419588a4632f3f557e76b4b70aebbca790", "9b5ad71b2ce5302211f9c61530b329a4922fc6a4")
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def quiet_environment() -> None:
    """Inspect's ``log`` display (plain log lines in the job's log, no terminal UI), no telemetry, no tokenizer
    thread pools. Hub access is the runtime's choice (``HF_HUB_OFFLINE`` in the local runtime)."""
    for name, value in {
        "INSPECT_DISPLAY": "log",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(name, value)


def _litellm_tokenizers() -> Path | None:
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"


def ensure_tiktoken_cache(source: Path | None = None) -> Path:
    """The tiktoken cache folder, holding the encodings Inspect needs; sets ``TIKTOKEN_CACHE_DIR`` to it."""
    source = source if source is not None else _litellm_tokenizers()
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    candidates = [Path(configured)] if configured else []
    candidates += [
        Path(sys.prefix) / "share" / "assay-tiktoken",
        Path(tempfile.gettempdir()) / "assay-tiktoken",
    ]
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name in ENCODING_FILES:
                target = folder / name
                if target.is_file() or source is None or not (source / name).is_file():
                    continue
                partial = folder / f".{name}.{os.getpid()}"
                shutil.copyfile(source / name, partial)
                partial.replace(target)  # atomic: a concurrent reader never sees half a file
        except OSError as exc:
            logger.warning("tiktoken cache folder %s is not usable: %s", folder, exc)
            continue
        if not (folder / ENCODING_FILES[0]).is_file():
            logger.warning("no o200k_base encoding file for tiktoken in %s (litellm not installed?)", folder)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
        return folder
    raise OSError("no writable folder for tiktoken's encoding files")


_counter: SampleCounter | None = None
_hooks_registered = False


def _register_hooks() -> None:
    """Inspect hooks live in a process-wide registry: registered once, they feed whichever counter is current."""
    global _hooks_registered
    if _hooks_registered:
        return
    from inspect_ai.hooks import Hooks, SampleEnd, TaskStart, hooks

    class AssayProgress(Hooks):  # type: ignore[misc, unused-ignore]
        def enabled(self) -> bool:
            return _counter is not None

        async def on_task_start(self, data: TaskStart) -> None:
            if _counter is None:
                return
            dataset = data.spec.dataset
            samples = len(dataset.sample_ids) if dataset.sample_ids is not None else (dataset.samples or 0)
            _counter.plan(samples * (data.spec.config.epochs or 1))

        async def on_sample_end(self, data: SampleEnd) -> None:
            if _counter is not None:
                _counter.finished(errored=data.sample.error is not None)

    hooks(name="assay_progress", description="Assay: samples done, for the hub's progress")(AssayProgress)
    _hooks_registered = True


@dataclass
class RunOutcome:
    """What the run left: Inspect's log (None when Inspect returned none), the log file, and the stop signal if
    the run was cancelled by one."""

    log: Any
    log_file: Path | None
    stopped_by: int | None


def _newest_log(log_dir: Path) -> Path | None:
    logs = sorted(log_dir.glob("*.eval"), key=lambda p: p.stat().st_mtime)
    return logs[-1] if logs else None


def _eval_kwargs(plan: InspectPlan, log_dir: Path) -> dict[str, Any]:
    from inspect_ai import Epochs

    kwargs: dict[str, Any] = {
        "task_args": plan.task_args,
        "log_dir": str(log_dir),
        "log_format": "eval",
        "limit": plan.limit,
        "sample_shuffle": plan.sample_shuffle,
        "fail_on_error": plan.fail_on_error,
        "message_limit": plan.message_limit,
        "token_limit": plan.token_limit,
        "time_limit": plan.time_limit,
        "max_samples": plan.max_samples,
        # Generation config: retries stay with the sidecar (see InspectParameters.max_retries).
        "max_retries": plan.max_retries,
        "timeout": plan.request_timeout,
        "max_connections": plan.max_connections,
    }
    if plan.epochs is not None:
        kwargs["epochs"] = Epochs(plan.epochs, plan.epochs_reducer) if plan.epochs_reducer else plan.epochs
    if plan.max_tokens is not None:
        kwargs["max_tokens"] = plan.max_tokens
    if plan.temperature is not None:
        kwargs["temperature"] = plan.temperature
    return kwargs


def run_eval(plan: InspectPlan, counter: SampleCounter, *, api_key: str, log_dir: Path) -> RunOutcome:
    """The ONE ``eval_async`` call of the benchmark; returns when Inspect does, also when cancelled by a signal."""
    global _counter
    from inspect_ai import eval_async
    from inspect_ai.model import get_model

    _register_hooks()
    log_dir.mkdir(parents=True, exist_ok=True)
    stopped: list[int] = []

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        assert me is not None

        def stop(signum: int) -> None:
            if not stopped:
                logger.warning("%s: cancelling the Inspect run", signal.Signals(signum).name)
                stopped.append(signum)
                me.cancel()

        for signum in _STOP_SIGNALS:
            loop.add_signal_handler(signum, stop, signum)
        # The model under evaluation, and the default grader of model-graded scorers: the job's endpoint (through
        # the sidecar). The OpenAI client's own retries are off too: the sidecar retries.
        model = get_model(
            plan.model,
            base_url=plan.base_url,
            api_key=api_key,
            memoize=False,
            emulate_tools=plan.emulate_tools,
            max_retries=0,
        )
        try:
            result: list[Any] = await eval_async(plan.task, model=model, **_eval_kwargs(plan, log_dir))
            return result
        except asyncio.CancelledError:
            if stopped:
                return []  # Inspect wrote its cancelled log; the signal is raised again below
            raise

    previous: dict[int, Callable[[int, types.FrameType | None], Any] | int | None] = {
        signum: signal.getsignal(signum) for signum in _STOP_SIGNALS
    }
    _counter = counter
    try:
        logs = asyncio.run(main())
    finally:
        _counter = None
        # Closing the loop left SIG_DFL behind; the SDK's handlers report the cancellation.
        for signum, handler in previous.items():
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(signum, handler)
    log = logs[0] if logs else None
    location = getattr(log, "location", None) if log is not None else None
    log_file = Path(location) if location else _newest_log(log_dir)
    return RunOutcome(log=log, log_file=log_file, stopped_by=stopped[0] if stopped else None)


def read_log(path: Path) -> Any:
    """Inspect's log at ``path`` (e.g. after a cancelled run, which returns no log object)."""
    from inspect_ai.log import read_eval_log

    return read_eval_log(str(path))
