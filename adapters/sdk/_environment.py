"""The environment card eval-hub-sdk attaches to every results event (``artifacts["evalhub.env_card"]``).

Same keys, order and completeness score as eval-hub-sdk 1.0.6's ``EnvironmentCardMetadata.capture()``,
with one deliberate difference: GPU details come from ``torch`` only when the adapter already imported it,
because importing torch just to describe the machine costs seconds per run.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["capture_environment_card", "package_version"]

_KEY_PACKAGES = ("torch", "transformers", "vllm", "lm_eval", "garak", "ragas", "mlflow")
_SA_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
_PODINFO_LABELS = Path("/etc/podinfo/labels")
# The 26 fields of the Environment Card spec that eval-hub-sdk counts for capture_completeness.
_SPEC_FIELD_COUNT = 26
_COMPLETENESS_FIELDS = (
    "gpu_model",
    "gpu_count",
    "gpu_driver_version",
    "cpu_model",
    "total_memory_gb",
    "nvlink_topology",
    "os_info",
    "python_version",
    "cuda_version",
    "framework_name",
    "framework_version",
    "container_image",
    "key_packages",
    "k8s_pod_labels",
    "k8s_resource_limits",
    "model_id",
    "model_version",
    "model_provider",
    "collection_id",
    "collection_version",
    "dataset_hash",
    "started_at",
    "completed_at",
    "aggregate_results",
    "confidence_intervals",
    "oci_artifact_ref",
)


def _gpu() -> tuple[str | None, str | None, int | None]:
    torch = sys.modules.get("torch")
    if torch is None:
        return None, None, None
    try:
        if not torch.cuda.is_available():
            return None, None, None
        count = int(torch.cuda.device_count())
        names = sorted({str(torch.cuda.get_device_name(i)) for i in range(count)})
        return str(torch.version.cuda), ", ".join(names), count
    except Exception:  # a broken CUDA setup must not stop results from being reported
        return None, None, None


def _gpu_driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else None


def _k8s_context() -> tuple[dict[str, str], dict[str, str]]:
    labels: dict[str, str] = {}
    limits: dict[str, str] = {}
    if not _SA_TOKEN.exists():
        return labels, limits
    for variable, key in (
        ("MY_CPU_LIMIT", "cpu"),
        ("MY_MEM_LIMIT", "memory"),
        ("MY_GPU_LIMIT", "nvidia.com/gpu"),
    ):
        value = os.environ.get(variable)
        if value:
            limits[key] = value
    try:
        text = _PODINFO_LABELS.read_text()
    except OSError:
        return labels, limits
    for line in text.strip().splitlines():
        key, _, raw = line.partition("=")
        try:
            labels[key.strip()] = shlex.split(raw.strip())[0]
        except (ValueError, IndexError):
            labels[key.strip()] = raw.strip().strip('"')
    return labels, limits


def package_version(distribution: str) -> str:
    """The installed version of ``distribution`` (e.g. an adapter's framework), or ``"unknown"``."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def _static_card() -> tuple[tuple[str, Any], ...]:
    cuda_version, gpu_model, gpu_count = _gpu()
    packages: dict[str, str] = {}
    for name in _KEY_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            packages[name] = importlib.metadata.version(name)
    labels, limits = _k8s_context()
    card: dict[str, Any] = {
        "gpu_model": gpu_model,
        "gpu_count": gpu_count,
        "gpu_driver_version": _gpu_driver(),
        "cpu_model": platform.processor() or None,
        "os_info": platform.platform(),
        "python_version": "{}.{}.{}".format(*sys.version_info[:3]),
        "cuda_version": cuda_version,
        "container_image": os.environ.get("EVALHUB_CONTAINER_IMAGE") or None,
        "key_packages": packages,
        "k8s_pod_labels": labels,
        "k8s_resource_limits": limits,
    }
    return tuple(card.items())


def capture_environment_card() -> dict[str, Any]:
    """The card as eval-hub-sdk serialises it (``model_dump(exclude_none=True)``), keys in its order."""
    captured = dict(_static_card())
    full: dict[str, Any] = {
        "gpu_model": captured["gpu_model"],
        "gpu_count": captured["gpu_count"],
        "gpu_driver_version": captured["gpu_driver_version"],
        "cpu_model": captured["cpu_model"],
        "total_memory_gb": None,
        "nvlink_topology": None,
        "os_info": captured["os_info"],
        "python_version": captured["python_version"],
        "cuda_version": captured["cuda_version"],
        "framework_name": None,
        "framework_version": None,
        "container_image": captured["container_image"],
        "key_packages": dict(captured["key_packages"]),
        "k8s_pod_labels": dict(captured["k8s_pod_labels"]),
        "k8s_resource_limits": dict(captured["k8s_resource_limits"]),
        "model_id": None,
        "model_version": None,
        "model_provider": None,
        "collection_id": None,
        "collection_version": None,
        "scorer_ids": [],
        "dataset_hash": None,
        "started_at": None,
        "completed_at": None,
        "aggregate_results": {},
        "per_task_results": {},
        "confidence_intervals": {},
        "autograder_bias": {},
        "oci_artifact_ref": None,
        "signature": None,
        "generated_by": None,
        "capture_completeness": None,
        "custom": {},
    }
    # Empty collections count as missing, as in eval-hub-sdk.
    populated = sum(1 for name in _COMPLETENESS_FIELDS if full[name] is not None and full[name] != {})
    full["capture_completeness"] = round(populated / _SPEC_FIELD_COUNT, 2)
    return {key: value for key, value in full.items() if value is not None}
