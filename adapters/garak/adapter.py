"""The garak adapter: scans the job's model endpoint with garak probes and reports attack success rates.

garak runs as a child process (``python -m garak --config ... --spec ...``) with every file it writes kept
in the run's results directory: its reports go to ``results/`` and its data, config and cache homes
(``XDG_*``, ``HOME``) to ``results/garak-home``, so nothing lands in the user's home. While it runs, the
adapter follows garak's JSONL report to send progress: probes finished out of the probe queue garak prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.garak.config import GarakRun, plan_run
from adapters.garak.report import metrics_from_entries
from adapters.sdk import (
    FrameworkAdapter,
    JobCallbacks,
    JobPhase,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
    MessageInfo,
    callbacks_for_member,
    model_api_key,
    results_from_metrics,
)
from adapters.sdk.progress import steps_done

__all__ = ["GarakAdapter", "GarakFailed"]

_POLL_SECONDS = 0.5
_STOP_GRACE_SECONDS = 10.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_QUEUE = re.compile(r"queue of probes:\s*(.+)$", re.MULTILINE)
_LOAD_FAILED = re.compile(r"failed to load probe (\S+)")
# Placeholder key: OpenAI's client insists on one; a local server ignores it.
_NO_API_KEY = "assay-no-key"


class GarakFailed(RuntimeError):
    """garak exited non-zero or produced no report; the message carries the tail of its output."""


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("data", "config", "cache"):
        (home / name).mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "HOME": str(home),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TQDM_DISABLE": "1",
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _read_entries(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        # The last line may be half-written while garak runs.
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


@contextmanager
def _garak_process(
    command: list[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start garak in its own process group; stop it (and whatever it started) however the block ends."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, 15)
                try:
                    process.wait(_STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, 9)
                    process.wait()


class _Progress:
    """Follows garak's output and report, and sends ``running_evaluation`` events when something moved."""

    def __init__(self, callbacks: JobCallbacks, run: GarakRun, log_path: Path) -> None:
        self._callbacks = callbacks
        self._run = run
        self._log_path = log_path
        self.queue: list[str] = []
        self.load_failures: list[str] = []
        self._last: tuple[int, int] | None = None

    def poll(self) -> None:
        if not self.queue and self._log_path.is_file():
            text = _ANSI.sub("", self._log_path.read_text(encoding="utf-8", errors="replace"))
            if found := _QUEUE.search(text):
                self.queue = [p.strip() for p in found.group(1).split(",") if p.strip()]
        entries = _read_entries(self._run.report_jsonl)
        done = sum(1 for e in entries if e.get("entry_type") == "probe_summary")
        outputs = sum(1 for e in entries if e.get("entry_type") == "attempt" and e.get("status") == 1)
        if not self.queue or (done, outputs) == self._last:
            return
        self._last = (done, outputs)
        total = len(self.queue)
        current = self.queue[done] if done < total else "scoring"
        self._callbacks.report_status(steps_done(done, total, f"{current} ({outputs} prompts answered)"))

    def finish(self) -> None:
        self.poll()
        if self._log_path.is_file():
            text = _ANSI.sub("", self._log_path.read_text(encoding="utf-8", errors="replace"))
            self.load_failures = sorted(set(_LOAD_FAILED.findall(text)))


def _tail(path: Path, chars: int = 3000) -> str:
    if not path.is_file():
        return "(no output)"
    return _ANSI.sub("", path.read_text(encoding="utf-8", errors="replace"))[-chars:]


