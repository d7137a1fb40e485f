"""The Kubernetes objects of one launch, as plain dicts: a ``batch/v1`` Job queued by Kueue and its ConfigMap.

Pure: no client, no I/O. The layout is EvalHub's (docs/compatibility.md): ``job.json`` at ``/meta/job.json``, the
sidecar as a native sidecar answering on ``localhost:8080``, the namespace file where eval-hub-sdk reads
``X-Tenant``, ``<key>:ref`` tokens for the adapter while the model credentials Secret is mounted in the
sidecar only. What Assay adds (docs/compatibility.md): ``suspend: true`` with the Kueue queue and
priority labels set by us, ``activeDeadlineSeconds``, deterministic names so a redelivered dispatch creates
nothing twice, and labels that let the watcher find every object of an evaluation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from assay.core.jobspec import job_spec
from assay.core.plan import PlannedBenchmark
from assay.settings import Settings

SIDECAR_PORT = 8080
SIDECAR_HOST = "127.0.0.1"
"""The sidecar binds loopback only: the adapter is in the same pod, nothing else may reach it."""
SIDECAR_URL = f"http://localhost:{SIDECAR_PORT}"
"""eval-hub-sdk hard-codes ``localhost:8080`` for OCI pushes in k8s mode (docs/compatibility.md)."""

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_EVALUATION = "assay.dev/evaluation-id"
LABEL_INDEX = "assay.dev/benchmark-index"
LABEL_ATTEMPT = "assay.dev/attempt"
LABEL_PROVIDER = "assay.dev/provider-id"
LABEL_BENCHMARK = "assay.dev/benchmark-id"
LABEL_TENANT = "assay.dev/tenant"
LABEL_CREDENTIALS = "assay.dev/credentials"
"""A Secret a job may name (``model.auth.secret_ref``, ``exports.oci.k8s.connection``) carries this label
set to ``"true"`` in the tenant's own namespace; dispatch refuses any other (docs/cluster.md)."""
ANNOTATION_INDICES = "assay.dev/benchmark-indices"
ANNOTATION_BENCHMARKS = "assay.dev/benchmarks"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
MANAGER = "assay"

ADAPTER = "adapter"
SIDECAR = "sidecar"
MODEL_SECRET_MOUNT = "/var/run/secrets/model"
HUB_TOKEN_DIR = "/var/run/secrets/assay"
HUB_CA_DIR = "/etc/evalhub/hub-ca"
TEST_DATA_DIR = "/test_data"
TEST_DATA_SECRET_DIR = "/var/run/secrets/test-data"
INIT_METADATA_DIR = "/run/init-metadata"
INIT = "init"
HUB_CA_KEY = "service-ca.crt"  # the key OpenShift's service-CA operator injects into an annotated ConfigMap
MLFLOW_TOKEN_DIR = "/var/run/secrets/mlflow"  # docs/compatibility.md (mlflow-token)
MLFLOW_CA_DIR = "/etc/evalhub/mlflow-ca"
OCI_CONFIG_DIR = "/etc/evalhub/.docker"  # the sidecar's default docker_config_path lies in it
_REF_KEYS = ("api-key",)
_MAX_NAME = 52  # a Job's pods are named <job>-<5 characters>, and a pod name must stay a 63-character label
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_NAME_PATTERN = re.compile(rf"assay-(?P<evaluation>{_UUID})-(?P<index>\d+)-(?P<attempt>\d+)")
_TRIGGERS = ("ci", "registry", "sweep")
_PULL_POLICIES = {"if_not_present": "IfNotPresent", "always": "Always"}
_RESERVED_ENV = frozenset({"EVALHUB_MODE", "EVALHUB_JOB_SPEC_PATH", "EVALHUB_SIDECAR_URL"})
_HEALTH_CHECK = (
    "import urllib.request; "
    f"urllib.request.urlopen('http://{SIDECAR_HOST}:{SIDECAR_PORT}/health', timeout=2).close()"
)


@dataclass(frozen=True, slots=True)
class LaunchObjects:
    """What one launch creates, in this order: the Job, then its ConfigMap and its credential Secret (both
    owned by the Job). ``credential_secrets``: the user's Secrets the pod mounts (checked before)."""

    namespace: str
    name: str
    job: dict[str, Any]
    config_map: dict[str, Any]
    token_secret: dict[str, Any]
    credential_secrets: tuple[tuple[str, str], ...]
    local_queue: str
    indices: tuple[int, ...]
    attempt: int


CONFIG_MAP_MAX_BYTES = 1024 * 1024
"""The API server refuses a ConfigMap whose data is larger (``Too long: may not be more than 1048576 bytes``)."""


def config_map_bytes(config_map: Mapping[str, Any]) -> int:
    """The size the API server counts against :data:`CONFIG_MAP_MAX_BYTES`: keys and values of ``data``."""
    data = config_map.get("data") or {}
    return sum(len(str(k).encode()) + len(str(v).encode()) for k, v in data.items())


