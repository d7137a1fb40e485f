"""The exporter the lifecycle calls once a job is terminal (``evaluation.finished``) and from the sweep.

Per finished job it plans its exports (``mlflow`` when the job names an experiment and MLflow is configured;
``oci_card`` and one ``oci_benchmark_<index>`` per completed benchmark when it has ``exports.oci``), then
runs each that is due under a lease. Every attempt ends in the job's results: ``done`` with what was
created, or ``failed`` with the error and the time of the next try (exponential backoff), ``abandoned``
after ``ASSAY_EXPORT_MAX_ATTEMPTS``. Nothing here changes the job's state or its results' content.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from assay import __version__
from assay.artifacts import (
    ANNOTATION_BENCHMARK_ID,
    ANNOTATION_JOB_ID,
    ANNOTATION_PROVIDER_ID,
    ANNOTATION_SCORE,
    ArtifactFile,
    OciRegistry,
)
from assay.core.states import TERMINAL_JOB
from assay.errors import NotFound
from assay.exports._card import CARD_FILE, CARD_MEDIA_TYPE, card_bytes, evaluation_card
from assay.exports._mlflow_runs import number, run_layout
from assay.lifecycle import Lifecycle
from assay.lifecycle.progress import asks_for_exports
from assay.settings import Settings
from assay.store import EvaluationRecord
from assay.store.exports import ExportRepository, ExportRow, ExportStatus
from assay.tracking import MlflowTracker

log = logging.getLogger(__name__)

MLFLOW = "mlflow"
OCI_CARD = "oci_card"
OCI_BENCHMARK = "oci_benchmark_"
RESULTS_ARTIFACT_TYPE = "application/vnd.eval-hub.github.io"  # what eval-hub-sdk adapters push (§18.1)
LEASE_SECONDS = 600.0  # longer than any export takes; a crashed exporter's claim expires after it


@dataclass(slots=True)
class _Outcome:
    result: dict[str, Any] = field(default_factory=dict)
    benchmark_results: dict[int, dict[str, Any]] = field(default_factory=dict)
    experiment_id: str | None = None


def benchmark_tag(evaluation_id: str, provider_id: str, benchmark_id: str, index: int) -> str:
    """eval-hub-sdk's default tag of a benchmark's artifact (docs/compatibility.md)."""
    key = f"{evaluation_id}:{provider_id}:{benchmark_id}:{index}"
    return "evalhub-" + hashlib.sha256(key.encode()).hexdigest()


def card_tag(evaluation_id: str) -> str:
    return "evalhub-card-" + hashlib.sha256(evaluation_id.encode()).hexdigest()


def _public_push_error(exc: Exception) -> str:
    """A push failure as the tenant may see it: the registry's own HTTP answer when there was one, else one
    sentence for every way a connection can fail."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return f"The registry answered HTTP {status}; the hub's log has the details"
    return "The registry could not be reached or refused the push; the hub's log has the details"


def summarize(rows: Sequence[ExportRow]) -> dict[str, Any]:
    """What the job's ``results`` show about its exports: ``exports`` (status, attempts, error and what was
    created, per export), the MLflow experiment, and ``results.oci`` in eval-hub-sdk 1.0.6's shape."""
    exports: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for row in rows:
        entry: dict[str, Any] = {
            "status": row.status,
            "attempts": row.attempts,
            "updated_at": row.updated_at.isoformat(),
            **row.result,
        }
        if row.last_error:
            entry["error"] = row.last_error
        if row.status == "failed":
            entry["next_attempt_at"] = row.next_attempt_at.isoformat()
        exports[row.name] = entry
        if row.name == MLFLOW and "experiment_id" in row.result:
            fields["mlflow_experiment_id"] = row.result["experiment_id"]
            fields["mlflow_experiment_url"] = row.result["experiment_url"]
            fields["mlflow_experiment_api_url"] = row.result["experiment_api_url"]
        if row.name == OCI_CARD:
            text = {
                "done": "The evaluation card was pushed",
                "failed": f"Pushing the evaluation card failed; retrying: {row.last_error}",
                "abandoned": f"Pushing the evaluation card failed for good: {row.last_error}",
            }.get(row.status, "The evaluation card is being pushed")
            oci: dict[str, Any] = {
                "status": {
                    "state": row.status,
                    "message": {"message": text, "message_code": f"oci_export_{row.status}"},
                }
            }
            if row.status == "done":
                oci["evaluation_card"] = {
                    "oci_reference": row.result["reference"],
                    "oci_digest": row.result["digest"],
                }
            fields["oci"] = oci
    fields["exports"] = exports
    return fields


