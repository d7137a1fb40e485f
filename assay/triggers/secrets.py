"""Webhook secrets per tenant and forge: ``ASSAY_WEBHOOK_SECRETS`` (JSON) and ``ASSAY_WEBHOOK_SECRETS_FILE``
(YAML or JSON, e.g. a mounted Secret; re-read when it changes, so a rotated secret applies at once)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from assay.settings import Settings

log = logging.getLogger(__name__)


class WebhookSecrets:
    def __init__(self, settings: Settings) -> None:
        self._inline = {t: dict(v) for t, v in settings.webhook_secrets.items()}
        self._path: Path | None = settings.webhook_secrets_file
        self._loaded: tuple[float, dict[str, dict[str, str]]] | None = None

    def _from_file(self) -> dict[str, dict[str, str]]:
        if self._path is None:
            return {}
        try:
            stamp = self._path.stat().st_mtime
        except OSError:
            log.warning("webhook secrets file %s cannot be read", self._path)
            return {}
        if self._loaded is None or self._loaded[0] != stamp:
            try:
                secrets = self._parse(self._path.read_text(encoding="utf-8"))
            except Exception as exc:  # a broken file must not turn every webhook into a 500
                log.error(
                    "webhook secrets file %s is invalid, keeping the last good one: %s", self._path, exc
                )
                return self._loaded[1] if self._loaded is not None else {}
            self._loaded = (stamp, secrets)
        return self._loaded[1]

    def _parse(self, text: str) -> dict[str, dict[str, str]]:
        if self._path is not None and self._path.suffix == ".json":
            raw: Any = json.loads(text)
        else:
            import yaml  # only a YAML secrets file needs it: off the submit function's cold start

            raw = yaml.safe_load(text)
        if not isinstance(raw, dict | None):
            raise ValueError("not a mapping of tenant -> {forge: secret}")
        secrets: dict[str, dict[str, str]] = {}
        for tenant, forges in (raw or {}).items():
            if isinstance(forges, dict):
                secrets[str(tenant)] = {str(k): str(v) for k, v in forges.items() if v}
        return secrets

    def secret(self, tenant: str, forge: str) -> str | None:
        """The tenant's secret for ``forge`` (github, gitlab, mlflow), or None when it has none."""
        for source in (self._from_file(), self._inline):
            value = source.get(tenant, {}).get(forge)
            if value:
                return value
        return None


__all__ = ["WebhookSecrets"]