def job_name(evaluation_id: str, index: int, attempt: int) -> str:
    """The deterministic name of the Job (and ``<name>-spec`` of its ConfigMap) of a launch led by ``index``."""
    name = f"assay-{evaluation_id.lower()}-{index}-{attempt}"
    if len(name) <= _MAX_NAME and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        return name
    digest = hashlib.sha256(f"{evaluation_id}/{index}/{attempt}".encode()).hexdigest()[:24]
    return f"assay-{digest}-{index}-{attempt}"


def evaluation_of_name(name: str) -> str | None:
    """The evaluation a Job, its pods (``<job>-xxxxx``) or its Kueue Workload (``job-<job>-<hash>``) belong to."""
    match = _NAME_PATTERN.search(name)
    return match.group("evaluation") if match else None


def namespace_for(settings: Settings, tenant: str) -> str:
    return settings.k8s_namespace_template.replace("{tenant}", tenant)


def label_value(text: str) -> str:
    """``text`` as a valid label value (63 characters of ``[A-Za-z0-9-_.]``, alphanumeric at both ends)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return cleaned.strip("-_.")


HARDWARE_PROFILE_GROUP = "infrastructure.opendatahub.io"
HARDWARE_PROFILE_VERSION = "v1"
HARDWARE_PROFILE_DISABLED = "opendatahub.io/disabled"
"""The annotation by which OpenDataHub marks a HardwareProfile disabled (``"true"``)."""
HARDWARE_PROFILE_NOT_FOUND = "hardware_profile_not_found"
HARDWARE_PROFILE_DISABLED_CODE = "hardware_profile_disabled"
HARDWARE_PROFILE_INVALID = "hardware_profile_invalid"
# ASCII digits, as the API server reads a quantity (``\d`` alone would take any script's digits).
_QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[numk])?", re.ASCII)


class HardwareProfileRefused(ValueError):
    """A HardwareProfile a benchmark names cannot be used: ``code`` is EvalHub's (``hardware_profile_*``)."""

    def __init__(self, message: str, code: str, reason: str) -> None:
        super().__init__(message)
        self.message, self.code, self.reason = message, code, reason


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    """What an OpenDataHub ``HardwareProfile`` (``infrastructure.opendatahub.io/v1``) gives the adapter:
    requests and limits from its identifiers, and either a Kueue queue (``scheduling.type: Queue``) or node
    placement (``Node``)."""

    name: str
    requests: Mapping[str, str]
    limits: Mapping[str, str]
    queue: str | None = None
    priority_class: str | None = None
    node_selector: Mapping[str, str] | None = None
    tolerations: Sequence[Mapping[str, Any]] = ()


def read_hardware_profile(obj: Mapping[str, Any]) -> HardwareProfile:
    """The HardwareProfile object as the API server returns it, read as EvalHub does (docs/cluster.md): a
    CPU or Memory identifier's ``defaultCount`` is the request and its ``maxCount`` the limit; any other
    identifier (an Accelerator such as ``nvidia.com/gpu``) is an extended resource whose ``defaultCount`` is
    both. Raises :class:`HardwareProfileRefused` when it is disabled or cannot be read."""
    metadata = obj.get("metadata") or {}
    name = str(metadata.get("name") or "")
    annotations = metadata.get("annotations") or {}
    spec = obj.get("spec") or {}
    if str(annotations.get(HARDWARE_PROFILE_DISABLED, "")).lower() == "true" or spec.get("enabled") is False:
        raise HardwareProfileRefused(
            f"HardwareProfile {name!r} is disabled ({HARDWARE_PROFILE_DISABLED}); pick an enabled profile",
            HARDWARE_PROFILE_DISABLED_CODE,
            "Disabled",
        )

    def invalid(what: str) -> HardwareProfileRefused:
        return HardwareProfileRefused(
            f"HardwareProfile {name!r} cannot be used: {what}", HARDWARE_PROFILE_INVALID, "Invalid"
        )

    def quantity(value: object, where: str) -> str:
        text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
        if not _QUANTITY.fullmatch(text):
            raise invalid(f"{where} {value!r} is not a quantity")
        return text

    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    identifiers = spec.get("identifiers") or []
    if not isinstance(identifiers, list):
        raise invalid("spec.identifiers is not a list")
    for i, item in enumerate(identifiers):
        where = f"spec.identifiers[{i}]"
        resource = item.get("identifier") if isinstance(item, Mapping) else None
        if not isinstance(resource, str) or not resource:
            raise invalid(f"{where}.identifier is missing")
        default = quantity(item.get("defaultCount"), f"{where}.defaultCount")
        if item.get("resourceType") in ("CPU", "Memory"):
            requests[resource] = default
            if item.get("maxCount") is not None:
                limits[resource] = quantity(item["maxCount"], f"{where}.maxCount")
        else:  # an extended resource (an accelerator): a whole count, request equal to limit
            count = whole(default)
            if count is None:
                raise invalid(f"{where}.defaultCount {default!r} is not a whole count of {resource}")
            if count > 0:
                requests[resource] = limits[resource] = default
    scheduling = spec.get("scheduling") or {}
    kind = scheduling.get("type") if isinstance(scheduling, Mapping) else None
    if kind == "Queue":
        kueue = scheduling.get("kueue") or {}
        queue = kueue.get("localQueueName") if isinstance(kueue, Mapping) else None
        if not isinstance(queue, str) or not queue:
            raise invalid("scheduling.type is Queue but scheduling.kueue.localQueueName is missing")
        return HardwareProfile(name, requests, limits, queue, str(kueue.get("priorityClass") or "") or None)
    if kind == "Node":
        node = scheduling.get("node") or {}
        selector = node.get("nodeSelector") or {} if isinstance(node, Mapping) else {}
        tolerations = node.get("tolerations") or [] if isinstance(node, Mapping) else []
        if not isinstance(selector, Mapping) or not isinstance(tolerations, list):
            raise invalid("scheduling.node has no valid nodeSelector or tolerations")
        return HardwareProfile(
            name,
            requests,
            limits,
            node_selector={str(k): str(v) for k, v in selector.items()} or None,
            tolerations=[dict(t) for t in tolerations if isinstance(t, Mapping)],
        )
    if kind is not None:
        raise invalid(f"scheduling.type {kind!r} is neither Queue nor Node")
    return HardwareProfile(name, requests, limits)


