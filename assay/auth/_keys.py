"""The hub's own secrets on disk (local mode): its bearer token and the launch-credential signing key."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from assay.core.credentials import LaunchSigner
from assay.settings import Settings

__all__ = ["client_token", "launch_signer", "local_token", "read_local_token"]


def _secret_file(path: Path, make: str) -> str:
    """The content of ``path``, created with ``make`` (mode 0600, exclusively) when it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(make + "\n")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        os.chmod(path, 0o600)  # a copy restored with looser permissions is tightened, not trusted as is
    return path.read_text(encoding="utf-8").strip()


def local_token(settings: Settings) -> str:
    """The local hub's bearer token (``data_dir/token``), created at first start."""
    return _secret_file(settings.local_token_path, "assay_" + secrets.token_urlsafe(32))


def read_local_token(settings: Settings) -> str | None:
    """The local hub's token if one was created (``assay token``, the CLI's own requests)."""
    try:
        return settings.local_token_path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def client_token(settings: Settings) -> str | None:
    """What Assay's own commands send: ``ASSAY_TOKEN``/``EVALHUB_TOKEN``, else the local hub's token."""
    if settings.api_token is not None:
        return settings.api_token.get_secret_value()
    return read_local_token(settings)


def launch_signer(settings: Settings) -> LaunchSigner:
    """The key from settings, else (local mode) one generated in ``data_dir/launch.key``."""
    if settings.launch_signing_key is not None:
        return LaunchSigner(settings.launch_signing_key.get_secret_value().encode("utf-8"))
    if settings.mode == "cluster":
        raise ValueError(
            "ASSAY_LAUNCH_SIGNING_KEY is required in cluster mode: dispatch signs each launch's credential "
            "with it and callback verifies it (mount the same Secret into both)"
        )
    return LaunchSigner(_secret_file(settings.data_dir / "launch.key", secrets.token_hex(32)).encode("utf-8"))
