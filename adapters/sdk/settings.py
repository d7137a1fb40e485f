"""The adapter process's configuration, read once from its environment (docs/compatibility.md).

Field names follow eval-hub-sdk's ``AdapterSettings`` so adapters that read ``self.settings.mode`` or
``self.settings.oci_insecure`` keep working; Assay adds ``sidecar_url`` (``EVALHUB_SIDECAR_URL``, where
OCI pushes and MLflow go when set) and ``callback_retry_seconds`` (``ASSAY_CALLBACK_RETRY_SECONDS``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.sdk.errors import AdapterSDKError

__all__ = [
    "DEFAULT_JOB_SPEC_PATH_K8S",
    "DEFAULT_JOB_SPEC_PATH_LOCAL",
    "AdapterSettings",
    "EvalHubMode",
]

DEFAULT_JOB_SPEC_PATH_K8S = "/meta/job.json"
DEFAULT_JOB_SPEC_PATH_LOCAL = "meta/job.json"
DEFAULT_CALLBACK_RETRY_SECONDS = 300.0

# Environment variable -> field; everything an adapter process is configured by.
_ENV_FIELDS = {
    "EVALHUB_MODE": "mode",
    "EVALHUB_JOB_SPEC_PATH": "job_spec_path",
    "OCI_AUTH_CONFIG_PATH": "oci_auth_config_path",
    "OCI_INSECURE": "oci_insecure",
    "EVALHUB_AUTH_TOKEN_PATH": "auth_token_path",
    "EVALHUB_CA_BUNDLE_PATH": "ca_bundle_path",
    "EVALHUB_INSECURE": "evalhub_insecure",
    "EVALHUB_SIDECAR_URL": "sidecar_url",
    "ASSAY_CALLBACK_RETRY_SECONDS": "callback_retry_seconds",
}


class EvalHubMode(StrEnum):
    """Where the adapter runs: it picks the job.json default and how OCI pushes travel."""

    K8S = "k8s"
    LOCAL = "local"


class AdapterSettings(BaseModel):
    """Settings of one adapter process; build with :meth:`from_env`."""

    model_config = ConfigDict(frozen=True)

    mode: EvalHubMode = EvalHubMode.LOCAL
    job_spec_path: Path | None = None
    oci_auth_config_path: Path | None = None
    oci_insecure: bool = False
    auth_token_path: Path | None = None
    ca_bundle_path: Path | None = None
    evalhub_insecure: bool = False
    sidecar_url: str | None = None
    callback_retry_seconds: float = Field(default=DEFAULT_CALLBACK_RETRY_SECONDS, ge=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AdapterSettings:
        """Read the settings from ``environ`` (default: this process's environment); blank values count
        as unset. A malformed value raises an error naming the variable."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for variable, field in _ENV_FIELDS.items():
            raw = env.get(variable, "").strip()
            if raw:
                values[field] = raw.lower() if field == "mode" else raw
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            by_field = {field: variable for variable, field in _ENV_FIELDS.items()}
            problems = "; ".join(
                f"{by_field.get(str(err['loc'][0]), err['loc'][0])}={values.get(str(err['loc'][0]))!r}: {err['msg']}"
                for err in exc.errors()
            )
            raise AdapterSDKError(f"invalid adapter environment: {problems}") from None

    @property
    def resolved_job_spec_path(self) -> Path:
        """``EVALHUB_JOB_SPEC_PATH``, else ``/meta/job.json`` in k8s mode, else ``meta/job.json``."""
        if self.job_spec_path is not None:
            return self.job_spec_path
        return Path(
            DEFAULT_JOB_SPEC_PATH_K8S if self.mode is EvalHubMode.K8S else DEFAULT_JOB_SPEC_PATH_LOCAL
        )