def local_queue_for(
    planned: PlannedBenchmark,
    request: Mapping[str, Any],
    settings: Settings,
    profile: HardwareProfile | None = None,
) -> str:
    """A queue-backed HardwareProfile's queue, the benchmark's queue (its own ``hardware_config``, else the
    job's), a hardware profile's queue from ``ASSAY_K8S_HARDWARE_PROFILE_QUEUES``, the job's top-level
    ``queue``, else the tenant default. EvalHub's order, with the default made explicit."""
    if profile is not None and profile.queue:
        return profile.queue
    hardware = planned.hardware_config or {}
    queue = hardware.get("queue")
    if isinstance(queue, Mapping) and queue.get("name"):
        return str(queue["name"])
    profile = hardware.get("hardware_profile_name")
    if profile and profile in settings.k8s_hardware_profile_queues:
        return settings.k8s_hardware_profile_queues[str(profile)]
    top = request.get("queue")
    if isinstance(top, Mapping) and top.get("name"):
        return str(top["name"])
    return settings.k8s_local_queue


def trigger_of(request: Mapping[str, Any]) -> str:
    """Who asked for the job, from ``custom.trigger`` (set by the CI and registry ingress): ci, registry,
    sweep, or user."""
    custom = request.get("custom")
    trigger = custom.get("trigger") if isinstance(custom, Mapping) else None
    return str(trigger) if trigger in _TRIGGERS else "user"


def priority_class_for(request: Mapping[str, Any], settings: Settings) -> str | None:
    return settings.k8s_priority_classes.get(trigger_of(request))


def _resources(
    planned: PlannedBenchmark, profile: HardwareProfile | None = None
) -> dict[str, dict[str, str]]:
    """The adapter's requests and limits: the provider's ``runtime.k8s``, then the HardwareProfile's, then the
    job's ``hardware_config``, each winning where it says something (EvalHub's order). A GPU request equals
    its limit (extended resources must)."""
    k8s = planned.runtime.k8s or {}
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    for resource in ("cpu", "memory"):
        if k8s.get(f"{resource}_request"):
            requests[resource] = str(k8s[f"{resource}_request"])
        if k8s.get(f"{resource}_limit"):
            limits[resource] = str(k8s[f"{resource}_limit"])
    if profile is not None:
        requests.update(profile.requests)
        limits.update(profile.limits)
    hardware = planned.hardware_config or {}
    for resource in ("cpu", "memory"):
        pair = hardware.get(resource)
        if isinstance(pair, Mapping):
            if pair.get("request"):
                requests[resource] = str(pair["request"])
            if pair.get("limit"):
                limits[resource] = str(pair["limit"])
    gpu_name, gpu_count = None, 0
    if isinstance(k8s.get("gpu"), Mapping):
        gpu_name, gpu_count = (
            str(k8s["gpu"].get("resource", "nvidia.com/gpu")),
            int(k8s["gpu"].get("count", 1)),
        )
    if isinstance(hardware.get("gpu"), Mapping):
        gpu_name = str(hardware["gpu"].get("name", gpu_name or "nvidia.com/gpu"))
        gpu_count = int(hardware["gpu"].get("count", 1))
    if gpu_name and gpu_count > 0:
        requests[gpu_name] = limits[gpu_name] = str(gpu_count)
    out: dict[str, dict[str, str]] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _adapter_env(planned: PlannedBenchmark, namespace: str) -> list[dict[str, str]]:
    env = [
        {"name": "EVALHUB_MODE", "value": "k8s"},
        {"name": "EVALHUB_JOB_SPEC_PATH", "value": "/meta/job.json"},
        {"name": "EVALHUB_SIDECAR_URL", "value": SIDECAR_URL},
        {"name": "MLFLOW_TRACKING_URI", "value": SIDECAR_URL},
        {"name": "MLFLOW_WORKSPACE", "value": namespace},
    ]
    seen = {e["name"] for e in env}
    provided: dict[str, str] = {}
    for item in (planned.runtime.k8s or {}).get("env", []):
        name = str(item.get("name", ""))
        if name and name not in _RESERVED_ENV:
            provided[name] = str(item.get("value", ""))  # the last one of a repeated name wins
    for name, value in provided.items():
        if name in seen:
            env = [e for e in env if e["name"] != name]
        env.append({"name": name, "value": value})
    return env


