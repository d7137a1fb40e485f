"""A benchmark's adapter log in a cluster: the pod's log through the API server, cut like local mode's.

``GET /api/v1/evaluations/jobs/{id}/logs`` reads a file in local mode; in a cluster (``ASSAY_RUNTIME=
kubernetes``) the submit function serves it from the adapter container's log, read with ``tailLines``,
``sinceSeconds`` and ``timestamps`` (the kubelet keeps it while the pod exists:
``ASSAY_K8S_TTL_SECONDS_AFTER_FINISHED``). The byte cap keeps the *tail*, as local mode does, so the log is
streamed and only its last ``max_bytes`` are held (the API's ``limitBytes`` would keep the head). The pod is
found by Assay's labels: the evaluation, the launch that runs the benchmark (a group's pod runs several), its
latest attempt.

Whoever reads needs ``pods`` list and ``pods/log`` get in the tenant's namespace (the ClusterRole
``assay-submit``, bound there by tenant onboarding). A pod that is gone, or whose adapter has not started, is
an empty log with the reason (:attr:`PodLog.missing`), never an error; a refusal (403) is
:class:`PodLogsForbidden`, naming the right; any other API error is :class:`PodLogsUnavailable` with the API
server's own sentence, never the client's text (HTTP headers, raw bodies).

Imported by the logs routes only when the runtime is Kubernetes (lazily: the submit function's cold start
loads no ``kubernetes`` client). The calls go through :mod:`assay.kubeapi`, not the generated ``CoreV1Api``, whose
import was 0.7 s and 21 MiB of a submit function's first logs request.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kubernetes.client
import urllib3
from kubernetes.client.exceptions import ApiException

from assay.kubeapi import CoreV1, unanswered
from assay.runtimes.kubernetes.objects import (
    ADAPTER,
    LABEL_ATTEMPT,
    LABEL_EVALUATION,
    label_value,
    launch_indices,
    namespace_for,
    whole,
)
from assay.runtimes.kubernetes.runtime import ApiUser, api_said
from assay.settings import Settings

_CHUNK = 64 * 1024
NO_POD = (
    "no pod runs this benchmark: it has not been started yet, or its pod was removed "
    "(finished pods are kept ASSAY_K8S_TTL_SECONDS_AFTER_FINISHED)"
)


class PodLogsForbidden(Exception):
    """The API server refused (403) a call the log reader makes: the message names the missing right."""


class PodLogsUnavailable(Exception):
    """The API server could not answer (5xx, unreachable): the message is its own sentence."""


@dataclass(frozen=True, slots=True)
class PodLog:
    """One benchmark's adapter log: ``pod`` read (None: none found), the text, whether the byte cap cut it,
    and why there is no log (``missing``: no pod, or the adapter has not started)."""

    pod: str | None
    text: str = ""
    truncated: bool = False
    missing: str | None = None


def _forbidden(exc: ApiException, right: str, namespace: str) -> PodLogsForbidden:
    return PodLogsForbidden(
        f"The hub may not read pod logs in namespace {namespace!r}: {api_said(exc)[0]}. "
        f"The submit function's ServiceAccount needs {right} there (the ClusterRole assay-submit, bound in the "
        "namespace by the RoleBinding assay-submit that tenant onboarding creates)"
    )


def tail_bytes(chunks: Iterable[bytes], max_bytes: int | None) -> tuple[bytes, bool]:
    """The last ``max_bytes`` of the stream ``chunks``, whole lines only (a single line longer than the cap
    is cut from its start, as local mode does), and whether anything was cut. Holds at most about
    ``max_bytes`` plus one chunk."""
    if max_bytes is None:
        return b"".join(chunks), False
    kept = bytearray()
    total = 0
    for chunk in chunks:
        total += len(chunk)
        kept += chunk
        if len(kept) > max_bytes + 1:
            del kept[: len(kept) - max_bytes - 1]  # one byte more: whether the cut fell on a line boundary
    if total <= max_bytes:
        return bytes(kept), False
    before, cut = kept[:1], bytes(kept[1:])
    if before != b"\n":
        newline = cut.find(b"\n")
        if 0 <= newline < len(cut) - 1:  # drop the partial first line, unless it is the only one
            cut = cut[newline + 1 :]
    return cut, True


class PodLogs(ApiUser):
    """Reads adapter logs of an evaluation's pods."""

    def __init__(
        self, settings: Settings, configuration: kubernetes.client.Configuration | None = None
    ) -> None:
        super().__init__(settings, configuration)
        self._core = CoreV1(self._client, settings.k8s_request_timeout_seconds)

    async def pods_of(self, tenant: str, evaluation_id: str) -> list[dict[str, Any]]:
        """The evaluation's pods in the tenant's namespace."""
        namespace = namespace_for(self._settings, tenant)
        try:
            response: Any = await self._call(
                self._core.list_namespaced_pod,
                namespace,
                label_selector=f"{LABEL_EVALUATION}={label_value(evaluation_id)}",
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 403:
                raise _forbidden(exc, "'list' on 'pods'", namespace) from None
            if exc.status == 404:  # the namespace is gone: so are the pods
                return []
            raise PodLogsUnavailable(f"The hub cannot read pod logs: {api_said(exc)[0]}") from None
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    @staticmethod
    def latest(pods: Sequence[dict[str, Any]], index: int) -> str | None:
        """The name of the pod that runs (or ran) the latest attempt of benchmark ``index``, if any is left."""
        mine = [p for p in pods if index in launch_indices(p)]
        if not mine:
            return None

        def order(pod: dict[str, Any]) -> tuple[int, str]:
            labels = pod["metadata"].get("labels") or {}
            return (
                whole(labels.get(LABEL_ATTEMPT, "0")) or 0,
                str(pod["metadata"].get("creationTimestamp", "")),
            )

        return str(max(mine, key=order)["metadata"]["name"])

    async def pod_of(self, tenant: str, evaluation_id: str, index: int) -> str | None:
        return self.latest(await self.pods_of(tenant, evaluation_id), index)

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
    ) -> PodLog:
        """The adapter's log of benchmark ``index``: newest ``tail_lines``, from ``since``, its last
        ``max_bytes``."""
        (found,) = await self.read_many(
            tenant,
            evaluation_id,
            [index],
            tail_lines=tail_lines,
            since=since,
            timestamps=timestamps,
            max_bytes=max_bytes,
        )
        return found

    async def read_many(
        self,
        tenant: str,
        evaluation_id: str,
        indices: Sequence[int],
        *,
        tail_lines: int | None = None,
        since: datetime | None = None,
        timestamps: bool = True,
        max_bytes: int | None = None,
    ) -> list[PodLog]:
        """:meth:`read` for each of ``indices`` (the pods listed once, the logs read in parallel)."""
        pods = await self.pods_of(tenant, evaluation_id)
        options: dict[str, Any] = {"container": ADAPTER, "timestamps": timestamps}
        if tail_lines is not None:
            options["tail_lines"] = tail_lines
        if since is not None:
            moment = since if since.tzinfo else since.replace(tzinfo=UTC)
            options["since_seconds"] = max(1, math.ceil((datetime.now(UTC) - moment).total_seconds()))
        return list(
            await asyncio.gather(
                *(self._read_pod(tenant, self.latest(pods, index), options, max_bytes) for index in indices)
            )
        )

    async def _read_pod(
        self, tenant: str, pod: str | None, options: dict[str, Any], max_bytes: int | None
    ) -> PodLog:
        if pod is None:
            return PodLog(None, missing=NO_POD)
        namespace = namespace_for(self._settings, tenant)

        def stream() -> tuple[bytes, bool]:
            response: Any = self._core.read_namespaced_pod_log(pod, namespace, **options)
            try:
                return tail_bytes(response.stream(_CHUNK, decode_content=True), max_bytes)
            except urllib3.exceptions.HTTPError as exc:  # the answer stopped coming: as one that never came
                raise unanswered(exc, self._settings.k8s_request_timeout_seconds) from exc
            finally:
                response.release_conn()

        try:
            data, truncated = await self._call(stream)
        except ApiException as exc:
            if exc.status == 403:
                raise _forbidden(exc, "'get' on 'pods/log'", namespace) from None
            if exc.status == 404:  # deleted between the list and the read
                return PodLog(pod, missing=NO_POD)
            if exc.status == 400:  # "container "adapter" in pod "x" is waiting to start: ContainerCreating"
                return PodLog(pod, missing=f"the adapter container has not started yet ({api_said(exc)[0]})")
            raise PodLogsUnavailable(f"The hub cannot read pod logs: {api_said(exc)[0]}") from None
        text = data.decode("utf-8", "replace")
        if text and not text.endswith("\n"):
            text += "\n"
        return PodLog(pod, text, truncated)


__all__ = ["NO_POD", "PodLog", "PodLogs", "PodLogsForbidden", "PodLogsUnavailable", "tail_bytes"]