ADAPTER_FILES = "adapter"
"""Where a benchmark's own result files go in its MLflow run (``adapter/<name>``)."""
MAX_ADAPTER_FILE_BYTES = 256 * 1024 * 1024


def adapter_files(settings: Settings, record: EvaluationRecord, index: int) -> list[Path]:
    """The result files (per-sample logs, framework reports) a benchmark's adapter named by path in its
    ``artifacts`` that lie in the evaluation's own local run directory. Any other path (or a pod's path, in a
    cluster, where adapters upload through the sidecar) is never read: an adapter must not be able to make the
    hub upload arbitrary files."""
    root = (settings.local_jobs_dir / record.id).resolve()
    found: set[Path] = set()
    for value in (record.runs[index].run.result.get("artifacts") or {}).values():
        if not isinstance(value, str) or not value.startswith("/"):
            continue  # references, digests, cards
        path = Path(value).resolve()
        if path.is_relative_to(root) and path.is_file() and path.stat().st_size <= MAX_ADAPTER_FILE_BYTES:
            found.add(path)
    return sorted(found)


def _artifact_file(path: Path) -> ArtifactFile:
    kind = "application/x-ndjson" if path.suffix == ".jsonl" else mimetypes.guess_type(path.name)[0]
    return ArtifactFile(path.name, path.read_bytes(), kind or "application/octet-stream")