def _model_urls(request: Mapping[str, Any]) -> tuple[str, str | None]:
    """(the real model URL for the sidecar, the URL the adapter gets: the sidecar with the path kept)."""
    model = request.get("model") or {}
    url = str(model.get("url") or "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return url, None
    return url, urlunsplit(("http", f"localhost:{SIDECAR_PORT}", parts.path, parts.query, ""))


def _projected_token(name: str, audience: str | None) -> dict[str, Any]:
    token: dict[str, Any] = {"path": "token", "expirationSeconds": 3600}
    if audience:
        token["audience"] = audience
    return {"name": name, "projected": {"sources": [{"serviceAccountToken": token}]}}


def _oci_connection(request: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(the job's OCI registry host, the dockerconfigjson Secret named by ``exports.oci.k8s.connection``)."""
    oci = (request.get("exports") or {}).get("oci") or {}
    host = (oci.get("coordinates") or {}).get("oci_host")
    connection = (oci.get("k8s") or {}).get("connection")
    return (str(host) if host else None, str(connection) if connection else None)


class TestDataUnsupported(ValueError):
    """The benchmark's test data needs the init container, and this hub has no image for it."""

    __test__ = False


class _DataWiring(NamedTuple):
    """What a benchmark's ``test_data_ref`` adds to its pod."""

    init_containers: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    adapter_mounts: list[dict[str, Any]]
    sidecar_mounts: list[dict[str, Any]]
    secret: str | None


class _ExportsWiring(NamedTuple):
    """What the job's exports add to the sidecar: its config sections, volumes and mounts."""

    config: dict[str, Any]
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]


def _test_data_wiring(planned: PlannedBenchmark, settings: Settings) -> _DataWiring:
    """What ``test_data_ref`` adds to the pod
    (docs/compatibility.md): a PVC mounted read-only at ``/test_data``; S3, git or Hugging Face downloaded
    there by the init container (``ASSAY_K8S_DATA_INIT_IMAGE``) into an emptyDir."""
    ref = planned.test_data_ref or {}
    mount = {"name": "test-data", "mountPath": TEST_DATA_DIR, "readOnly": True}
    pvc = ref.get("pvc")
    if isinstance(pvc, Mapping):
        claim = {"claimName": str(pvc["claim_name"]), "readOnly": True}
        if pvc.get("sub_path"):
            mount = {**mount, "subPath": str(pvc["sub_path"])}
        return _DataWiring([], [{"name": "test-data", "persistentVolumeClaim": claim}], [mount], [], None)
    source = next((kind for kind in ("s3", "git", "hf") if isinstance(ref.get(kind), Mapping)), None)
    if source is None:
        return _DataWiring([], [], [], [], None)
    if not settings.k8s_data_init_image:
        raise TestDataUnsupported(
            f"benchmark {planned.id!r} takes its test data from {source}, which needs the test-data init "
            "container, and this hub has no ASSAY_K8S_DATA_INIT_IMAGE"
        )
    found = ref[source]
    names = {
        "s3": {"TEST_DATA_S3_BUCKET": "bucket", "TEST_DATA_S3_KEY": "key"},
        "git": {"TEST_DATA_GIT_URL": "url", "TEST_DATA_GIT_REF": "ref", "TEST_DATA_GIT_SUBPATH": "sub_path"},
        "hf": {
            "TEST_DATA_HF_REPO_ID": "repo_id",
            "TEST_DATA_HF_REVISION": "revision",
            "TEST_DATA_HF_SUBPATH": "sub_path",
        },
    }[source]
    env = [{"name": name, "value": str(found[key])} for name, key in names.items() if found.get(key)]
    volumes: list[dict[str, Any]] = [{"name": "test-data", "emptyDir": {}}]
    init_mounts: list[dict[str, Any]] = [{"name": "test-data", "mountPath": TEST_DATA_DIR}]
    sidecar_mounts: list[dict[str, Any]] = []
    secret = str(found["secret_ref"]) if found.get("secret_ref") else None
    if secret:
        volumes.append({"name": "test-data-credentials", "secret": {"secretName": secret}})
        init_mounts.append(
            {"name": "test-data-credentials", "mountPath": TEST_DATA_SECRET_DIR, "readOnly": True}
        )
    if source == "git":  # the init container records the commit it fetched
        volumes.append({"name": "init-metadata", "emptyDir": {}})
        init_mounts.append({"name": "init-metadata", "mountPath": INIT_METADATA_DIR})
        sidecar_mounts.append({"name": "init-metadata", "mountPath": INIT_METADATA_DIR, "readOnly": True})
    init = {
        "name": INIT,
        "image": settings.k8s_data_init_image,
        "imagePullPolicy": settings.k8s_image_pull_policy,
        "env": env,
        "volumeMounts": init_mounts,
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        },
        "securityContext": _security_context(),
    }
    return _DataWiring([init], volumes, [mount], sidecar_mounts, secret)


def _exports_wiring(request: Mapping[str, Any], settings: Settings, namespace: str) -> _ExportsWiring:
    """The sidecar's ``mlflow`` and ``oci`` config sections, with the volumes and sidecar mounts they need.

    Only the sidecar holds these credentials (docs/compatibility.md): the adapter reaches MLflow and the registry
    through it, unauthenticated on loopback.
    """
    mlflow: dict[str, Any] = {"workspace": namespace}
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if settings.mlflow_tracking_uri:
        mlflow.update(tracking_uri=settings.mlflow_tracking_uri, token_path=f"{MLFLOW_TOKEN_DIR}/token")
        volumes.append(_projected_token("mlflow-token", settings.k8s_mlflow_token_audience))
        mounts.append({"name": "mlflow-token", "mountPath": MLFLOW_TOKEN_DIR, "readOnly": True})
        if settings.k8s_mlflow_ca_config_map:
            mlflow["ca_cert_path"] = f"{MLFLOW_CA_DIR}/ca.crt"
            items = [{"key": "ca.crt", "path": "ca.crt"}]
            volumes.append(
                {
                    "name": "mlflow-ca",
                    "configMap": {"name": settings.k8s_mlflow_ca_config_map, "items": items},
                }
            )
            mounts.append({"name": "mlflow-ca", "mountPath": MLFLOW_CA_DIR, "readOnly": True})
    sections: dict[str, Any] = {"mlflow": mlflow}
    host, connection = _oci_connection(request)
    if host:
        sections["oci"] = {"plain_http": host in settings.oci_insecure_registries}
    if connection:
        items = [{"key": ".dockerconfigjson", "path": "config.json"}]
        volumes.append({"name": "oci-credentials", "secret": {"secretName": connection, "items": items}})
        mounts.append({"name": "oci-credentials", "mountPath": OCI_CONFIG_DIR, "readOnly": True})
    return _ExportsWiring(sections, volumes, mounts)


def build_launch(
    *,
    evaluation_id: str,
    tenant: str,
    request: Mapping[str, Any],
    runs: Sequence[tuple[PlannedBenchmark, int]],
    settings: Settings,
    timeout_seconds: float,
    launch_token: str,
    profile: HardwareProfile | None = None,
    trace_env: Mapping[str, str] | None = None,
) -> LaunchObjects:
    """The Job, ConfigMap and credential Secret that run ``runs`` (one benchmark, or a provider's group led by
    the first). ``launch_token``: the launch's credential (``assay.core.credentials``), for the sidecar only.
    ``profile``: the HardwareProfile the lead's ``hardware_config.hardware_profile_name`` names, as read
    (resources, queue and priority, node placement). ``trace_env``: the launch span's ``TRACEPARENT`` (and
    ``TRACESTATE``) while the hub traces, for both containers: the sidecar's callbacks join the trace."""
    (lead, attempt), *others = runs
    namespace = namespace_for(settings, tenant)
    name = job_name(evaluation_id, lead.index, attempt)
    image = (lead.runtime.k8s or {}).get("image")
    if not image:
        raise ValueError(f"provider {lead.provider_id!r} has no runtime.k8s.image")
    queue = local_queue_for(lead, request, settings, profile)
    priority = (profile.priority_class if profile is not None else None) or priority_class_for(
        request, settings
    )
    real_model_url, adapter_model_url = _model_urls(request)
    spec = job_spec(
        evaluation_id,
        request,
        lead,
        callback_url=SIDECAR_URL,
        model_url=adapter_model_url,
        group=[p for p, _ in others],
    )
    model = request.get("model") or {}
    secret_ref = (model.get("auth") or {}).get("secret_ref") if isinstance(model, Mapping) else None
    exports = _exports_wiring(request, settings, namespace)
    test_data = _test_data_wiring(lead, settings)
    sidecar_config = _sidecar_config(
        request, settings, exports.config, real_model_url, timeout_seconds, has_secret=bool(secret_ref)
    )
    indices = tuple(p.index for p, _ in runs)
    labels, annotations = _labels(evaluation_id, tenant, runs)
    config_name, token_name = f"{name}-spec", f"{name}-token"
    metadata = {"namespace": namespace, "labels": labels, "annotations": annotations}
    config_map = _config_map(config_name, metadata, spec, sidecar_config, with_refs=bool(secret_ref))
    token_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": token_name, **metadata},
        "type": "Opaque",
        "data": {"token": base64.b64encode(launch_token.encode("ascii")).decode("ascii")},
    }
    volumes, adapter_mounts, sidecar_mounts = _volumes(
        config_name, token_name, settings, str(secret_ref) if secret_ref else None, exports, test_data
    )
    containers = (
        _sidecar_container(settings, sidecar_mounts),
        _adapter_container(lead, str(image), namespace, settings, adapter_mounts, profile),
    )
    if trace_env:
        extra = [{"name": k, "value": v} for k, v in trace_env.items()]
        for container in containers:
            container["env"] = [*container.get("env", []), *extra]
    pod_spec = _pod_spec(settings, profile, test_data.init_containers, containers, volumes)
    job_labels = {**labels, QUEUE_LABEL: queue, **({PRIORITY_LABEL: priority} if priority else {})}
    job = _job(name, namespace, job_labels, labels, annotations, pod_spec, timeout_seconds, settings)
    _, connection = _oci_connection(request)
    credentials = [("model.auth.secret_ref", str(secret_ref))] if secret_ref else []
    if connection:
        credentials.append(("exports.oci.k8s.connection", connection))
    if test_data.secret:
        credentials.append((f"benchmarks[{lead.index}].test_data_ref", test_data.secret))
    return LaunchObjects(
        namespace=namespace,
        name=name,
        job=job,
        config_map=config_map,
        token_secret=token_secret,
        credential_secrets=tuple(credentials),
        local_queue=queue,
        indices=indices,
        attempt=attempt,
    )