class GarakAdapter(FrameworkAdapter):
    """Runs a garak scan for each benchmark of the job spec (one, or each member of a group)."""

    def run_benchmark_job(self, config: JobSpec, callbacks: JobCallbacks) -> list[JobResults]:
        return [
            self._run_member(member, callbacks_for_member(callbacks, member, config))
            for member in config.members()
        ]

    def _api_key(self, member: JobSpec) -> str:
        """The model's API key (docs/compatibility.md), else ``OPENAICOMPATIBLE_API_KEY``, else a placeholder."""
        return (
            model_api_key(member, self.settings.mode)
            or os.environ.get("OPENAICOMPATIBLE_API_KEY")
            or _NO_API_KEY
        )

    def _run_member(self, member: JobSpec, callbacks: JobCallbacks) -> JobResults:
        started = time.monotonic()
        results_dir = self.results_dir(member)
        callbacks.report_status(JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.LOADING_DATA))
        run = plan_run(
            benchmark_id=member.benchmark_id,
            parameters=member.parameters,
            num_examples=member.num_examples,
            model_url=member.model.url,
            model_name=member.model.name,
            api_key=self._api_key(member),
            report_dir=results_dir,
        )
        config_path = results_dir / "garak-config.json"
        # The key stays out of the file kept as an artifact: garak reads it from its environment instead.
        api_key = run.config["plugins"]["generators"]["openai"]["OpenAICompatible"].pop("api_key")
        config_path.write_text(json.dumps(run.config, indent=2))
        env = _environment(results_dir / "garak-home")
        env["OPENAICOMPATIBLE_API_KEY"] = api_key
        log_path = results_dir / "garak-output.log"
        command = [sys.executable, "-m", "garak", "--config", str(config_path), "--spec", run.spec]
        callbacks.report_status(
            JobStatusUpdate(
                status=JobStatus.RUNNING,
                phase=JobPhase.RUNNING_EVALUATION,
                progress=0.0,
                current_step=f"garak {run.spec}, {run.generations} generation(s) per prompt",
                completed_steps=0,
            )
        )
        progress = _Progress(callbacks, run, log_path)
        with _garak_process(command, env, log_path) as process:
            while process.poll() is None:
                progress.poll()
                time.sleep(_POLL_SECONDS)
        progress.finish()
        if process.returncode != 0:
            raise GarakFailed(f"garak exited with code {process.returncode}: {_tail(log_path)}")
        callbacks.report_status(JobStatusUpdate(status=JobStatus.RUNNING, phase=JobPhase.POST_PROCESSING))
        entries = _read_entries(run.report_jsonl)
        if not entries:
            raise GarakFailed(f"garak wrote no report at {run.report_jsonl}: {_tail(log_path)}")
        metrics, summary = metrics_from_entries(entries)
        skipped = sorted({*progress.load_failures, *(set(progress.queue) - set(summary["probes"]))})
        if skipped:
            # garak carries on when a probe or its detector cannot load (e.g. a classifier it cannot
            # download offline): the scan is partial, and the hub should see that.
            callbacks.report_status(
                JobStatusUpdate(
                    status=JobStatus.RUNNING,
                    phase=JobPhase.POST_PROCESSING,
                    warning_message=MessageInfo(
                        message=f"garak ran without results for probes: {', '.join(skipped)} "
                        f"(see {log_path.name})",
                        message_code="probes_skipped",
                    ),
                )
            )
        artifacts = {
            name: str(path)
            for name, path in (
                ("garak_report_jsonl", run.report_jsonl),
                ("garak_report_html", run.report_html),
                ("garak_hitlog_jsonl", run.hitlog_jsonl),
                ("garak_config", config_path),
                ("garak_output_log", log_path),
                ("garak_log", results_dir / "garak-home" / "data" / "garak" / "garak.log"),
            )
            if path.is_file()
        }
        return JobResults(
            id=member.id,
            benchmark_id=member.benchmark_id,
            benchmark_index=member.benchmark_index,
            model_name=member.model.name,
            results=results_from_metrics(metrics),
            num_examples_evaluated=int(next(m.value for m in metrics if m.name == "attempts")),
            duration_seconds=time.monotonic() - started,
            completed_at=datetime.now(UTC),
            evaluation_metadata={
                "framework": "garak",
                "spec": run.spec,
                "generations": run.generations,
                "probes_queued": progress.queue,
                "probes_skipped": skipped,
                **summary,
                "artifacts": artifacts,
            },
        )
