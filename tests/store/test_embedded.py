"""The embedded PostgreSQL under supervision: restarted when it dies, always stopped by its owner (whatever
pgserver's handle pids say), merely attached to by a second process over the same data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from assay.store import EmbeddedPostgres
from tests.support.waiting import wait_for


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_server_is_restarted_and_the_url_works_again(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "postgres")
    url = server.start()
    try:
        first = server.pid()
        assert first is not None and answers(url)
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: server.state.restarts == 1, timeout=60, interval=0.1)
        assert server.state.up and server.pid() not in (None, first)
        assert wait_for(lambda: answers(url), timeout=30, interval=0.1)
    finally:
        server.stop()
    assert server.pid() is None


def test_stop_stops_the_server_whatever_stale_pids_say(tmp_path: Path) -> None:
    data = tmp_path / "postgres"
    server = EmbeddedPostgres(data)
    server.start()
    # A hub killed earlier left its pid in pgserver's handle list and in the owner file: neither may keep the
    # server running (pgserver stopped it only when its list held nothing but the stopping process).
    (data / ".handle_pids.json").write_text(json.dumps([dead_pid(), os.getpid()]))
    pid = server.pid()
    assert pid is not None
    server.stop(timeout=6)
    assert server.pid() is None
    server.stop()  # twice is fine

    # The next start over a dead owner adopts the data and owns the server again.
    data.with_name("postgres.owner").write_text(f"{dead_pid()}\n")
    again = EmbeddedPostgres(data)
    url = again.start()
    assert answers(url)
    again.stop()
    assert again.pid() is None


def test_a_second_process_over_live_data_only_attaches(tmp_path: Path) -> None:
    owner = EmbeddedPostgres(tmp_path / "postgres")
    url = owner.start()
    try:
        script = (
            "import sys; from pathlib import Path; from assay.store import EmbeddedPostgres; "
            "e = EmbeddedPostgres(Path(sys.argv[1])); print(e.start()); e.stop()"
        )
        attached = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "postgres")],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "assay" in attached.stdout
        assert answers(url) and owner.pid() is not None  # its stop left the owner's server running
    finally:
        owner.stop()


def test_an_idle_watcher_waits_on_the_server_instead_of_polling_it(tmp_path: Path) -> None:
    """The watcher sleeps on the postmaster's pidfd: over a second and a half of nothing it looks at the pid file
    at most twice (it polled six times, every 0.25 s), and a kill still wakes it at once (the test above)."""
    server = EmbeddedPostgres(tmp_path / "postgres")
    server.start()
    looks: list[float] = []
    try:
        real = server.pid

        def counted() -> int | None:
            looks.append(time.monotonic())
            return real()

        server.pid = counted  # type: ignore[method-assign]
        time.sleep(1.5)
        assert len(looks) <= 2, looks
        server.pid = real  # type: ignore[method-assign]
    finally:
        server.stop()