def _config_map(
    name: str,
    metadata: Mapping[str, Any],
    spec: Mapping[str, Any],
    sidecar_config: Mapping[str, Any],
    *,
    with_refs: bool,
) -> dict[str, Any]:
    """The launch's ConfigMap: the adapter's job spec, the sidecar's config and, for a model credential,
    the ``<key>:ref`` placeholders the adapter holds instead of it (the sidecar swaps in the real secret,
    docs/compatibility.md)."""
    data = {
        "job.json": json.dumps(spec, indent=2, sort_keys=True) + "\n",
        "sidecar_config.json": json.dumps(sidecar_config, indent=2, sort_keys=True) + "\n",
    }
    if with_refs:
        data.update({key: f"{key}:ref" for key in _REF_KEYS})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **metadata}, "data": data}


def _pod_spec(
    settings: Settings,
    profile: HardwareProfile | None,
    init_containers: list[dict[str, Any]],
    containers: tuple[dict[str, Any], dict[str, Any]],
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    """The pod: the test-data download first (it ends), then the native sidecar (it stays), as in EvalHub;
    the adapter; the profile's node placement."""
    sidecar, adapter = containers
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # The adapter gets no API token; the sidecar gets its own projected one to call the hub with.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [*init_containers, sidecar],
        "containers": [adapter],
        "volumes": volumes,
    }
    if settings.k8s_service_account:
        pod_spec["serviceAccountName"] = settings.k8s_service_account
    if profile is not None and profile.node_selector:
        pod_spec["nodeSelector"] = dict(profile.node_selector)
    if profile is not None and profile.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in profile.tolerations]
    return pod_spec


