"""A benchmark's adapter log in a cluster: the pod's log through the API server, cut like local mode's.

``GET /api/v1/evaluations/jobs/{id}/logs`` reads a file in local mode; in a cluster the log is the adapter
container's, read with ``tailLines``, ``sinceSeconds``, ``timestamps`` and ``limitBytes`` (the kubelet keeps
it while the pod exists: ``ASSAY_K8S_TTL_SECONDS_AFTER_FINISHED``). The pod is found by Assay's labels: the
evaluation, the launch that runs the benchmark (a group's pod runs several), its latest attempt. Whoever
reads needs ``pods`` list and ``pods/log`` get in the tenant's namespace.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from typing import Any

import kubernetes.client

from assay.runtimes.kubernetes.objects import (
    ADAPTER,
    LABEL_ATTEMPT,
    LABEL_EVALUATION,
    label_value,
    launch_indices,
    namespace_for,
)
from assay.runtimes.kubernetes.runtime import client_configuration
from assay.settings import Settings


class PodLogs:
    """Reads adapter logs of an evaluation's pods."""

    def __init__(
        self, settings: Settings, configuration: kubernetes.client.Configuration | None = None
    ) -> None:
        self._settings = settings
        self._client = kubernetes.client.ApiClient(configuration or client_configuration(settings))
        self._core = kubernetes.client.CoreV1Api(self._client)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def pod_of(self, tenant: str, evaluation_id: str, index: int) -> str | None:
        """The name of the pod that runs (or ran) the latest attempt of benchmark ``index``, if any is left."""
        response: Any = await asyncio.to_thread(
            self._core.list_namespaced_pod,
            namespace_for(self._settings, tenant),
            label_selector=f"{LABEL_EVALUATION}={label_value(evaluation_id)}",
            _preload_content=False,
        )
        pods: list[dict[str, Any]] = json.loads(response.data)["items"]
        mine = [p for p in pods if index in launch_indices(p)]
        if not mine:
            return None

        def order(pod: dict[str, Any]) -> tuple[int, str]:
            labels = pod["metadata"].get("labels") or {}
            attempt = str(labels.get(LABEL_ATTEMPT, "0"))
            return (
                int(attempt) if attempt.isdigit() else 0,
                str(pod["metadata"].get("creationTimestamp", "")),
            )

        return str(max(mine, key=order)["metadata"]["name"])

    async def read(
        self,
        tenant: str,
        evaluation_id: str,
        index: int,
        *,
        tail_lines: int | None = None,
        since: datetime | None = None,
        timestamps: bool = True,
        max_bytes: int | None = None,
    ) -> str | None:
        """The adapter's log of benchmark ``index`` (None: no pod left), newest ``tail_lines``, from ``since``."""
        pod = await self.pod_of(tenant, evaluation_id, index)
        if pod is None:
            return None
        options: dict[str, Any] = {"container": ADAPTER, "timestamps": timestamps, "_preload_content": False}
        if tail_lines is not None:
            options["tail_lines"] = tail_lines
        if since is not None:
            moment = since if since.tzinfo else since.replace(tzinfo=UTC)
            options["since_seconds"] = max(1, math.ceil((datetime.now(UTC) - moment).total_seconds()))
        if max_bytes is not None:
            options["limit_bytes"] = max_bytes
        response: Any = await asyncio.to_thread(
            self._core.read_namespaced_pod_log, pod, namespace_for(self._settings, tenant), **options
        )
        return bytes(response.data).decode("utf-8", "replace")


__all__ = ["PodLogs"]
