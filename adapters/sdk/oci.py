"""Pushing an adapter's result files as an OCI artifact (docs/compatibility.md), as eval-hub-sdk does.

The layout is built with ``olot`` and pushed with ``oras``; both are imported only when a push happens, so
adapters that never export pay nothing. Where the push goes:

- ``EVALHUB_SIDECAR_URL`` set: to that sidecar's host (plain HTTP for ``http://``), without client auth;
  the sidecar authenticates upstream.
- ``EVALHUB_MODE=k8s``: to the pod's sidecar at ``localhost:8080`` over plain HTTP, without client auth.
- otherwise: to ``oci_host`` itself, over HTTPS (plain HTTP when ``OCI_INSECURE`` is set), with the docker
  config at ``OCI_AUTH_CONFIG_PATH`` or the default one.

The returned reference always names the real ``oci_host``, never the proxy.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from adapters.sdk.errors import OCIPushError
from adapters.sdk.models import OCIArtifactResult, OCIArtifactSpec
from adapters.sdk.settings import AdapterSettings, EvalHubMode

__all__ = [
    "K8S_SIDECAR_HOST",
    "OCI_ANNOTATION_BENCHMARK_ID",
    "OCI_ANNOTATION_JOB_ID",
    "OCI_ANNOTATION_PROVIDER_ID",
    "OCI_ARTIFACT_TYPE",
    "ArtifactContext",
    "artifact_tag",
    "push_artifact",
]

logger = logging.getLogger("adapters.sdk")

OCI_ARTIFACT_TYPE = "application/vnd.eval-hub.github.io"
OCI_ANNOTATION_JOB_ID = "io.github.eval-hub.job_id"
OCI_ANNOTATION_BENCHMARK_ID = "io.github.eval-hub.benchmark_id"
OCI_ANNOTATION_PROVIDER_ID = "io.github.eval-hub.provider_id"
K8S_SIDECAR_HOST = "localhost:8080"


@dataclass(frozen=True)
class ArtifactContext:
    """The benchmark an artifact belongs to: it names the default tag and the annotations."""

    job_id: str
    benchmark_id: str
    provider_id: str | None = None
    benchmark_index: int = 0


def artifact_tag(context: ArtifactContext) -> str:
    """eval-hub-sdk's default tag: ``evalhub-`` + sha256 of ``job:provider:benchmark:index``."""
    key = f"{context.job_id}:{context.provider_id or ''}:{context.benchmark_id}:{context.benchmark_index}"
    return "evalhub-" + hashlib.sha256(key.encode()).hexdigest()


def _push_target(spec: OCIArtifactSpec, settings: AdapterSettings) -> tuple[str, bool, bool]:
    """(host to push to, plain HTTP?, authenticate from a docker config?)."""
    if settings.sidecar_url:
        parts = urlsplit(settings.sidecar_url)
        if not parts.netloc:
            raise OCIPushError(f"EVALHUB_SIDECAR_URL={settings.sidecar_url!r} has no host")
        return parts.netloc, parts.scheme != "https", False
    if settings.mode is EvalHubMode.K8S:
        return K8S_SIDECAR_HOST, True, False
    return spec.coordinates.oci_host, settings.oci_insecure, True


def push_artifact(
    spec: OCIArtifactSpec, context: ArtifactContext, settings: AdapterSettings
) -> OCIArtifactResult:
    """Build the artifact from ``spec.files_path`` and push it; raises :class:`OCIPushError` naming the
    reference on any failure."""
    source = Path(spec.files_path)
    if not source.is_dir():
        raise OCIPushError(f"files_path {source} is not a directory")
    coordinates = spec.coordinates
    tag = coordinates.oci_tag or artifact_tag(context)
    annotations = {OCI_ANNOTATION_JOB_ID: context.job_id, OCI_ANNOTATION_BENCHMARK_ID: context.benchmark_id}
    if context.provider_id:
        annotations[OCI_ANNOTATION_PROVIDER_ID] = context.provider_id
    annotations.update(coordinates.annotations)  # the user's annotations win
    reference = f"{coordinates.oci_host}/{coordinates.oci_repository}:{tag}"
    host, plain_http, use_docker_config = _push_target(spec, settings)
    push_ref = f"{host}/{coordinates.oci_repository}:{tag}"

    try:
        # Neither ships type information.
        import oras.provider  # type: ignore[import-untyped, unused-ignore]
        from olot.oci_artifact import create_simple_oci_artifact  # type: ignore[import-untyped]
        from oras.layout import Layout  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        raise OCIPushError(f"pushing {reference} needs the 'oras' and 'olot' packages: {exc}") from exc

    try:
        with tempfile.TemporaryDirectory(prefix="oci_layout_") as layout_dir:
            create_simple_oci_artifact(
                source_path=source,
                oci_layout_path=Path(layout_dir),
                artifact_type=OCI_ARTIFACT_TYPE,
                annotations=annotations,
            )
            registry = oras.provider.Registry(insecure=plain_http)
            if use_docker_config:
                registry.auth.hostname = coordinates.oci_host
                configs = (
                    [str(settings.oci_auth_config_path.absolute())] if settings.oci_auth_config_path else None
                )
                registry.auth.load_configs(coordinates.oci_host, configs)
            # "latest" names the layout's own tag on disk, not the destination tag.
            response = Layout(layout_dir).push_to_registry(provider=registry, target=push_ref, tag="latest")
    except OCIPushError:
        raise
    except Exception as exc:
        raise OCIPushError(f"pushing {reference} via {push_ref} failed: {type(exc).__name__}: {exc}") from exc
    if response is None or response.status_code not in (200, 201):
        status = "no response" if response is None else f"HTTP {response.status_code}: {response.text[:300]}"
        raise OCIPushError(f"pushing {reference} via {push_ref} failed: {status}")
    digest = response.headers.get("Docker-Content-Digest")
    if not digest:
        raise OCIPushError(
            f"the registry answered the manifest of {push_ref} without a Docker-Content-Digest"
        )
    logger.info("pushed %s (%s) via %s", reference, digest, host)
    return OCIArtifactResult(digest=digest, reference=f"{reference}@{digest}")