def _job(
    name: str,
    namespace: str,
    job_labels: dict[str, str],
    labels: dict[str, str],
    annotations: dict[str, str],
    pod_spec: dict[str, Any],
    timeout_seconds: float,
    settings: Settings,
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": job_labels, "annotations": annotations},
        "spec": {
            # Created suspended with the queue label: Kueue admits it, never we (docs/compatibility.md).
            "suspend": True,
            "backoffLimit": 0,  # the hub decides retries, with fingerprints (POST .../retry)
            "completions": 1,
            "parallelism": 1,
            # Counted from admission: Kubernetes restarts the timer when a suspended Job resumes.
            "activeDeadlineSeconds": max(1, math.ceil(timeout_seconds)),
            "ttlSecondsAfterFinished": settings.k8s_ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
        },
    }


def _sidecar_config(
    request: Mapping[str, Any],
    settings: Settings,
    exports_config: Mapping[str, Any],
    model_url: str,
    timeout_seconds: float,
    *,
    has_secret: bool,
) -> dict[str, Any]:
    """The sidecar's configuration: the hub to report to, the exports' credentials, the real model endpoint."""
    model = request.get("model") or {}
    return {
        "base_url": SIDECAR_URL,
        "local_mode": False,
        "job_spec_path": "/meta/job.json",
        # The watcher reports a benchmark that ended without a result, with the reason its pod ended; the
        # sidecar's own shutdown report would race it and win with the vaguer results_not_delivered.
        "report_undelivered": False,
        "eval_hub": {
            "base_url": settings.callback_base_url(),
            "token_path": f"{HUB_TOKEN_DIR}/token",
            **({"ca_cert_path": f"{HUB_CA_DIR}/{HUB_CA_KEY}"} if settings.k8s_hub_ca_config_map else {}),
        },
        **exports_config,
        "model": {
            "url": model_url,
            "name": str(model.get("name") or "") if isinstance(model, Mapping) else "",
            "http_timeout": f"{int(timeout_seconds)}s",
            **({"auth_secret_mount_path": MODEL_SECRET_MOUNT} if has_secret else {}),
        },
        "cache": {"dir": "/data/model-cache"},
    }


