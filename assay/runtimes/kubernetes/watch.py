"""The watcher's judgement: from a launch's Job, its Kueue Workload and its pods, what became of the run.

Pure: the objects come in as the API server's JSON (camelCase dicts), the clock as ``now``. The failure table
of ``docs/cluster.md`` is this module; each failure has its own ``message_code`` and keeps Kubernetes' or
Kueue's own reason, and a Kueue eviction (preemption) is only a notice: the Workload is re-queued and the
benchmark runs again when admitted. Checks go from facts to waiting: a finished Job first, then what a pod
shows (OOMKilled, an image that cannot be pulled, no node), then where the Workload stands in its queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from assay.runtimes.kubernetes.objects import ADAPTER, SIDECAR
from assay.runtimes.observation import NOTICE_CODES, RunNote

LOCAL_QUEUE_NOT_FOUND = "local_queue_not_found"
TENANT_NOT_SET_UP = "tenant_not_set_up"
CREDENTIALS_SECRET_REFUSED = "credentials_secret_refused"
TEST_DATA_UNSUPPORTED = "test_data_unsupported"
WORKLOAD_INADMISSIBLE = "workload_inadmissible"
WORKLOAD_EXCEEDS_QUOTA = "workload_exceeds_quota"
POD_START_FAILED = "pod_start_failed"
POD_VOLUME_MOUNT_FAILED = "pod_volume_mount_failed"
SIDECAR_CRASH_LOOPING = "sidecar_crash_looping"
OOM_KILLED = "oom_killed"
IMAGE_PULL_FAILED = "image_pull_failed"
UNSCHEDULABLE = "unschedulable"
DEADLINE_EXCEEDED = "deadline_exceeded"
POD_LOST_WITHOUT_RESULT = "pod_lost_without_result"
HARDWARE_PROFILE_CODES = (
    "hardware_profile_not_found",
    "hardware_profile_disabled",
    "hardware_profile_invalid",
    "hardware_profile_fetch_failed",
)
"""EvalHub's codes for a HardwareProfile that cannot be used; Assay decides them at dispatch."""
FAILURE_CODES = (
    LOCAL_QUEUE_NOT_FOUND,
    TENANT_NOT_SET_UP,
    CREDENTIALS_SECRET_REFUSED,
    TEST_DATA_UNSUPPORTED,
    WORKLOAD_INADMISSIBLE,
    WORKLOAD_EXCEEDS_QUOTA,
    OOM_KILLED,
    IMAGE_PULL_FAILED,
    POD_START_FAILED,
    POD_VOLUME_MOUNT_FAILED,
    SIDECAR_CRASH_LOOPING,
    UNSCHEDULABLE,
    DEADLINE_EXCEEDED,
    POD_LOST_WITHOUT_RESULT,
    *HARDWARE_PROFILE_CODES,
)
"""The failures the Kubernetes runtime decides (at dispatch, or the watcher), each its own ``message_code``
(origin ``runtime``)."""

WORKLOAD_QUEUED = "workload_queued"
WORKLOAD_ADMITTED = "workload_admitted"
WORKLOAD_EVICTED = "workload_evicted"
"""Where a run stands in Kueue, shown as its ``warning_message`` (the status enum has no queued state);
these are :data:`~assay.runtimes.observation.NOTICE_CODES`."""

_PULL_WAITING = frozenset({"ImagePullBackOff", "ErrImagePull"})
_PULL_HOPELESS = frozenset({"InvalidImageName", "ErrImageNeverPull"})
_START_FAILED = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
FAILED_MOUNT = "FailedMount"
"""The kubelet's Event reason when a pod's volume cannot be set up (a missing Secret or ConfigMap): the pod
stays ``Pending`` with its containers ``ContainerCreating``, and only Events say why."""
_OVER_CAPACITY = "> maximum capacity"
"""How Kueue says a request can never fit (``insufficient quota for cpu in flavor x, request > maximum capacity
(40 > 32)``): more than the ClusterQueue's nominal quota plus all it may borrow. Waiting cannot help."""


