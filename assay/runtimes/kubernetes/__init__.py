"""The Kubernetes runtime: each benchmark group a Kueue-queued ``batch/v1`` Job with the sidecar, and a watcher.

Imported only by the functions that launch and watch (dispatch, sweep): never on the submit or callback path,
which must not load the ``kubernetes`` client. ``objects`` (the Job and ConfigMap builders) and ``watch`` (the
failure table) are pure; ``runtime`` does the I/O. See ``docs/cluster.md``.
"""

from assay.runtimes.kubernetes.objects import LaunchObjects, build_launch, job_name
from assay.runtimes.kubernetes.runtime import KUEUE_VERSION, KubernetesRuntime, kubernetes_runtime
from assay.runtimes.kubernetes.watch import FAILURE_CODES, NOTICE_CODES, WatchLimits, judge

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