def _labels(
    evaluation_id: str, tenant: str, runs: Sequence[tuple[PlannedBenchmark, int]]
) -> tuple[dict[str, str], dict[str, str]]:
    """The labels (selectable, bounded values) and annotations (exact values) of every object of a launch."""
    (lead, attempt), *_ = runs
    labels = {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_COMPONENT: "evaluation-job",
        LABEL_EVALUATION: label_value(evaluation_id),
        LABEL_INDEX: str(lead.index),
        LABEL_ATTEMPT: str(attempt),
        LABEL_PROVIDER: label_value(lead.provider_id),
        LABEL_BENCHMARK: label_value(lead.id),
        LABEL_TENANT: label_value(tenant),
    }
    annotations = {
        LABEL_EVALUATION: evaluation_id,
        LABEL_PROVIDER: lead.provider_id,
        ANNOTATION_INDICES: ",".join(str(p.index) for p, _ in runs),
        ANNOTATION_BENCHMARKS: json.dumps([p.id for p, _ in runs]),
    }
    return labels, annotations


def _volumes(
    config_name: str,
    token_name: str,
    settings: Settings,
    secret_ref: str | None,
    exports: _ExportsWiring,
    test_data: _DataWiring,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes, the adapter's mounts and the sidecar's: only the sidecar sees credentials."""
    adapter_mounts: list[dict[str, Any]] = [
        {"name": "job-spec", "mountPath": "/meta/job.json", "subPath": "job.json", "readOnly": True},
        {"name": "data", "mountPath": "/data"},
        {"name": "shared", "mountPath": "/shared"},
        {
            "name": "pod-namespace",
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "readOnly": True,
        },
    ]
    sidecar_mounts: list[dict[str, Any]] = [
        {"name": "job-spec", "mountPath": "/meta", "readOnly": True},
        {"name": "data", "mountPath": "/data"},
        {"name": "shared", "mountPath": "/shared"},
        {"name": "hub-token", "mountPath": HUB_TOKEN_DIR, "readOnly": True},
        *exports.mounts,
        *test_data.sidecar_mounts,
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "job-spec", "configMap": {"name": config_name}},
        {"name": "data", "emptyDir": {}},
        {"name": "shared", "emptyDir": {}},
        {
            "name": "pod-namespace",
            "projected": {
                "sources": [
                    {
                        "downwardAPI": {
                            "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                        }
                    }
                ]
            },
        },
        # The launch's own credential (a Secret per launch, owned by the Job): it proves this launch's events
        # to the callback and nothing else. Mounted into the sidecar only.
        {
            "name": "hub-token",
            "secret": {"secretName": token_name, "items": [{"key": "token", "path": "token"}]},
        },
        *exports.volumes,
        *test_data.volumes,
    ]
    if settings.k8s_hub_ca_config_map:
        items = [{"key": HUB_CA_KEY, "path": HUB_CA_KEY}]
        volumes.append(
            {"name": "hub-ca", "configMap": {"name": settings.k8s_hub_ca_config_map, "items": items}}
        )
        sidecar_mounts.append({"name": "hub-ca", "mountPath": HUB_CA_DIR, "readOnly": True})
    if secret_ref:
        volumes.append({"name": "model-auth", "secret": {"secretName": secret_ref}})
        volumes.append(
            {
                "name": "model-auth-refs",
                "configMap": {"name": config_name, "items": [{"key": k, "path": k} for k in _REF_KEYS]},
            }
        )
        sidecar_mounts.append({"name": "model-auth", "mountPath": MODEL_SECRET_MOUNT, "readOnly": True})
        adapter_mounts.append({"name": "model-auth-refs", "mountPath": MODEL_SECRET_MOUNT, "readOnly": True})
    return volumes, [*adapter_mounts, *test_data.adapter_mounts], sidecar_mounts


def _adapter_container(
    lead: PlannedBenchmark,
    image: str,
    namespace: str,
    settings: Settings,
    mounts: list[dict[str, Any]],
    profile: HardwareProfile | None,
) -> dict[str, Any]:
    k8s = lead.runtime.k8s or {}
    adapter: dict[str, Any] = {
        "name": ADAPTER,
        "image": image,
        "imagePullPolicy": _PULL_POLICIES.get(
            str(k8s.get("image_pull_policy")), settings.k8s_image_pull_policy
        ),
        "env": _adapter_env(lead, namespace),
        "volumeMounts": mounts,
        "securityContext": _security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if k8s.get("entrypoint"):
        adapter["command"] = [str(part) for part in k8s["entrypoint"]]
    resources = _resources(lead, profile)
    if resources:
        adapter["resources"] = resources
    return adapter


def _sidecar_container(settings: Settings, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": SIDECAR,
        "image": settings.k8s_sidecar_image,
        "imagePullPolicy": settings.k8s_image_pull_policy,
        # Loopback only: the adapter reaches it on localhost; no other pod can (and it declares no port).
        "command": [
            "python",
            "-m",
            "adapters.sidecar",
            "--config",
            "/meta/sidecar_config.json",
            "--host",
            SIDECAR_HOST,
            "--port",
            str(SIDECAR_PORT),
        ],
        "restartPolicy": "Always",  # a native sidecar (KEP-753): it outlives the adapter, never blocks the Job
        # The kubelet probes the pod IP, where nothing listens: the probe runs inside the container.
        "startupProbe": {
            "exec": {"command": ["python", "-c", _HEALTH_CHECK]},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "512Mi"},
        },
        "volumeMounts": mounts,
        "securityContext": _security_context(),
    }


def owned_by(obj: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` with an owner reference to the created ``job``: garbage-collected with it (TTL, delete)."""
    metadata = dict(obj["metadata"])
    metadata["ownerReferences"] = [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job["metadata"]["name"],
            "uid": job["metadata"]["uid"],
            "controller": False,
            "blockOwnerDeletion": False,
        }
    ]
    return {**obj, "metadata": metadata}


