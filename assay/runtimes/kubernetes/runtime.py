"""The Kubernetes runtime: launches benchmark groups as Kueue-queued Jobs and watches what becomes of them.

The official ``kubernetes`` client is synchronous; every call runs in a worker thread (``asyncio.to_thread``)
under a semaphore of ``k8s_max_parallel_requests``, so dispatch creates a job's launches in parallel, bounded.
Objects are read and written as the API server's JSON (``_preload_content=False``), the same dicts the
builders produce and the schemas describe. Kueue objects use API version ``v1beta2``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import kubernetes.client
from kubernetes.client.exceptions import ApiException

from assay.core.credentials import LaunchSigner
from assay.core.plan import PlannedBenchmark
from assay.kubeapi import DELETE_IN_BACKGROUND, BatchV1, CoreV1, CustomObjects, client_configuration
from assay.runtimes.kubernetes.objects import (
    HARDWARE_PROFILE_GROUP,
    HARDWARE_PROFILE_NOT_FOUND,
    HARDWARE_PROFILE_VERSION,
    LABEL_ATTEMPT,
    LABEL_CREDENTIALS,
    LABEL_EVALUATION,
    LABEL_INDEX,
    QUEUE_LABEL,
    HardwareProfile,
    HardwareProfileRefused,
    LaunchObjects,
    TestDataUnsupported,
    build_launch,
    evaluation_of_name,
    job_name,
    label_value,
    launch_indices,
    namespace_for,
    owned_by,
    read_hardware_profile,
    whole,
)
from assay.runtimes.kubernetes.watch import (
    CREDENTIALS_SECRET_REFUSED,
    FAILED_MOUNT,
    LOCAL_QUEUE_NOT_FOUND,
    TENANT_NOT_SET_UP,
    TEST_DATA_UNSUPPORTED,
    WatchLimits,
    judge,
    waiting_for_volumes,
)
from assay.runtimes.observation import LaunchRefused, RunObservation, SeenLaunch
from assay.settings import Settings
from assay.store import EvaluationRecord, RunRow
from assay.telemetry import tracing

log = logging.getLogger(__name__)

KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta2"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
REF_PREFIX = "k8s:"
_QUEUE_CACHE_SECONDS = 60.0
_DEADLINE_MARGIN = timedelta(minutes=5)
_CREDENTIAL_SLACK_SECONDS = 3600.0
_T = TypeVar("_T")
_FINISHED = frozenset({"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"})
"""Job conditions after which its pods are ended or ending (the last two since Kubernetes 1.31)."""


_RETRY_DELAYS = (0.5, 1.0, 2.0)
"""Seconds before each further try of a call the API server answered as passing trouble (below)."""
_FAIL_FAST_SECONDS = 30.0
"""After a call that still failed when its tries ran out, how long the next calls are tried once only."""
_PASSING = frozenset({429, 500, 502, 503, 504})


def passing(exc: ApiException) -> bool:
    """An answer worth trying again at once: too many requests, a server error or an unavailable upstream (etcd
    electing a leader, a webhook restarting), or a refused or cut connection (an API server restarting). Not a
    call that waited its whole timeout, nor any refusal of the request itself."""
    return exc.status in _PASSING or (exc.status == 0 and exc.reason == "Unreachable")


class ApiUser:
    """One ``ApiClient`` from ``settings`` (or ``configuration``), its calls run in worker threads, at most
    ``k8s_max_parallel_requests`` at once: the runtime, the tenants' onboarding and the pod-log reader.

    A call answered with :func:`passing` trouble is tried again after 0.5, 1 and 2 s before its error is raised:
    every call Assay makes may be repeated (a create answered 409 finds what an earlier try made, a delete
    answered 404 is done, the rest read). Once a call failed so after all its tries, the API server counts as
    down: for the next 30 s calls are tried once, so a sweep over many evaluations during an outage fails each at
    once, as before, instead of waiting 3.5 s for every call."""

    retry_delays: tuple[float, ...] = _RETRY_DELAYS
    fail_fast_seconds: float = _FAIL_FAST_SECONDS

    def __init__(
        self, settings: Settings, configuration: kubernetes.client.Configuration | None = None
    ) -> None:
        self._settings = settings
        self._client = kubernetes.client.ApiClient(configuration or client_configuration(settings))
        self._limit = asyncio.Semaphore(settings.k8s_max_parallel_requests)
        self._down_until = 0.0  # time.monotonic() until which calls are tried once (see the class)

    async def _call(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        delays = self.retry_delays if time.monotonic() >= self._down_until else ()
        for delay in (*delays, None):
            try:
                async with self._limit:
                    answer = await asyncio.to_thread(call, *args, **kwargs)
            except ApiException as exc:
                if not passing(exc):
                    raise
                if delay is None:
                    self._down_until = time.monotonic() + self.fail_fast_seconds
                    raise
                log.info(
                    "the Kubernetes API answered %s %s to %s; trying again in %g s",
                    exc.status,
                    exc.reason,
                    getattr(call, "__name__", "a call"),
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                self._down_until = 0.0  # it answers: calls are tried again as usual
                return answer
        raise AssertionError("unreachable: the last try raises or returns")

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


def _older(job: Mapping[str, Any], before: Mapping[int, int]) -> bool:
    """Whether ``job`` runs an attempt earlier than ``before`` names for its benchmarks (a stale cancel's)."""
    attempt = whole(((job.get("metadata") or {}).get("labels") or {}).get(LABEL_ATTEMPT, ""))
    if attempt is None:
        return False
    return all(attempt < before.get(index, attempt + 1) for index in launch_indices(job))


def _job_at(runtime_ref: str | None) -> tuple[str, str] | None:
    """(namespace, name) of the Job a runtime ref (``k8s:<namespace>/<name>``) names; None for any other ref."""
    ref = runtime_ref or ""
    if not ref.startswith(REF_PREFIX) or "/" not in ref:
        return None
    namespace, name = ref[len(REF_PREFIX) :].split("/", 1)
    return namespace, name


def _body(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


def api_said(exc: ApiException) -> tuple[str, str]:
    """(a clean sentence, the reason) from the API server's ``Status``: never the client's text, which
    carries HTTP headers (Audit-Id, flow-schema UIDs) and the raw body."""
    reason, message = str(exc.reason or "Error"), ""
    try:
        status = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        status = {}
    if isinstance(status, dict):
        reason = str(status.get("reason") or reason)
        message = str(status.get("message") or "")
    if not exc.status:  # no answer at all (assay.kubeapi.unanswered; the client's TLS failures)
        return f"the Kubernetes API did not answer ({message[:300] or reason})", reason
    said = f"the Kubernetes API answered {exc.status} {reason}"
    if message:
        said += f" ({message[:300]})"
    return said, reason


def _tenant_not_set_up(namespace: str, tenant: str) -> LaunchRefused:
    return LaunchRefused(
        f"Tenant {tenant!r} is not set up on the cluster: Assay may not run benchmarks in namespace "
        f"{namespace!r} (the namespace, or its RoleBindings, are missing). Ask an administrator to label the "
        "namespace assay.dev/tenant (tenant onboarding creates the rest)",
        TENANT_NOT_SET_UP,
        "Forbidden",
    )


class KubernetesRuntime(ApiUser):
    """:class:`~assay.lifecycle.ports.Runtime` on Kubernetes Jobs queued by Kueue, with a watcher
    (:meth:`observe`) that the sweep runs periodically and on ApiServerSource events."""

    name = "kubernetes"
    watches = True
    queues_launches = False

    def __init__(
        self,
        settings: Settings,
        signer: LaunchSigner | None,
        configuration: kubernetes.client.Configuration | None = None,
    ) -> None:
        super().__init__(settings, configuration)
        self._signer = signer
        # By path through the client's ApiClient: the generated API classes would import their models (assay.kubeapi).
        timeout = settings.k8s_request_timeout_seconds
        self._core = CoreV1(self._client, timeout)
        self._batch = BatchV1(self._client, timeout)
        self._custom = CustomObjects(self._client, timeout)
        self._queues_seen: dict[tuple[str, str], float] = {}
        self._limits = WatchLimits(
            admission_timeout=settings.k8s_admission_timeout_seconds,
            image_pull_grace=settings.k8s_image_pull_grace_seconds,
            unschedulable_grace=settings.k8s_unschedulable_grace_seconds,
            result_grace=settings.k8s_result_grace_seconds,
            pod_start_grace=settings.k8s_pod_start_grace_seconds,
        )

    # -- launching ------------------------------------------------------------------------------------

    async def launch(
        self, evaluation: EvaluationRecord, runs: Sequence[tuple[PlannedBenchmark, int]]
    ) -> None:
        """Check the tenant's LocalQueue and the Secrets the job names, then create the launch's Job
        (suspended, queued), its ConfigMap and its credential Secret (both owned by the Job). Names are
        deterministic: a redelivered dispatch finds them and creates nothing (409 is success here)."""
        if self._signer is None:
            raise RuntimeError(
                "this process holds no launch signing key (ASSAY_LAUNCH_SIGNING_KEY): it cannot launch"
            )
        lead = runs[0][0]
        timeout = lead.timeout_seconds or self._settings.benchmark_timeout_seconds
        token = self._signer.issue(
            evaluation.tenant,
            evaluation.id,
            [(p.index, attempt) for p, attempt in runs],
            datetime.now(UTC),
            timeout + self._settings.k8s_admission_timeout_seconds + _CREDENTIAL_SLACK_SECONDS,
        )
        profile = await self._hardware_profile(lead)
        try:
            objects = build_launch(
                evaluation_id=evaluation.id,
                tenant=evaluation.tenant,
                request=evaluation.request,
                runs=runs,
                settings=self._settings,
                timeout_seconds=timeout,
                launch_token=token,
                profile=profile,
                trace_env=tracing.carrier_env(),
            )
        except TestDataUnsupported as exc:
            raise LaunchRefused(
                f"The benchmark cannot run here: {exc}", TEST_DATA_UNSUPPORTED, "NoInitImage"
            ) from exc
        try:
            await self._check_launch(objects)
        except ApiException as exc:
            if exc.status == 403:
                raise _tenant_not_set_up(objects.namespace, evaluation.tenant) from exc
            raise self._refused(objects, exc) from exc
        try:
            await self._create(objects)
        except ApiException as exc:
            await self._abandon(objects)
            if exc.status == 403:
                raise _tenant_not_set_up(objects.namespace, evaluation.tenant) from exc
            raise self._refused(objects, exc) from exc
        except Exception:
            await self._abandon(objects)
            raise
        log.info(
            "queued Job %s/%s for benchmarks %s of %s in LocalQueue %s",
            objects.namespace,
            objects.name,
            list(objects.indices),
            evaluation.id,
            objects.local_queue,
        )

    async def _check_launch(self, objects: LaunchObjects) -> None:
        """Refuse a launch whose LocalQueue does not exist or that names a Secret it may not use."""
        if not await self._queue_exists(objects.namespace, objects.local_queue):
            raise LaunchRefused(
                f"The Kueue LocalQueue {objects.local_queue!r} does not exist in namespace "
                f"{objects.namespace!r}; name an existing one in hardware_config.queue, or ask an "
                "administrator to create it",
                LOCAL_QUEUE_NOT_FOUND,
                "LocalQueueNotFound",
            )
        for field, secret in objects.credential_secrets:
            await self._check_credentials(objects.namespace, field, secret)

    async def _create(self, objects: LaunchObjects) -> None:
        """The Job, then its ConfigMap and credential Secret owned by it (an existing one, 409, is fine)."""
        job = await self._create_job(objects)
        await self._created(
            self._call(
                self._core.create_namespaced_config_map,
                objects.namespace,
                owned_by(objects.config_map, job),
                _preload_content=False,
            )
        )
        await self._created(
            self._call(
                self._core.create_namespaced_secret,
                objects.namespace,
                owned_by(objects.token_secret, job),
                _preload_content=False,
            )
        )

    async def _hardware_profile(self, planned: PlannedBenchmark) -> HardwareProfile | None:
        """The HardwareProfile the benchmark's ``hardware_config.hardware_profile_name`` names, read from
        ``ASSAY_K8S_HARDWARE_PROFILES_NAMESPACE`` (None without a name or that setting). Missing, disabled or
        unreadable: the launch is refused with EvalHub's ``hardware_profile_*`` code."""
        name = (planned.hardware_config or {}).get("hardware_profile_name")
        namespace = self._settings.k8s_hardware_profiles_namespace
        if not name or not namespace:
            return None
        try:
            found: Any = await self._call(
                self._custom.get_namespaced_custom_object,
                HARDWARE_PROFILE_GROUP,
                HARDWARE_PROFILE_VERSION,
                namespace,
                "hardwareprofiles",
                str(name),
            )
        except ApiException as exc:
            if exc.status == 404:
                raise LaunchRefused(
                    f"hardware_config.hardware_profile_name names the HardwareProfile {name!r}, which does not "
                    f"exist in namespace {namespace!r}",
                    HARDWARE_PROFILE_NOT_FOUND,
                    "NotFound",
                ) from exc
            said, reason = api_said(exc)
            log.warning("cannot read HardwareProfile %s/%s: %s", namespace, name, exc)
            hint = (
                f"; the dispatch function's ServiceAccount needs 'get' on hardwareprofiles."
                f"{HARDWARE_PROFILE_GROUP} in namespace {namespace!r} (knative/hardware-profiles)"
                if exc.status == 403
                else ""
            )
            raise LaunchRefused(
                f"The HardwareProfile {name!r} could not be read: {said}{hint}",
                "hardware_profile_fetch_failed",
                reason,
            ) from exc
        try:
            return read_hardware_profile(found)
        except HardwareProfileRefused as exc:
            raise LaunchRefused(exc.message, exc.code, exc.reason) from exc

    @staticmethod
    async def _created(create: Awaitable[Any]) -> None:
        """A create; 409 (it exists: a redelivered dispatch) is success."""
        try:
            await create
        except ApiException as exc:
            if exc.status != 409:
                raise

    @staticmethod
    def _refused(objects: LaunchObjects, exc: ApiException) -> LaunchRefused:
        """An API error as the run's failure: logged in full, shown as one clean sentence."""
        said, reason = api_said(exc)
        log.warning("the Kubernetes API refused launch %s/%s: %s", objects.namespace, objects.name, exc)
        return LaunchRefused(
            f"The runtime could not start the benchmark: {said}", "runtime_start_failed", reason
        )

    async def _check_credentials(self, namespace: str, field: str, name: str) -> None:
        """A Secret the job names must be the tenant's own (its namespace) and marked for Assay
        (``assay.dev/credentials: "true"``): a job cannot send any other Secret of the namespace anywhere."""
        try:
            secret = _body(
                await self._call(self._core.read_namespaced_secret, name, namespace, _preload_content=False)
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            raise LaunchRefused(
                f"{field} names the Secret {name!r}, which does not exist in namespace {namespace!r}",
                CREDENTIALS_SECRET_REFUSED,
                "SecretNotFound",
            ) from exc
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_CREDENTIALS) != "true":
            raise LaunchRefused(
                f"{field} names the Secret {name!r}, which is not marked for Assay: only Secrets labelled "
                f'{LABEL_CREDENTIALS}: "true" in namespace {namespace!r} may be used',
                CREDENTIALS_SECRET_REFUSED,
                "SecretNotLabelled",
            )

    async def _queue_exists(self, namespace: str, queue: str) -> bool:
        """Whether the LocalQueue exists (positive answers cached for a minute: queues rarely go away)."""
        key = (namespace, queue)
        seen = self._queues_seen.get(key)
        if seen is not None and time.monotonic() - seen < _QUEUE_CACHE_SECONDS:
            return True
        try:
            await self._call(
                self._custom.get_namespaced_custom_object,
                KUEUE_GROUP,
                KUEUE_VERSION,
                namespace,
                "localqueues",
                queue,
            )
        except ApiException as exc:
            if exc.status == 404:
                self._queues_seen.pop(key, None)
                return False
            raise
        self._queues_seen[key] = time.monotonic()
        return True

    # -- stopping -------------------------------------------------------------------------------------

    async def stop(
        self,
        evaluation_id: str,
        index: int | None = None,
        *,
        purge: bool = False,
        tenant: str | None = None,
        before: Mapping[int, int] | None = None,
    ) -> None:
        """Delete the evaluation's Jobs (their pods and Workloads go with them) and ConfigMaps, or those of
        the launch running ``index``. Only called once a cancel is committed: a refused cancel stops nothing."""
        if tenant is None:
            log.warning("cannot stop %s on Kubernetes: the event names no tenant", evaluation_id)
            return
        namespace = namespace_for(self._settings, tenant)
        selector = f"{LABEL_EVALUATION}={label_value(evaluation_id)}"
        jobs = await self._list_jobs(namespace, selector)
        names = [
            j["metadata"]["name"]
            for j in jobs
            if (index is None or index in launch_indices(j)) and (before is None or _older(j, before))
        ]
        await asyncio.gather(*(self._delete_launch(namespace, name) for name in names))
        if index is None and before is None:
            # A ConfigMap whose Job was never created (or already collected) still goes.
            config_maps = _body(
                await self._call(
                    self._core.list_namespaced_config_map,
                    namespace,
                    label_selector=selector,
                    _preload_content=False,
                )
            )["items"]
            secrets = _body(
                await self._call(
                    self._core.list_namespaced_secret,
                    namespace,
                    label_selector=selector,
                    _preload_content=False,
                )
            )["items"]
            await asyncio.gather(
                *(
                    self._delete(self._core.delete_namespaced_config_map, namespace, c["metadata"]["name"])
                    for c in config_maps
                ),
                *(
                    self._delete(self._core.delete_namespaced_secret, namespace, c["metadata"]["name"])
                    for c in secrets
                ),
            )

    async def _create_job(self, objects: LaunchObjects) -> dict[str, Any]:
        try:
            return _body(
                await self._call(
                    self._batch.create_namespaced_job, objects.namespace, objects.job, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
        return _body(
            await self._call(
                self._batch.read_namespaced_job, objects.name, objects.namespace, _preload_content=False
            )
        )

    async def _abandon(self, objects: LaunchObjects) -> None:
        """A launch that failed half-way (the Job made, its ConfigMap not; or a create that timed out after
        the server took it) is removed: the run fails, and its Job must not hold Kueue quota regardless."""
        try:
            await self._delete_launch(objects.namespace, objects.name)
        except Exception:
            log.exception("removing the half-made launch %s/%s failed", objects.namespace, objects.name)

    async def _delete_launch(self, namespace: str, name: str) -> None:
        await self._delete(self._batch.delete_namespaced_job, namespace, name)
        await self._delete(self._core.delete_namespaced_config_map, namespace, f"{name}-spec")
        await self._delete(self._core.delete_namespaced_secret, namespace, f"{name}-token")

    async def _delete(self, call: Callable[..., Any], namespace: str, name: str) -> None:
        try:
            await self._call(
                call,
                name,
                namespace,
                body=DELETE_IN_BACKGROUND,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def is_active(self, evaluation_id: str, index: int, attempt: int) -> bool:
        return False  # the watcher, not the reaper, follows pods; activeDeadlineSeconds ends stragglers

    def lost(self, evaluation_id: str, row: RunRow) -> bool:
        return False  # a Job outlives the hub; the watcher tells what became of it

    async def kill_orphan(self, evaluation_id: str, row: RunRow) -> None:
        """Delete the launch of a run the hub failed (watcher, timeout): it must not hold Kueue quota."""
        where = _job_at(row.runtime_ref)
        if where is not None:
            await self._delete_launch(*where)

    def log_path(self, evaluation_id: str, index: int, provider_id: str, benchmark_id: str) -> Path | None:
        return None

    # -- watching -------------------------------------------------------------------------------------

    def evaluation_of(self, resource: Mapping[str, Any]) -> str | None:
        """The evaluation an ApiServerSource event is about: a Job, pod or Workload of Assay (full object in
        ``Resource`` mode, or ``{kind, namespace, name}`` in ``Reference`` mode)."""
        metadata = resource.get("metadata")
        if isinstance(metadata, Mapping):
            labels = metadata.get("labels") or {}
            if labels.get(LABEL_EVALUATION):
                return str(labels[LABEL_EVALUATION])
            names = [str(metadata.get("name") or "")]
            names += [str(o.get("name") or "") for o in metadata.get("ownerReferences") or []]
        else:
            names = [str(resource.get("name") or "")]
        return next((found for n in names if (found := evaluation_of_name(n))), None)

    def launch_of(self, resource: Mapping[str, Any]) -> SeenLaunch | None:
        """A Job Assay created, whole (the ApiServerSource's ``Resource`` mode, as deployed): its evaluation,
        attempt and benchmarks from its labels and annotation, and whether it still runs. A Job whose name is
        not the one Assay gives those labels is none of Assay's launches."""
        metadata = resource.get("metadata")
        if resource.get("kind") != "Job" or not isinstance(metadata, Mapping):
            return None
        labels = metadata.get("labels") or {}
        evaluation_id = str(labels.get(LABEL_EVALUATION) or "")
        attempt, lead = whole(labels.get(LABEL_ATTEMPT, "")), whole(labels.get(LABEL_INDEX, ""))
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
        indices = launch_indices(resource)
        if not evaluation_id or attempt is None or lead is None or not namespace or not indices:
            return None
        if name != job_name(evaluation_id, lead, attempt):
            return None
        conditions = (resource.get("status") or {}).get("conditions") or []
        finished = any(
            isinstance(c, Mapping) and c.get("type") in _FINISHED and c.get("status") == "True"
            for c in conditions
        )
        return SeenLaunch(
            evaluation_id=evaluation_id,
            attempt=attempt,
            indices=indices,
            runtime_ref=f"{REF_PREFIX}{namespace}/{name}",
            running=not finished and not metadata.get("deletionTimestamp"),
        )

    async def remove(self, launch: SeenLaunch, tenant: str) -> None:
        """Delete the launch's Job (its ConfigMap and Secret with it), only in ``tenant``'s own namespace."""
        namespace, name = _job_at(launch.runtime_ref) or ("", "")
        if namespace != namespace_for(self._settings, tenant):
            log.warning(
                "not removing Job %s/%s: evaluation %s belongs to tenant %s, whose namespace is %s",
                namespace,
                name,
                launch.evaluation_id,
                tenant,
                namespace_for(self._settings, tenant),
            )
            return
        await self._delete_launch(namespace, name)

    async def observe(self, evaluation: EvaluationRecord, now: datetime) -> list[RunObservation]:
        """Look at the Jobs, Workloads and pods of the evaluation's launched, unfinished runs."""
        rows = [r for r in evaluation.runs if not r.run.terminal and r.dispatched_attempt >= r.run.attempt]
        if not rows:
            return []
        namespace = namespace_for(self._settings, evaluation.tenant)
        selector = f"{LABEL_EVALUATION}={label_value(evaluation.id)}"
        jobs, pods = await asyncio.gather(
            self._list_jobs(namespace, selector), self._list_pods(namespace, selector)
        )
        workloads = await self._workloads_of(namespace, jobs)
        queues: dict[str, bool | None] = {}
        out: list[RunObservation] = []
        for row in rows:
            run = row.run
            job = next(
                (
                    j
                    for j in jobs
                    if (j["metadata"].get("labels") or {}).get(LABEL_ATTEMPT) == str(run.attempt)
                    and run.index in launch_indices(j)
                ),
                None,
            )
            workload = workloads.get(job["metadata"].get("uid", "")) if job is not None else None
            queue = ((job or {}).get("metadata", {}).get("labels") or {}).get(QUEUE_LABEL, "")
            if job is not None and queue not in queues:
                queues[queue] = (
                    None if _admitted(workload) else await self._queue_exists_now(namespace, queue)
                )
            mine = [p for p in pods if job is not None and _pod_of(p, job)]
            verdict = judge(
                job,
                workload,
                mine,
                local_queue=queue,
                queue_exists=queues.get(queue),
                now=now,
                limits=self._limits,
                events=await self._mount_events(namespace, waiting_for_volumes(mine, now, self._limits)),
            )
            ref = f"{REF_PREFIX}{namespace}/{job['metadata']['name']}" if job is not None else None
            deadline = None
            if verdict.admitted_at is not None and job is not None:
                seconds = float((job.get("spec") or {}).get("activeDeadlineSeconds") or 0)
                deadline = verdict.admitted_at + timedelta(seconds=seconds) + _DEADLINE_MARGIN
            out.append(
                RunObservation(
                    index=run.index,
                    attempt=run.attempt,
                    failure=verdict.failure,
                    notice=verdict.notice,
                    runtime_ref=ref,
                    deadline_at=deadline,
                )
            )
        return out

    async def _queue_exists_now(self, namespace: str, queue: str) -> bool:
        self._queues_seen.pop((namespace, queue), None)  # the watcher asks the API server, not the cache
        return await self._queue_exists(namespace, queue)

    async def _list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        response = await self._call(
            self._batch.list_namespaced_job, namespace, label_selector=selector, _preload_content=False
        )
        items: list[dict[str, Any]] = _body(response)["items"]
        return items

    async def _list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        response = await self._call(
            self._core.list_namespaced_pod, namespace, label_selector=selector, _preload_content=False
        )
        items: list[dict[str, Any]] = _body(response)["items"]
        return items

    async def _mount_events(self, namespace: str, pods: Sequence[str]) -> list[dict[str, Any]]:
        """The ``FailedMount`` Events of ``pods`` (pods that have not started in the grace: a rare case, so a
        call each; none otherwise)."""
        found: list[dict[str, Any]] = []
        for pod in pods:
            response = await self._call(
                self._core.list_namespaced_event,
                namespace,
                field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod},reason={FAILED_MOUNT}",
                _preload_content=False,
            )
            found.extend(_body(response)["items"])
        return found

    async def _workloads_of(self, namespace: str, jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Kueue's Workload of each Job, by the Job's uid: Kueue labels it ``kueue.x-k8s.io/job-uid`` and the
        Job owns it."""
        uids = [str(j["metadata"]["uid"]) for j in jobs if j["metadata"].get("uid")]
        if not uids:
            return {}
        found: Any = await self._call(
            self._custom.list_namespaced_custom_object,
            KUEUE_GROUP,
            KUEUE_VERSION,
            namespace,
            "workloads",
            label_selector=f"{JOB_UID_LABEL} in ({','.join(uids)})",
        )
        out: dict[str, dict[str, Any]] = {}
        for workload in found.get("items", []):
            metadata = workload.get("metadata") or {}
            owners = [o.get("uid") for o in metadata.get("ownerReferences") or []]
            for uid in uids:
                if uid in owners or (metadata.get("labels") or {}).get(JOB_UID_LABEL) == uid:
                    out[uid] = workload
        return out


def _admitted(workload: Mapping[str, Any] | None) -> bool:
    for condition in ((workload or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Admitted" and condition.get("status") == "True":
            return True
    return False


def _pod_of(pod: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    """A pod of this Job: the Job controller's owner reference, else our labels (lead index and attempt)."""
    metadata = pod.get("metadata") or {}
    uid = job["metadata"].get("uid")
    if uid and any(o.get("uid") == uid for o in metadata.get("ownerReferences") or []):
        return True
    labels, job_labels = metadata.get("labels") or {}, job["metadata"].get("labels") or {}
    return all(labels.get(k) == job_labels.get(k) for k in (LABEL_EVALUATION, LABEL_INDEX, LABEL_ATTEMPT))


def kubernetes_runtime(settings: Settings, *, launches: bool = False) -> KubernetesRuntime | None:
    """The runtime the dispatch and sweep functions use when ``ASSAY_RUNTIME=kubernetes``, else None.

    ``launches``: this process creates launches (dispatch), so it signs each launch's credential with
    ``ASSAY_LAUNCH_SIGNING_KEY`` (the callback function verifies it), which is then required. The sweep only
    watches and removes, and holds no key."""
    if settings.runtime != "kubernetes":
        return None
    if settings.launch_signing_key is None:
        if launches:
            raise ValueError(
                "ASSAY_LAUNCH_SIGNING_KEY is required where benchmarks are launched on Kubernetes: dispatch "
                "signs each launch's credential with it and the callback function verifies it (mount the same "
                "Secret into both)"
            )
        return KubernetesRuntime(settings, None)
    signer = LaunchSigner(settings.launch_signing_key.get_secret_value().encode("utf-8"))
    return KubernetesRuntime(settings, signer)


__all__ = [
    "KUEUE_GROUP",
    "KUEUE_VERSION",
    "KubernetesRuntime",
    "api_said",
    "client_configuration",
    "kubernetes_runtime",
]
