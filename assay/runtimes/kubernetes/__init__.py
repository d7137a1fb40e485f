"""The Kubernetes runtime: each benchmark group a Kueue-queued ``batch/v1`` Job with the sidecar, and a watcher.

``objects`` (the Job, ConfigMap and Secret builders), ``watch`` (the failure table) and ``tenants`` (what a
tenant namespace needs) are pure, and submit imports ``objects`` to refuse a job whose ConfigMap would be too
large; ``runtime`` and ``onboarding`` do the I/O with the ``kubernetes`` client, and only the dispatch, sweep
and tenants functions load them. Importing this package loads nothing of the client: the names below are
resolved on first use. See ``docs/cluster.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assay._lazy import exports

if TYPE_CHECKING:
    from assay.runtimes.kubernetes.objects import LaunchObjects, build_launch, job_name
    from assay.runtimes.kubernetes.runtime import KUEUE_VERSION, KubernetesRuntime, kubernetes_runtime
    from assay.runtimes.kubernetes.watch import FAILURE_CODES, NOTICE_CODES, WatchLimits, judge

_WHERE = {
    "LaunchObjects": "objects",
    "build_launch": "objects",
    "job_name": "objects",
    "KUEUE_VERSION": "runtime",
    "KubernetesRuntime": "runtime",
    "kubernetes_runtime": "runtime",
    "FAILURE_CODES": "watch",
    "NOTICE_CODES": "watch",
    "WatchLimits": "watch",
    "judge": "watch",
}


__getattr__ = exports(__name__, _WHERE)


__all__ = [
    "FAILURE_CODES",
    "KUEUE_VERSION",
    "NOTICE_CODES",
    "KubernetesRuntime",
    "LaunchObjects",
    "WatchLimits",
    "build_launch",
    "job_name",
    "judge",
    "kubernetes_runtime",
]
