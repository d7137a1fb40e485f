"""The model's API key, found where EvalHub puts it (docs/compatibility.md) (what eval-hub-sdk's ``resolve_model_credentials``
reads for ``api-key``).

Local mode: the file ``api-key`` in the folder named by ``model.auth.secret_ref`` (``file:///<dir>``).
Kubernetes: ``/var/run/secrets/model/api-key``, which holds a ref token (``api-key:ref``); the adapter sends it
as its bearer token and the sidecar swaps in the real key.
"""

from __future__ import annotations

from pathlib import Path

from adapters.sdk.models import JobSpec
from adapters.sdk.settings import EvalHubMode

__all__ = ["MODEL_SECRETS_DIR", "model_api_key"]

MODEL_SECRETS_DIR = Path("/var/run/secrets/model")


def model_api_key(spec: JobSpec, mode: EvalHubMode, *, secrets_dir: Path = MODEL_SECRETS_DIR) -> str | None:
    """The key (stripped) from ``api-key`` under ``secrets_dir`` in k8s mode, else under the ``file://``
    ``secret_ref`` of ``spec.model.auth``; None when there is no such file (each adapter picks its fallback)."""
    folder: Path | None = None
    if mode is EvalHubMode.K8S:
        folder = secrets_dir
    elif spec.model.auth is not None and spec.model.auth.secret_ref.startswith("file://"):
        folder = Path(spec.model.auth.secret_ref.removeprefix("file://"))
    key_file = folder / "api-key" if folder is not None else None
    if key_file is None or not key_file.is_file():
        return None
    return key_file.read_text(encoding="utf-8").strip()
