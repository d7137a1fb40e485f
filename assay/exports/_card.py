"""The evaluation card: one JSON document per finished evaluation, built from the job alone (no I/O), the
same bytes uploaded to MLflow and pushed as an OCI artifact. Its layout extends EvalHub's (docs/compatibility.md):
``card_version``, ``metadata``, ``context`` (model, collection, frozen benchmarks), ``results``."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from assay.store import EvaluationRecord

CARD_VERSION = "1.0"
CARD_SCHEMA = "dev.assay.evaluation-card.v1"
CARD_MEDIA_TYPE = "application/vnd.eval-hub.evaluation-card.v1+json"
CARD_FILE = "evaluation-card.json"

# Outputs of the exports themselves, or paths only meaningful on the machine that ran the adapter.
_NOT_CARD = frozenset({"mlflow_run_id", "adapter_mlflow_run_id", "logs_path"})


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return max(0.0, (end - start).total_seconds()) if start is not None and end is not None else None


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def evaluation_card(record: EvaluationRecord, *, assay_version: str) -> dict[str, Any]:
    """The card of ``record`` (a terminal job). Deterministic: the same job gives the same card."""
    plan = record.plan
    request = record.request
    model = request.get("model", {})
    result_entries, usage = _benchmark_results(record)
    fingerprints = sorted(p.fingerprint for p in plan.benchmarks)
    return {
        "card_version": CARD_VERSION,
        "schema_version": CARD_SCHEMA,
        "metadata": _without_none(
            {
                "evaluation_job_id": record.id,
                "name": record.name,
                "description": request.get("description"),
                "tenant": record.tenant,
                "owner": record.owner,
                "tags": request.get("tags") or None,
                "created_at": _ts(record.created_at),
                "started_at": _ts(record.started_at),
                "completed_at": _ts(record.completed_at),
                "duration_seconds": _seconds(record.started_at or record.created_at, record.completed_at),
                "generator": {"name": "assay", "version": assay_version},
                "fingerprint": "sha256:" + hashlib.sha256("\n".join(fingerprints).encode()).hexdigest(),
            }
        ),
        "context": _without_none(
            {
                "model": _without_none(
                    {
                        "url": model.get("url") or None,
                        "name": model.get("name"),
                        "model_card_url": model.get("card_url"),
                    }
                ),
                "collection": _without_none(
                    {"id": plan.collection_id, "updated_at": plan.collection_updated_at}
                )
                if plan.collection_id
                else None,
                "benchmarks": [p.document() for p in plan.benchmarks],
                "pass_criteria": {
                    "threshold": plan.composite_threshold,
                    "source": plan.composite_threshold_source,
                },
                "experiment": request.get("experiment"),
            }
        ),
        "results": _without_none(
            {
                "status": {"state": record.state, "message": record.message},
                "benchmarks": result_entries,
                "collection": {"test": record.results["test"]} if "test" in record.results else None,
                "usage": usage or None,
            }
        ),
    }


def _benchmark_results(record: EvaluationRecord) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Each benchmark's outcome as the card records it, and the usage (tokens, requests) summed over all."""
    entries = []
    usage: dict[str, float] = {}
    for row in record.runs:
        run = row.run
        result = {k: v for k, v in run.result.items() if k not in _NOT_CARD}
        for key, value in (result.get("usage") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                usage[key] = usage.get(key, 0) + value
        entries.append(
            _without_none(
                {
                    "id": run.benchmark_id,
                    "provider_id": run.provider_id,
                    "benchmark_index": run.index,
                    "status": run.status,
                    "attempt": run.attempt,
                    "error_message": run.error_message,
                    "started_at": _ts(run.started_at),
                    "completed_at": _ts(run.completed_at),
                    "duration_seconds": _seconds(run.started_at, run.completed_at),
                    "fingerprint": record.plan.benchmarks[run.index].fingerprint,
                    **result,
                }
            )
        )
    return entries, usage


def card_bytes(card: dict[str, Any]) -> bytes:
    """The card as it is stored and pushed: canonical JSON (sorted keys, UTF-8), so its digest is stable."""
    return json.dumps(card, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


__all__ = ["CARD_FILE", "CARD_MEDIA_TYPE", "CARD_SCHEMA", "CARD_VERSION", "card_bytes", "evaluation_card"]
