"""OCI artifacts of finished evaluations, pushed and pulled with oras-py (imported only here, and only when
a registry is first used).

An artifact is a manifest with an ``artifactType``, a config blob and one layer per file (titled with
``org.opencontainers.image.title``). Credentials come from a docker config file (a mounted Kubernetes
``dockerconfigjson`` Secret is the same file); plain HTTP only for the hosts named insecure. oras's own
retry loop (five tries, sleeping up to 81 s between them) is bypassed: a failed push fails at once and the
sweep retries it with backoff.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ANNOTATION_BENCHMARK_ID",
    "ANNOTATION_JOB_ID",
    "ANNOTATION_PROVIDER_ID",
    "ANNOTATION_SCORE",
    "ArtifactFile",
    "OciRegistry",
    "PulledArtifact",
    "PushFailed",
    "PushedArtifact",
]

ANNOTATION_JOB_ID = "io.github.eval-hub.job_id"
ANNOTATION_BENCHMARK_ID = "io.github.eval-hub.benchmark_id"
ANNOTATION_PROVIDER_ID = "io.github.eval-hub.provider_id"
ANNOTATION_SCORE = "dev.assay.score"
_TITLE = "org.opencontainers.image.title"
_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
_CONFIG_TYPE = "application/vnd.oci.artifact.config.v1+json"  # what EvalHub's evaluation card uses


class PushFailed(RuntimeError):
    """The registry could not be reached or refused the artifact."""


@dataclass(frozen=True, slots=True)
class ArtifactFile:
    name: str
    data: bytes
    media_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class PushedArtifact:
    reference: str  # host/repository:tag@digest
    digest: str  # of the manifest
    tag: str


@dataclass(frozen=True, slots=True)
class PulledArtifact:
    digest: str
    manifest: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


class OciRegistry:
    """Pushes to and pulls from OCI registries (any host; the job's coordinates name it)."""

    def __init__(
        self,
        *,
        auth_config_path: Path | None = None,
        insecure_hosts: Sequence[str] = (),
        ca_cert_path: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._auth_config = auth_config_path
        self._insecure = frozenset(insecure_hosts)
        self._tls_verify: bool | str = str(ca_cert_path) if ca_cert_path is not None else True
        self._timeout = timeout

    def _plain_http(self, host: str) -> bool:
        return host in self._insecure or "*" in self._insecure  # "*": every registry (OCI_INSECURE)

    def _scheme(self, host: str) -> str:
        return "http" if self._plain_http(host) else "https"

    def _client(self, host: str) -> Any:
        """An oras Registry for ``host``: Basic auth when the registry challenges with Basic (htpasswd),
        the token flow otherwise; credentials from the docker config; no retry loop; a request timeout."""
        import httpx  # on the first push, as oras: the hub's start does not wait for either
        import oras.provider  # type: ignore[import-untyped, unused-ignore]

        backend = "token"
        try:
            with httpx.Client(verify=self._tls_verify, timeout=self._timeout) as probe:
                challenge = probe.get(f"{self._scheme(host)}://{host}/v2/").headers.get(
                    "www-authenticate", ""
                )
        except httpx.HTTPError as exc:
            raise PushFailed(f"registry {host} is unreachable: {type(exc).__name__}: {exc}") from exc
        if challenge.lower().startswith("basic"):
            backend = "basic"
        registry = oras.provider.Registry(
            hostname=host, insecure=self._plain_http(host), tls_verify=self._tls_verify, auth_backend=backend
        )
        unretried = oras.provider.Registry.do_request.__wrapped__
        registry.do_request = functools.partial(unretried, registry)
        registry.session.request = functools.partial(registry.session.request, timeout=self._timeout)
        registry.auth.hostname = host
        configs = [str(self._auth_config)] if self._auth_config is not None else None
        registry.auth.load_configs(f"{host}/_", configs)
        if backend == "basic" and getattr(registry.auth, "_basic_auth", None) is None:
            where = self._auth_config or "the default docker config"
            raise PushFailed(f"registry {host} asks for credentials (HTTP 401) and {where} has none for it")
        return registry

    def push(
        self,
        host: str,
        repository: str,
        tag: str,
        files: Sequence[ArtifactFile],
        *,
        artifact_type: str,
        annotations: Mapping[str, str],
    ) -> PushedArtifact:
        """Push ``files`` as one artifact and return its reference with the manifest digest the registry
        computed. Pushing the same content again yields the same digest."""
        target = f"{host}/{repository}:{tag}"
        try:
            import oras.oci  # type: ignore[import-untyped, unused-ignore]

            registry = self._client(host)
            with tempfile.TemporaryDirectory(prefix="assay-oci-") as work:
                config_path = Path(work) / "config.json"
                config_path.write_bytes(b"{}")
                config = {
                    "mediaType": _CONFIG_TYPE,
                    "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(),
                    "size": 2,
                }
                layers = []
                for number, item in enumerate(files):
                    path = Path(work) / f"layer-{number}"
                    path.write_bytes(item.data)
                    layer = oras.oci.NewLayer(str(path), media_type=item.media_type)
                    layer["annotations"] = {_TITLE: item.name}
                    layers.append((path, layer))
                for path, layer in [(config_path, config), *layers]:
                    answer = registry.upload_blob(str(path), target, layer)
                    _check(answer, f"uploading a blob of {target}")
                manifest = {
                    "schemaVersion": 2,
                    "mediaType": _MANIFEST_TYPE,
                    "artifactType": artifact_type,
                    "config": config,
                    "layers": [layer for _, layer in layers],
                    "annotations": dict(annotations),
                }
                answer = registry.upload_manifest(manifest, registry.get_container(target))
                _check(answer, f"putting the manifest of {target}")
        except PushFailed:
            raise
        except Exception as exc:
            raise PushFailed(f"pushing {target} failed: {type(exc).__name__}: {exc}") from exc
        digest = answer.headers.get("Docker-Content-Digest")
        if not digest:
            raise PushFailed(
                f"the registry answered the manifest of {target} without a Docker-Content-Digest"
            )
        return PushedArtifact(reference=f"{target}@{digest}", digest=digest, tag=tag)

    def pull(self, reference: str) -> PulledArtifact:
        """Fetch an artifact (``host/repository:tag`` or ``...@sha256:...``): its manifest digest, checked
        against the digest in the reference, and every layer by its title, each checked against its digest."""
        host = reference.split("/", 1)[0]
        registry = self._client(host)
        container = registry.get_container(reference)
        answer = registry.do_request(
            f"{registry.prefix}://{container.manifest_url()}", "GET", headers={"Accept": _MANIFEST_TYPE}
        )
        _check(answer, f"getting the manifest of {reference}")
        digest = "sha256:" + hashlib.sha256(answer.content).hexdigest()
        if "@" in reference and reference.rsplit("@", 1)[1] != digest:
            raise PushFailed(f"{reference}: the registry served a manifest with digest {digest}")
        manifest = json.loads(answer.content)
        files: dict[str, bytes] = {}
        for layer in manifest.get("layers", []):
            blob = registry.get_blob(container, layer["digest"])
            _check(blob, f"getting blob {layer['digest']} of {reference}")
            if "sha256:" + hashlib.sha256(blob.content).hexdigest() != layer["digest"]:
                raise PushFailed(f"{reference}: blob {layer['digest']} does not match its digest")
            files[(layer.get("annotations") or {}).get(_TITLE, layer["digest"])] = blob.content
        return PulledArtifact(digest=digest, manifest=manifest, files=files)


def _check(answer: Any, what: str) -> None:
    if answer is None or answer.status_code not in (200, 201, 202):
        status = "no answer" if answer is None else f"HTTP {answer.status_code}: {answer.text[:300]}"
        raise PushFailed(f"{what}: {status}")