@dataclass(frozen=True, slots=True)
class WatchLimits:
    """How long each kind of waiting may last before the run fails (seconds)."""

    admission_timeout: float
    image_pull_grace: float
    unschedulable_grace: float
    result_grace: float
    pod_start_grace: float = 120.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """``failure``: fail the run. ``notice``: where it stands. ``admitted_at``: when Kueue last admitted it."""

    failure: RunNote | None = None
    notice: RunNote | None = None
    admitted_at: datetime | None = None


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp of the API server (``2026-05-01T10:00:00Z``), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _conditions(obj: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    status = (obj or {}).get("status") or {}
    return {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}


def _true(conditions: Mapping[str, Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    condition = conditions.get(kind)
    return condition if condition is not None and condition.get("status") == "True" else None


def _since(condition: Mapping[str, Any] | None, fallback: datetime | None) -> datetime | None:
    when = parse_time((condition or {}).get("lastTransitionTime"))
    return when or fallback


def _explained(reason: object, message: object) -> str:
    parts = [str(p) for p in (reason, message) if p]
    return ": ".join(parts) if parts else "no reason given"


def _container_statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _oom(pods: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """(the pod, the adapter's ``terminated`` state) of an adapter the kernel killed for memory."""
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") != ADAPTER:
                continue
            for state in (status.get("state") or {}, status.get("lastState") or {}):
                terminated = state.get("terminated") or {}
                if terminated.get("reason") == "OOMKilled":
                    return pod, terminated
    return None


def _memory_limit(pod: Mapping[str, Any]) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == ADAPTER:
            return ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return None


def _adapter_exit(pods: Sequence[Mapping[str, Any]]) -> str:
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if status.get("name") == ADAPTER and terminated:
                return f"; the adapter exited with status {terminated.get('exitCode')} ({terminated.get('reason', 'no reason')})"
    return ""


def _live(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pods that still count: not being deleted (an evicted Workload's pods are), not finished."""
    return [
        p
        for p in pods
        if not (p.get("metadata") or {}).get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def _never_started(pod: Mapping[str, Any]) -> bool:
    """A pending pod none of whose containers has run yet (all waiting, or no status at all)."""
    if (pod.get("status") or {}).get("phase", "Pending") != "Pending":
        return False
    for status in _container_statuses(pod):
        state = status.get("state") or {}
        if (
            state.get("running")
            or state.get("terminated")
            or (status.get("lastState") or {}).get("terminated")
        ):
            return False
    return True


def waiting_for_volumes(pods: Sequence[Mapping[str, Any]], now: datetime, limits: WatchLimits) -> list[str]:
    """Names of the live pods that have waited ``pod_start_grace`` without any container starting: the ones
    whose ``FailedMount`` Events the runtime looks up (only then: Events cost a call)."""
    out = []
    for pod in _live(pods):
        metadata = pod.get("metadata") or {}
        created = parse_time(metadata.get("creationTimestamp")) or now
        if _never_started(pod) and now - created >= timedelta(seconds=limits.pod_start_grace):
            out.append(str(metadata.get("name") or ""))
    return out


def _mount_failure(
    pod: Mapping[str, Any], events: Sequence[Mapping[str, Any]], limits: WatchLimits
) -> RunNote | None:
    metadata = pod.get("metadata") or {}
    for event in reversed(events):  # the newest last, as the API lists them
        involved = event.get("involvedObject") or {}
        if event.get("reason") != FAILED_MOUNT or involved.get("name") != metadata.get("name"):
            continue
        if involved.get("uid") and metadata.get("uid") and involved["uid"] != metadata["uid"]:
            continue  # an earlier pod of the same name
        return RunNote(
            f"The benchmark's pod cannot mount its volumes ({_explained(FAILED_MOUNT, event.get('message'))}); a "
            f"Secret or ConfigMap it needs may be missing. It waited {limits.pod_start_grace:g} s",
            POD_VOLUME_MOUNT_FAILED,
            FAILED_MOUNT,
        )
    return None


def _pod_trouble(
    pods: Sequence[Mapping[str, Any]],
    now: datetime,
    limits: WatchLimits,
    events: Sequence[Mapping[str, Any]] = (),
) -> RunNote | None:
    stuck = set(waiting_for_volumes(pods, now, limits)) if events else set()
    for pod in _live(pods):
        created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or now
        for status in _container_statuses(pod):
            waiting = (status.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in _PULL_HOPELESS or (
                reason in _PULL_WAITING and now - created >= timedelta(seconds=limits.image_pull_grace)
            ):
                return RunNote(
                    f"The {status.get('name')} container cannot pull its image {status.get('image')!r} "
                    f"({_explained(reason, waiting.get('message'))})",
                    IMAGE_PULL_FAILED,
                    str(reason),
                )
            waited = now - created >= timedelta(seconds=limits.pod_start_grace)
            if reason in _START_FAILED and waited:
                return RunNote(
                    f"The {status.get('name')} container cannot start ({_explained(reason, waiting.get('message'))}); "
                    f"a Secret or ConfigMap it needs may be missing. It tried for {limits.pod_start_grace:g} s",
                    POD_START_FAILED,
                    str(reason),
                )
            if status.get("name") == SIDECAR and reason == "CrashLoopBackOff" and waited:
                return RunNote(
                    f"The sidecar keeps crashing (restarted {status.get('restartCount', 0)} times: "
                    f"{_explained(reason, waiting.get('message'))}); the benchmark cannot run without it",
                    SIDECAR_CRASH_LOOPING,
                    "CrashLoopBackOff",
                )
        if (pod.get("metadata") or {}).get("name") in stuck:
            mount = _mount_failure(pod, events, limits)
            if mount is not None:
                return mount
        scheduled = _conditions(pod).get("PodScheduled")
        if (
            scheduled is not None
            and scheduled.get("status") == "False"
            and scheduled.get("reason") == "Unschedulable"
        ):
            since = _since(scheduled, created) or now
            if now - since >= timedelta(seconds=limits.unschedulable_grace):
                return RunNote(
                    f"No node can run the benchmark's pod ({_explained('Unschedulable', scheduled.get('message'))}); "
                    f"it waited {limits.unschedulable_grace:g} s",
                    UNSCHEDULABLE,
                    "Unschedulable",
                )
    return None


def judge(
    job: Mapping[str, Any] | None,
    workload: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    *,
    local_queue: str,
    queue_exists: bool | None,
    now: datetime,
    limits: WatchLimits,
    events: Sequence[Mapping[str, Any]] = (),
) -> Verdict:
    """What became of a launch whose run has reported no terminal status. ``queue_exists`` is None when the
    LocalQueue was not looked up (the Workload is admitted, so it did exist). ``events``: the ``FailedMount``
    Events of the pods :func:`waiting_for_volumes` named (the runtime lists them only for those)."""
    if job is None:
        return Verdict(
            failure=RunNote(
                "The benchmark's Kubernetes Job is gone and no result was reported",
                POD_LOST_WITHOUT_RESULT,
                "JobDeleted",
            )
        )
    conditions = _conditions(job)
    metadata = job.get("metadata") or {}
    oom = _oom(pods)
    if oom is not None:
        pod, terminated = oom
        killed_at = parse_time(terminated.get("finishedAt"))
        if killed_at is not None and now - killed_at < timedelta(seconds=limits.result_grace):
            # Killed while tearing down, perhaps after it reported: the sidecar may still be delivering the
            # result from its buffer. Judge once that had time to arrive (a result wins; see a reported run).
            return Verdict()
        limit = _memory_limit(pod)
        return Verdict(
            failure=RunNote(
                "The adapter ran out of memory and was killed (OOMKilled"
                + (f", memory limit {limit})" if limit else ")")
                + "; give the provider's runtime.k8s.memory_limit or the job's hardware_config.memory more",
                OOM_KILLED,
                "OOMKilled",
            )
        )
    failed = _true(conditions, "Failed")
    if failed is not None and failed.get("reason") == "DeadlineExceeded":
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        return Verdict(
            failure=RunNote(
                f"The benchmark ran past its deadline of {deadline} s (activeDeadlineSeconds) and Kubernetes "
                f"stopped it ({_explained(None, failed.get('message'))})",
                DEADLINE_EXCEEDED,
                "DeadlineExceeded",
            )
        )
    ended = failed or _true(conditions, "Complete")
    if ended is not None:
        # The sidecar flushes buffered events as the pod stops; give a terminal one time to arrive.
        since = _since(ended, now) or now
        if now - since < timedelta(seconds=limits.result_grace):
            return Verdict()
        how = _explained(ended.get("reason"), ended.get("message")) if failed else "it completed"
        return Verdict(
            failure=RunNote(
                f"The benchmark's pod ended ({how}) without reporting a result{_adapter_exit(pods)}",
                POD_LOST_WITHOUT_RESULT,
                str(ended.get("reason") or ended.get("type")),
            )
        )
    trouble = _pod_trouble(pods, now, limits, events)
    if trouble is not None:
        return Verdict(failure=trouble)
    return _queue_verdict(workload, metadata, local_queue, queue_exists, now, limits)


def _queue_verdict(
    workload: Mapping[str, Any] | None,
    metadata: Mapping[str, Any],
    local_queue: str,
    queue_exists: bool | None,
    now: datetime,
    limits: WatchLimits,
) -> Verdict:
    """Where a suspended Job stands with Kueue: admitted, queued, evicted and re-queued, or never to be
    admitted (its LocalQueue missing, no Workload, over the queue's quota, deactivated, the admission timeout)."""
    if workload is not None and (verdict := _admitted(workload, local_queue, now)) is not None:
        return verdict
    namespace = metadata.get("namespace", "")
    if queue_exists is False:
        return Verdict(
            failure=RunNote(
                f"The Kueue LocalQueue {local_queue!r} does not exist in namespace {namespace!r}; name an existing "
                "one in hardware_config.queue, or ask an administrator to create it",
                LOCAL_QUEUE_NOT_FOUND,
                "LocalQueueNotFound",
            )
        )
    if workload is None:
        return _no_workload(metadata, namespace, local_queue, now, limits)
    return _waiting(workload, local_queue, now, limits)


def _admitted(workload: Mapping[str, Any], local_queue: str, now: datetime) -> Verdict | None:
    """The admission notice, when the Workload's latest admission is not followed by an eviction."""
    conditions = _conditions(workload)
    admitted = _true(conditions, "Admitted")
    evicted = _true(conditions, "Evicted")
    admitted_at = _since(admitted, None)
    evicted_at = _since(evicted, None)
    if admitted is not None and (
        evicted is None or (admitted_at and evicted_at and admitted_at > evicted_at)
    ):
        cluster_queue = ((workload.get("status") or {}).get("admission") or {}).get("clusterQueue")
        return Verdict(
            notice=RunNote(
                f"Admitted by Kueue to ClusterQueue {cluster_queue!r} from LocalQueue {local_queue!r}",
                WORKLOAD_ADMITTED,
                str(admitted.get("reason") or "Admitted"),
            ),
            admitted_at=admitted_at or now,
        )
    return None


def _no_workload(
    metadata: Mapping[str, Any], namespace: str, local_queue: str, now: datetime, limits: WatchLimits
) -> Verdict:
    """Kueue has not (yet) made a Workload for the Job: wait, up to the admission timeout."""
    timeout = timedelta(seconds=limits.admission_timeout)
    created = parse_time(metadata.get("creationTimestamp")) or now
    if now - created >= timeout:
        return Verdict(
            failure=RunNote(
                f"Kueue created no Workload for the Job within {limits.admission_timeout:g} s; is Kueue "
                f"installed and managing namespace {namespace!r}?",
                WORKLOAD_INADMISSIBLE,
                "NoWorkload",
            )
        )
    return Verdict(
        notice=RunNote(
            f"Waiting for Kueue to queue the Job in LocalQueue {local_queue!r}",
            WORKLOAD_QUEUED,
            "Pending",
        )
    )


def _waiting(workload: Mapping[str, Any], local_queue: str, now: datetime, limits: WatchLimits) -> Verdict:
    """A Workload not admitted: queued (or evicted and re-queued), or failed when it never can be admitted."""
    timeout = timedelta(seconds=limits.admission_timeout)
    spec = workload.get("spec") or {}
    conditions = _conditions(workload)
    evicted = _true(conditions, "Evicted")
    quota = conditions.get("QuotaReserved")
    waiting = conditions.get("Admitted") if _true(conditions, "QuotaReserved") else quota
    reason = (waiting or {}).get("reason") or "Pending"
    kueue_says = _explained(reason, (waiting or {}).get("message"))
    if spec.get("active") is False:
        return Verdict(
            failure=RunNote(
                f"Kueue deactivated the benchmark's Workload ({_explained((evicted or {}).get('reason'), (evicted or {}).get('message'))})",
                WORKLOAD_INADMISSIBLE,
                str((evicted or {}).get("reason") or "Deactivated"),
            )
        )
    if (
        quota is not None
        and quota.get("status") == "False"
        and (quota.get("reason") == "ExceedsMaxQuota" or _OVER_CAPACITY in str(quota.get("message") or ""))
    ):
        return Verdict(
            failure=RunNote(
                f"The benchmark asks for more than LocalQueue {local_queue!r} can ever give ({kueue_says}); ask "
                "for less in hardware_config or the provider's runtime.k8s, or ask an administrator for more quota",
                WORKLOAD_EXCEEDS_QUOTA,
                "ExceedsMaxQuota",
            )
        )
    starts = [parse_time((workload.get("metadata") or {}).get("creationTimestamp"))]
    starts += [
        _since(conditions.get(kind), None) for kind in ("Evicted", "Requeued") if _true(conditions, kind)
    ]
    waiting_since = max((s for s in starts if s is not None), default=now)
    if now - waiting_since >= timeout:
        return Verdict(
            failure=RunNote(
                f"Kueue did not admit the benchmark within {limits.admission_timeout:g} s in LocalQueue "
                f"{local_queue!r} ({kueue_says})",
                WORKLOAD_INADMISSIBLE,
                str(reason),
            )
        )
    if evicted is not None:
        return Verdict(
            notice=RunNote(
                f"Evicted by Kueue ({_explained(evicted.get('reason'), evicted.get('message'))}); re-queued in "
                f"LocalQueue {local_queue!r}, the benchmark runs again once admitted",
                WORKLOAD_EVICTED,
                str(evicted.get("reason") or "Evicted"),
            )
        )
    return Verdict(
        notice=RunNote(
            f"Queued by Kueue in LocalQueue {local_queue!r} ({kueue_says})", WORKLOAD_QUEUED, str(reason)
        )
    )


__all__ = [
    "CREDENTIALS_SECRET_REFUSED",
    "DEADLINE_EXCEEDED",
    "FAILURE_CODES",
    "HARDWARE_PROFILE_CODES",
    "IMAGE_PULL_FAILED",
    "LOCAL_QUEUE_NOT_FOUND",
    "NOTICE_CODES",
    "OOM_KILLED",
    "POD_LOST_WITHOUT_RESULT",
    "POD_START_FAILED",
    "POD_VOLUME_MOUNT_FAILED",
    "SIDECAR_CRASH_LOOPING",
    "TENANT_NOT_SET_UP",
    "TEST_DATA_UNSUPPORTED",
    "UNSCHEDULABLE",
    "WORKLOAD_ADMITTED",
    "WORKLOAD_EVICTED",
    "WORKLOAD_EXCEEDS_QUOTA",
    "WORKLOAD_INADMISSIBLE",
    "WORKLOAD_QUEUED",
    "Verdict",
    "WatchLimits",
    "judge",
    "parse_time",
    "waiting_for_volumes",
]
