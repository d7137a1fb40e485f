"""MLflow tracking for finished evaluations, through the ``mlflow`` client library (imported only here, and
only when a tracker is first used: the functions that never export pay nothing for it).

:class:`MlflowTracker` is synchronous like the client it wraps; the exporter calls it in a worker thread.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["ExportFailed", "MlflowTracker", "metric_name"]

_METRIC_CHARS = re.compile(r"[^A-Za-z0-9_\-. :/]")
_PARAM_LIMIT = 6000  # MLflow's longest parameter value
_TAG_LIMIT = 5000


class ExportFailed(RuntimeError):
    """An export did not reach its destination (server down, refused, timed out); the sweep tries again."""


def metric_name(name: str) -> str:
    """MLflow accepts letters, digits and ``_-. :/`` in metric and parameter keys; anything else becomes ``_``."""
    return _METRIC_CHARS.sub("_", name)[:250] or "_"


def _clip(value: object, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class MlflowTracker:
    """One tracking server: experiments got or created race-safely, runs found again by their tags."""

    def __init__(self, tracking_uri: str, ui_url: str | None = None) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        # URLs that end up in job results never carry credentials embedded in the tracking URI.
        self.ui_url = _without_userinfo(ui_url or tracking_uri).rstrip("/")
        self.public_tracking_uri = _without_userinfo(self.tracking_uri)
        # An export is retried by the sweep with its own backoff; the client's default of 7 retries with a
        # 120 s timeout would hold one attempt for many minutes, past its lease (a user's setting wins).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # noqa: TID251 (mlflow reads its own setting)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")  # noqa: TID251
        self._client: MlflowClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> MlflowClient:
        with self._lock:
            if self._client is None:
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(tracking_uri=self.tracking_uri)
            return self._client

    def experiment_url(self, experiment_id: str) -> str:
        """The experiment in the MLflow UI (a page a person opens, not the REST API)."""
        return f"{self.ui_url}/#/experiments/{experiment_id}"

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def experiment(self, name: str, tags: Mapping[str, str], artifact_location: str | None = None) -> str:
        """The id of the active experiment ``name``: found, created (a concurrent creator wins and is used),
        or restored when it was deleted (MLflow keeps a deleted experiment's name reserved)."""
        from mlflow.exceptions import MlflowException

        client = self.client
        for _ in range(3):
            found = client.get_experiment_by_name(name)
            if found is not None:
                if found.lifecycle_stage != "active":
                    client.restore_experiment(found.experiment_id)
                for key, value in tags.items():
                    if found.tags.get(key) != value:
                        client.set_experiment_tag(found.experiment_id, key, _clip(value, _TAG_LIMIT))
                return str(found.experiment_id)
            try:
                return str(
                    client.create_experiment(
                        name,
                        artifact_location=artifact_location,
                        tags={k: _clip(v, _TAG_LIMIT) for k, v in tags.items()},
                    )
                )
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                # Created meanwhile by another exporter (or deleted by name): read it again.
        raise ExportFailed(f"MLflow experiment {name!r} could not be got or created")

    def find_run(self, experiment_id: str, tags: Mapping[str, str]) -> str | None:
        """A run of the experiment carrying all of ``tags`` (how a redelivered export finds its runs)."""
        condition = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = self.client.search_runs([experiment_id], filter_string=condition, max_results=1)
        return str(runs[0].info.run_id) if runs else None

    def run(
        self,
        experiment_id: str,
        run_id: str | None,
        *,
        name: str,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
    ) -> str:
        """``run_id`` when it still exists, else the run with these identifying ``tags``, else a new one."""
        client = self.client
        if run_id is not None:
            from mlflow.exceptions import MlflowException

            try:
                if client.get_run(run_id).info.lifecycle_stage == "active":
                    return run_id  # a run deleted in the UI takes no more writes: find or make another
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        found = self.find_run(experiment_id, tags)
        if found is not None:
            return found
        all_tags = dict(tags)
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        return str(client.create_run(experiment_id, tags=all_tags, run_name=name).info.run_id)

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        timestamp_ms: int,
    ) -> None:
        """Params, metrics (step 0, at the job's completion time) and tags in batches MLflow accepts."""
        from mlflow.entities import Metric, Param, RunTag

        client = self.client
        param_list = [Param(metric_name(k), _clip(v, _PARAM_LIMIT)) for k, v in params.items()]
        metric_list = [Metric(metric_name(k), float(v), timestamp_ms, 0) for k, v in metrics.items()]
        tag_list = [RunTag(k, _clip(v, _TAG_LIMIT)) for k, v in tags.items()]
        for start in range(0, max(len(param_list), len(metric_list), len(tag_list), 1), 100):
            client.log_batch(
                run_id,
                metrics=metric_list[start : start + 100],
                params=param_list[start : start + 100],
                tags=tag_list[start : start + 100],
            )

    def log_file(self, run_id: str, path: Path, artifact_path: str) -> None:
        """Upload the local file ``path`` into ``artifact_path/`` of the run (its name kept)."""
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_json(self, run_id: str, artifact_file: str, document: Mapping[str, Any]) -> None:
        self.client.log_dict(run_id, dict(document), artifact_file)

    def finish(self, run_id: str, status: str) -> None:
        """``FINISHED`` or ``FAILED`` (MLflow's terminal run statuses)."""
        self.client.set_terminated(run_id, status=status)

    def artifact_json(self, run_id: str, artifact_file: str) -> Any:
        """Read back a JSON artifact (verification; the tests use it)."""
        import json

        from mlflow.artifacts import download_artifacts

        return json.loads(
            _read(
                download_artifacts(run_id=run_id, artifact_path=artifact_file, tracking_uri=self.tracking_uri)
            )
        )


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()