class Exports:
    """MLflow and OCI exports of finished evaluations (the lifecycle's ``Exporter``)."""

    def __init__(
        self, settings: Settings, *, tracker: MlflowTracker | None = None, registry: OciRegistry | None = None
    ) -> None:
        self._settings = settings
        self._tracker = tracker
        if tracker is None and settings.mlflow_tracking_uri:
            self._tracker = MlflowTracker(settings.mlflow_tracking_uri, settings.mlflow_ui_url)
        self._registry = registry or OciRegistry(
            auth_config_path=settings.oci_auth_config_path,
            insecure_hosts=("*",) if settings.oci_insecure else settings.oci_insecure_registries,
            ca_cert_path=settings.oci_ca_cert_path,
            timeout=settings.oci_timeout_seconds,
        )

    def planned(self, record: EvaluationRecord) -> list[str]:
        """The exports a finished job asks for and this hub can make."""
        if not asks_for_exports(record.request):  # what evaluation.finished says, so aggregate skips the rest
            return []
        names: list[str] = []
        oci = (record.request.get("exports") or {}).get("oci")
        if oci:
            names += [
                f"{OCI_BENCHMARK}{row.run.index}" for row in record.runs if row.run.status == "completed"
            ]
            names.append(OCI_CARD)
        if record.request.get("experiment") and self._tracker is not None:
            names.append(MLFLOW)
        return names

    async def export(self, ctx: Lifecycle, evaluation_id: str) -> None:
        await self._export(ctx, evaluation_id)

    async def retry_due(self, ctx: Lifecycle) -> dict[str, int]:
        repo = ExportRepository(ctx.database.pool)
        attempted = 0
        for evaluation_id in await repo.due(ctx.clock()):
            attempted += await self._export(ctx, evaluation_id)
        return {"exports_attempted": attempted}

    async def _export(self, ctx: Lifecycle, evaluation_id: str) -> int:
        try:
            record = await ctx.database.evaluations.get(evaluation_id)
        except NotFound:
            return 0  # hard-deleted
        if record.state not in TERMINAL_JOB:
            return 0  # retried meanwhile: the next finish exports
        names = self.planned(record)
        if not names:
            return 0
        repo = ExportRepository(ctx.database.pool)
        card = evaluation_card(record, assay_version=__version__)
        await repo.plan(evaluation_id, names, record.completed_at or record.updated_at, card, summarize)
        attempted = 0
        for name in names:
            row = await repo.claim(evaluation_id, name, ctx.clock(), LEASE_SECONDS)
            if row is None:
                continue  # done, not due yet, or another exporter holds it
            attempted += 1
            await self._attempt(ctx, repo, record, row)
        return attempted

    async def _attempt(
        self, ctx: Lifecycle, repo: ExportRepository, record: EvaluationRecord, row: ExportRow
    ) -> None:
        loop = asyncio.get_running_loop()

        def remember(result: Mapping[str, Any]) -> None:
            # From the worker thread: a run id is stored the moment it exists, before anything else can fail.
            asyncio.run_coroutine_threadsafe(repo.remember(row, result), loop).result()

        try:
            outcome = await asyncio.to_thread(self._run, record, row, remember)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
            # The job's results show a registry the tenant named: what failed, not how the connection did
            # (refused, timed out, TLS), which would let a tenant probe hosts and ports through the hub.
            shown = error if row.name == MLFLOW else _public_push_error(exc)
            settings = self._settings
            gave_up = row.attempts >= settings.export_max_attempts
            delay = min(
                settings.export_backoff_seconds * 2 ** (row.attempts - 1), settings.export_backoff_max_seconds
            )
            status: ExportStatus = "abandoned" if gave_up else "failed"
            log.warning(
                "export %s of %s failed (attempt %d%s): %s",
                row.name,
                record.id,
                row.attempts,
                ", giving up" if gave_up else f", next in {delay:g} s",
                error,
                extra={"evaluation_id": record.id, "export": row.name},
            )
            await repo.settle(
                row,
                status=status,
                error=shown,
                next_attempt_at=ctx.clock() + timedelta(seconds=delay),
                result={},
                summarize=summarize,
            )
            return
        await repo.settle(
            row,
            status="done",
            error=None,
            next_attempt_at=None,
            result=outcome.result,
            summarize=summarize,
            benchmark_results=outcome.benchmark_results,
            experiment_id=outcome.experiment_id,
        )
        log.info(
            "export %s of %s done",
            row.name,
            record.id,
            extra={"evaluation_id": record.id, "export": row.name},
        )

    # -- the exports themselves (worker thread) ---------------------------------------------------------

    def _run(
        self, record: EvaluationRecord, row: ExportRow, remember: Callable[[Mapping[str, Any]], None]
    ) -> _Outcome:
        if row.name == MLFLOW:
            return self._mlflow(record, row, remember)
        if row.name == OCI_CARD:
            return self._oci_card(record, row)
        if row.name.startswith(OCI_BENCHMARK):
            return self._oci_benchmark(record, row, int(row.name.removeprefix(OCI_BENCHMARK)))
        raise ValueError(f"unknown export {row.name!r}")

    def _coordinates(self, record: EvaluationRecord) -> dict[str, Any]:
        return dict(record.request["exports"]["oci"]["coordinates"])

    def _oci_card(self, record: EvaluationRecord, row: ExportRow) -> _Outcome:
        coordinates = self._coordinates(record)
        data = card_bytes(row.card)
        test = record.results.get("test") or {}
        annotations = {
            ANNOTATION_JOB_ID: record.id,
            "org.opencontainers.image.title": CARD_FILE,
            "dev.assay.state": record.state,
        }
        if record.completed_at is not None:
            annotations["org.opencontainers.image.created"] = row.card["metadata"]["completed_at"]
        if number(test.get("score")) is not None:
            annotations[ANNOTATION_SCORE] = repr(float(test["score"]))
        annotations.update(coordinates.get("annotations") or {})  # the user's annotations win
        pushed = self._registry.push(
            coordinates["oci_host"],
            coordinates["oci_repository"],
            coordinates.get("oci_tag") or card_tag(record.id),
            [ArtifactFile(CARD_FILE, data, CARD_MEDIA_TYPE)],
            artifact_type=CARD_MEDIA_TYPE,
            annotations=annotations,
        )
        return _Outcome(
            result={
                "reference": pushed.reference,
                "digest": pushed.digest,
                "tag": pushed.tag,
                "card_sha256": "sha256:" + hashlib.sha256(data).hexdigest(),
            }
        )

    def _oci_benchmark(self, record: EvaluationRecord, row: ExportRow, index: int) -> _Outcome:
        run = record.runs[index].run
        artifacts = run.result.get("artifacts") or {}
        if (
            artifacts.get("oci_reference")
            and artifacts.get("oci_digest")
            and not artifacts.get("oci_pushed_by_hub")
        ):
            # The adapter pushed its own artifact (through the sidecar): record it, push nothing.
            return _Outcome(
                result={
                    "reference": artifacts["oci_reference"],
                    "digest": artifacts["oci_digest"],
                    "pushed_by": "adapter",
                }
            )
        coordinates = self._coordinates(record)
        user_tag = coordinates.get("oci_tag")
        tag = (
            f"{user_tag}-{index}"
            if user_tag
            else benchmark_tag(record.id, run.provider_id, run.benchmark_id, index)
        )
        document = {
            "evaluation_job_id": record.id,
            "benchmark": row.card["context"]["benchmarks"][index],
            "result": row.card["results"]["benchmarks"][index],
            "model": row.card["context"]["model"],
        }
        annotations = {
            ANNOTATION_JOB_ID: record.id,
            ANNOTATION_BENCHMARK_ID: run.benchmark_id,
            ANNOTATION_PROVIDER_ID: run.provider_id,
        }
        score = number((run.result.get("test") or {}).get("primary_score"))
        if score is not None:
            annotations[ANNOTATION_SCORE] = repr(score)
        annotations.update(coordinates.get("annotations") or {})
        files = [ArtifactFile("results.json", card_bytes(document))]
        own = _unique_names(adapter_files(self._settings, record, index), taken={"results.json"})
        files += [_artifact_file(p) for p in own]
        pushed = self._registry.push(
            coordinates["oci_host"],
            coordinates["oci_repository"],
            tag,
            files,
            artifact_type=RESULTS_ARTIFACT_TYPE,
            annotations=annotations,
        )
        return _Outcome(
            result={"reference": pushed.reference, "digest": pushed.digest, "tag": tag, "pushed_by": "hub"},
            benchmark_results={
                index: {
                    "artifacts": {
                        "oci_reference": pushed.reference,
                        "oci_digest": pushed.digest,
                        "oci_pushed_by_hub": True,
                    }
                }
            },
        )

    def _mlflow(
        self, record: EvaluationRecord, row: ExportRow, remember: Callable[[Mapping[str, Any]], None]
    ) -> _Outcome:
        """The job's parent run and a child run per benchmark (laid out by :func:`run_layout`), reusing the
        run ids ``row`` remembers from an interrupted attempt, so a retry never logs a run twice."""
        tracker = self._tracker
        assert tracker is not None  # planned only with a tracker
        layout = run_layout(record)
        experiment_id = tracker.experiment(
            layout.experiment_name, layout.experiment_tags, layout.artifact_location
        )
        known = {
            "experiment_id": experiment_id,
            "experiment_name": layout.experiment_name,
            "experiment_url": tracker.experiment_url(experiment_id),
            "experiment_api_url": f"{tracker.public_tracking_uri}/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}",
        }
        remember(known)
        card = row.card
        completed_ms = int((record.completed_at or record.updated_at).timestamp() * 1000)
        parent = tracker.run(
            experiment_id,
            row.result.get("parent_run_id"),
            name=record.name,
            tags={**layout.identity, "assay.role": "evaluation"},
        )
        remember({"parent_run_id": parent})
        children: dict[str, str] = dict(row.result.get("child_runs") or {})
        benchmark_results: dict[int, dict[str, Any]] = {}
        for spec in layout.children:
            child = tracker.run(
                experiment_id,
                children.get(str(spec.index)),
                name=spec.name,
                tags={**layout.identity, "assay.role": "benchmark", "assay.benchmark_index": str(spec.index)},
                parent_run_id=parent,
            )
            children[str(spec.index)] = child
            remember({"child_runs": dict(children)})
            tags = dict(spec.tags)
            benchmark_results[spec.index] = {"mlflow_run_id": child}
            if spec.adapter_run_id and spec.adapter_run_id != child:
                tags["assay.adapter_run_id"] = spec.adapter_run_id
                benchmark_results[spec.index]["adapter_mlflow_run_id"] = spec.adapter_run_id
            tracker.log(child, params=spec.params, metrics=spec.metrics, tags=tags, timestamp_ms=completed_ms)
            for path in _unique_names(adapter_files(self._settings, record, spec.index)):
                tracker.log_file(child, path, ADAPTER_FILES)
            tracker.log_json(
                child,
                "benchmark-result.json",
                {
                    "benchmark": card["context"]["benchmarks"][spec.index],
                    "result": card["results"]["benchmarks"][spec.index],
                },
            )
            tracker.finish(child, spec.status)
        tracker.log(
            parent,
            params=layout.parent_params,
            metrics=layout.parent_metrics,
            tags=layout.parent_tags,
            timestamp_ms=completed_ms,
        )
        tracker.log_json(parent, CARD_FILE, card)
        tracker.finish(parent, layout.parent_status)
        return _Outcome(
            result={
                **known,
                "parent_run_id": parent,
                "parent_run_url": tracker.run_url(experiment_id, parent),
                "child_runs": children,
            },
            benchmark_results=benchmark_results,
            experiment_id=experiment_id,
        )


def _unique_names(paths: Sequence[Path], taken: frozenset[str] | set[str] = frozenset()) -> list[Path]:
    """``paths`` without a file whose name is already taken (an artifact's files are flat)."""
    seen = set(taken)
    unique = []
    for path in paths:
        if path.name not in seen:
            seen.add(path.name)
            unique.append(path)
    return unique


def build_exporter(settings: Settings) -> Exports:
    """The exporter for a process configured by ``settings`` (``assay up``, the aggregate and sweep functions)."""
    return Exports(settings)


__all__ = ["Exports", "benchmark_tag", "build_exporter", "card_tag", "summarize"]