def whole(text: object) -> int | None:
    """``text`` as a whole number when it is one in at most 18 ASCII digits, else None (``str.isdigit`` also takes
    ``"³"``, which ``int`` refuses, as it does a number over 4300 digits)."""
    value = str(text).strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def launch_indices(job: Mapping[str, Any]) -> tuple[int, ...]:
    """The benchmark indices a created Job runs (its lead, and the group members)."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(ANNOTATION_INDICES)
    if text:
        return tuple(index for part in str(text).split(",") if (index := whole(part)) is not None)
    labels = (job.get("metadata") or {}).get("labels") or {}
    lead = whole(labels.get(LABEL_INDEX, ""))
    return () if lead is None else (lead,)


__all__ = [
    "ADAPTER",
    "CONFIG_MAP_MAX_BYTES",
    "HARDWARE_PROFILE_DISABLED",
    "HARDWARE_PROFILE_DISABLED_CODE",
    "HARDWARE_PROFILE_GROUP",
    "HARDWARE_PROFILE_INVALID",
    "HARDWARE_PROFILE_NOT_FOUND",
    "HARDWARE_PROFILE_VERSION",
    "LABEL_ATTEMPT",
    "LABEL_CREDENTIALS",
    "LABEL_EVALUATION",
    "LABEL_INDEX",
    "PRIORITY_LABEL",
    "QUEUE_LABEL",
    "SIDECAR",
    "SIDECAR_URL",
    "HardwareProfile",
    "HardwareProfileRefused",
    "LaunchObjects",
    "TestDataUnsupported",
    "build_launch",
    "config_map_bytes",
    "evaluation_of_name",
    "job_name",
    "label_value",
    "launch_indices",
    "local_queue_for",
    "namespace_for",
    "oversized_launch",
    "owned_by",
    "priority_class_for",
    "read_hardware_profile",
    "trigger_of",
    "whole",
]


def oversized_launch(
    *,
    tenant: str,
    request: Mapping[str, Any],
    groups: Sequence[Sequence[PlannedBenchmark]],
    settings: Settings,
) -> tuple[str, int] | None:
    """(the request field that weighs most, the ConfigMap's size) when a launch of these groups would build a
    ConfigMap the API server refuses (over :data:`CONFIG_MAP_MAX_BYTES`); None when every one fits. Submit
    calls this, so the job is refused (400) before it is accepted rather than failing at dispatch."""
    placeholder = "00000000-0000-0000-0000-000000000000"
    for group in groups:
        try:
            objects = build_launch(
                evaluation_id=placeholder,
                tenant=tenant,
                request=request,
                runs=[(planned, 1) for planned in group],
                settings=settings,
                timeout_seconds=group[0].timeout_seconds or settings.benchmark_timeout_seconds,
                launch_token="",
            )
        except TestDataUnsupported:
            continue  # dispatch refuses it with test_data_unsupported

        size = config_map_bytes(objects.config_map)
        if size > CONFIG_MAP_MAX_BYTES:
            weights = {
                key: len(json.dumps(value)) for key, value in request.items() if key not in ("benchmarks",)
            }
            for planned in group:
                weights[f"benchmarks[{planned.index}].parameters"] = len(json.dumps(planned.parameters))
            return max(weights, key=lambda k: weights[k]), size
    return None
