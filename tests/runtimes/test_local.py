"""The local runtime against real subprocesses, and the reader of its timestamped log format."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from assay.runtimes import (
    GroupMember,
    LocalExit,
    LocalLaunch,
    LocalRuntime,
    RunKey,
    format_timestamp,
    read_log,
    read_log_bounded,
)

T = TypeVar("T")
STAMPED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z ")
PY = shlex.quote(sys.executable)
WAIT_FOR_GO = "while [ ! -e go ]; do sleep 0.02; done"


def drive(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition on the file system or the process table, which offers nothing to await."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


class Recorder:
    """The hub's side of the callbacks: what was spawned and how each launch ended."""

    def __init__(self) -> None:
        self.exits: list[LocalExit] = []
        self.spawns: list[tuple[RunKey, str]] = []
        self._changed = asyncio.Condition()

    async def on_exit(self, exit_: LocalExit) -> None:
        self.exits.append(exit_)
        async with self._changed:
            self._changed.notify_all()

    async def on_spawn(self, key: RunKey, ref: str) -> bool:
        self.spawns.append((key, ref))
        return True

    async def wait_exits(self, count: int, timeout: float = 10.0) -> list[LocalExit]:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.exits) >= count), timeout)
        return self.exits

    def exit_of(self, key: RunKey) -> LocalExit:
        (found,) = [exit_ for exit_ in self.exits if exit_.key == key]
        return found


def runtime(root: Path, recorder: Recorder, *, max_parallel: int = 4, grace: float = 0.5) -> LocalRuntime:
    return LocalRuntime(
        root,
        max_parallel=max_parallel,
        on_exit=recorder.on_exit,
        on_spawn=recorder.on_spawn,
        stop_grace_seconds=grace,
    )


def launch_of(
    key: RunKey,
    command: str,
    *,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    spec: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> LocalLaunch:
    return LocalLaunch(
        key=key,
        provider_id="prov",
        benchmark_id="bench",
        command=command,
        env=env or {},
        job_spec=spec or {"id": key.evaluation_id},
        timeout_seconds=timeout,
        cwd=cwd,
    )


def log_of(rt: LocalRuntime, key: RunKey, *, timestamps: bool = False) -> str:
    return read_log(
        rt.log_path(key.evaluation_id, key.index, "prov", "bench"),
        tail_lines=None,
        since=None,
        timestamps=timestamps,
    )


def process_group(pid: int) -> int | None:
    """The group of a live process (zombies count as dead), read from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[2])


def live_group_members(pgid: int) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and process_group(int(p)) == pgid]


# -- launching, environment and exit --------------------------------------------------------------------


def test_job_spec_environment_and_clean_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ASSAY_TEST", "from-hub")  # allow-listed (locale)
    monkeypatch.setenv("DATABASE_URL", "postgresql://hub-secret")  # the hub's secrets stay with the hub
    key = RunKey("eval-1", 0, 1)
    spec = {"id": "eval-1", "benchmarks": [{"id": "bench", "parameters": {"limit": 5}}]}
    command = "; ".join(
        f'echo "{name}=${variable}"'
        for name, variable in [
            ("mode", "EVALHUB_MODE"),
            ("spec", "EVALHUB_JOB_SPEC_PATH"),
            ("run", "ASSAY_RUN"),
            ("unbuffered", "PYTHONUNBUFFERED"),
            ("extra", "EXTRA"),
            ("inherited", "LC_ASSAY_TEST"),
            ("secret", "DATABASE_URL"),
        ]
    )
    command += '; echo "cwd=$(pwd)"'

    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path, recorder)
        job_path = await rt.launch(
            launch_of(key, command, env={"EXTRA": "x y", "EVALHUB_MODE": "k8s"}, spec=spec)
        )
        run_dir = tmp_path / "eval-1" / "0" / "prov" / "bench"
        assert job_path == run_dir / "meta" / "job.json"
        assert job_path.read_text() == json.dumps(spec, indent=2) + "\n"
        [exit_] = await recorder.wait_exits(1)
        assert (exit_.reason, exit_.returncode, exit_.detail) == ("exited", 0, "")
        assert exit_.log_path == run_dir / "jobrun.log" == rt.log_path("eval-1", 0, "prov", "bench")
        lines = log_of(rt, key).splitlines()
        assert lines[:7] == [
            "mode=local",
            f"spec={job_path}",
            "run=eval-1/0/1",
            "unbuffered=1",
            "extra=x y",
            "inherited=from-hub",
            "secret=",
        ]
        assert Path(lines[7].removeprefix("cwd=")).resolve() == run_dir.resolve()
        [(spawned_key, ref)] = recorder.spawns
        assert spawned_key == key
        assert re.fullmatch(rf"local:{rt.instance_id}:\d+", ref)
        assert rt.owns(ref)
        assert not runtime(tmp_path, Recorder()).owns(ref)
        assert not rt.owns("garbage")
        assert rt.active() == set()

    drive(scenario())


def test_exit_codes_and_failing_callbacks_are_contained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        exits: list[LocalExit] = []
        done = asyncio.Event()

        async def on_exit(exit_: LocalExit) -> None:
            exits.append(exit_)
            if len(exits) == 2:
                done.set()
            raise RuntimeError("the hub's handler broke")

        rt = LocalRuntime(tmp_path, max_parallel=1, on_exit=on_exit)
        await rt.launch(launch_of(RunKey("e", 0, 1), "exit 3"))
        await rt.launch(launch_of(RunKey("e", 1, 1), "true"))
        await asyncio.wait_for(done.wait(), 10)
        assert {(e.key.index, e.reason, e.returncode) for e in exits} == {(0, "exited", 3), (1, "exited", 0)}
        await rt.close()

    with caplog.at_level(logging.ERROR, logger="assay.runtimes.local"):
        drive(scenario())
    messages = [record.getMessage() for record in caplog.records]
    assert sum("on_exit failed" in m for m in messages) == 2


def test_nothing_starts_that_could_not_be_recorded(tmp_path: Path) -> None:
    """The start is recorded before the process exists: while recording fails (the database is away) the
    queue waits, and once it succeeds each launch starts exactly once."""

    async def scenario() -> None:
        recorder = Recorder()
        database_up = asyncio.Event()
        attempts: list[RunKey] = []

        async def on_spawn(key: RunKey, ref: str) -> bool:
            attempts.append(key)
            if not database_up.is_set():
                raise OSError("the database is away")
            return await recorder.on_spawn(key, ref)

        rt = LocalRuntime(tmp_path, max_parallel=2, on_exit=recorder.on_exit, on_spawn=on_spawn)
        keys = [RunKey("e", i, 1) for i in range(4)]
        for key in keys:
            await rt.launch(launch_of(key, f"echo started >> {tmp_path / 'starts'}"))
        await until(lambda: len(attempts) >= 3)  # tried, failed, and tried again after a pause
        assert not (tmp_path / "starts").exists() and recorder.exits == []
        assert rt.active() == set(keys)  # still queued, none lost
        database_up.set()
        await recorder.wait_exits(4)
        assert (tmp_path / "starts").read_text().splitlines() == ["started"] * 4
        assert sorted(k.index for k, _ in recorder.spawns) == [0, 1, 2, 3]
        assert all(ref == f"local:{rt.instance_id}:0" for _, ref in recorder.spawns)
        assert {e.reason for e in recorder.exits} == {"exited"}
        await rt.close()

    drive(scenario(), timeout=30)


def test_a_run_that_moved_on_is_not_started_and_hold_stops_the_queue(tmp_path: Path) -> None:
    async def scenario() -> None:
        recorder = Recorder()

        async def on_spawn(key: RunKey, ref: str) -> bool:
            await recorder.on_spawn(key, ref)
            return key.index != 0  # benchmark 0 finished (or was cancelled) before its turn came

        rt = LocalRuntime(tmp_path, max_parallel=1, on_exit=recorder.on_exit, on_spawn=on_spawn)
        await rt.launch(launch_of(RunKey("e", 0, 1), f"touch {tmp_path / 'ran0'}"))
        await rt.launch(launch_of(RunKey("e", 1, 1), "sleep 60"))
        await rt.launch(launch_of(RunKey("e", 2, 1), f"touch {tmp_path / 'ran2'}"))
        await until(lambda: len(recorder.spawns) == 2)
        assert recorder.exit_of(RunKey("e", 0, 1)).reason == "stopped"
        assert not (tmp_path / "ran0").exists()
        rt.hold()  # shutdown began: index 1 keeps running, index 2 never starts
        await rt.launch(launch_of(RunKey("e", 3, 1), "true"))  # still accepted, and queued
        await rt.stop("e", 1)
        await rt.close()
        assert not (tmp_path / "ran2").exists()
        assert {(e.key.index, e.reason) for e in recorder.exits} == {
            (0, "stopped"),
            (1, "stopped"),
            (2, "stopped"),
            (3, "stopped"),
        }
        assert len(recorder.spawns) == 2

    drive(scenario())


def test_spawn_failure_and_invalid_launches(tmp_path: Path) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path, recorder)
        key = RunKey("e", 0, 1)
        await rt.launch(launch_of(key, "true", cwd=tmp_path / "missing"))
        [exit_] = await recorder.wait_exits(1)
        assert (exit_.reason, exit_.returncode) == ("spawn_failed", None)
        assert "No such file or directory" in exit_.detail
        assert "spawn failed" in log_of(rt, key)
        assert [k for k, _ in recorder.spawns] == [key]  # the start is recorded before it is tried
        for bad in ["a/b", "..", "x..y", "nul\0", "", "."]:
            with pytest.raises(ValueError):
                await rt.launch(launch_of(RunKey(bad, 0, 1), "true"))
            with pytest.raises(ValueError):
                rt.run_dir("e", 0, bad, "bench")
        with pytest.raises(ValueError):
            await rt.launch(launch_of(RunKey("e", 0, 0), "true"))
        with pytest.raises(ValueError):
            await rt.launch(launch_of(RunKey("e", -1, 1), "true"))
        assert rt.active() == set()

    drive(scenario())


# -- logs -----------------------------------------------------------------------------------------------


def test_log_lines_are_stamped_and_readable_while_running(tmp_path: Path) -> None:
    command = (
        "echo first; printf 'bad \\377\\376 bytes\\n'; "
        f"{PY} -c 'print(\"x\" * 100000)'; echo err >&2; "
        f"{WAIT_FOR_GO}; echo second; printf partial"
    )

    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path, recorder)
        key = RunKey("e", 0, 1)
        job_path = await rt.launch(launch_of(key, command))
        await until(lambda: "err" in log_of(rt, key).splitlines())
        assert recorder.exits == []  # still running, and its lines are already there
        raw = log_of(rt, key, timestamps=True).splitlines()
        assert all(STAMPED.match(line) for line in raw)
        lines = log_of(rt, key).splitlines()
        assert lines[0] == "first"
        assert lines[1] == "bad \ufffd\ufffd bytes"
        assert lines[2] == "x" * 65536 + " [line truncated: 34464 more bytes]"
        (job_path.parent.parent / "go").touch()
        await recorder.wait_exits(1)
        assert log_of(rt, key).splitlines()[-2:] == ["second", "partial"]

    drive(scenario())


def _write_log(path: Path, lines: list[str], *, final_newline: bool = True) -> None:
    path.write_bytes(("\n".join(lines) + ("\n" if final_newline else "")).encode())


def test_read_log_filters(tmp_path: Path) -> None:
    path = tmp_path / "jobrun.log"
    lines = [
        "2026-01-01T00:00:00.000001Z one",
        "2026-01-01T00:00:01.000000Z two",
        "not stamped",
        "2026-01-01T00:00:02.000000Z three",
        "2026-01-01T00:00:03.000000Z ",
        "2026-01-01T00:00:04.000000Z four",
    ]
    _write_log(path, lines, final_newline=False)

    def read(**kwargs: Any) -> str:
        options: dict[str, Any] = {"tail_lines": None, "since": None, "timestamps": False}
        return read_log(path, **(options | kwargs))

    assert read(timestamps=True) == "\n".join(lines) + "\n"
    assert read() == "one\ntwo\nnot stamped\nthree\n\nfour\n"
    assert read(tail_lines=2) == "\nfour\n"
    assert read(tail_lines=0) == ""
    assert read(since=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)) == "two\nnot stamped\nthree\n\nfour\n"
    one_hour_east = timezone(timedelta(hours=1))
    assert read(since=datetime(2026, 1, 1, 1, 0, 2, 1, tzinfo=one_hour_east), tail_lines=1) == "four\n"
    assert read(since=datetime(2027, 1, 1, tzinfo=UTC)) == ""
    assert read_log(tmp_path / "missing.log", tail_lines=None, since=None, timestamps=True) == ""
    assert read_log_bounded(tmp_path / "missing.log") == ("", False)
    assert (
        format_timestamp(datetime(2026, 11, 22, 3, 35, 52, 123456, tzinfo=UTC))
        == "2026-11-22T03:35:52.123456Z"
    )


def test_read_log_across_blocks_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "jobrun.log"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    bodies = [f"line {i} " + "y" * (i % 97) for i in range(20000)]
    bodies[12345] = "z" * 70000  # longer than a read block
    lines = [f"{format_timestamp(start + timedelta(milliseconds=i))} {body}" for i, body in enumerate(bodies)]
    _write_log(path, lines)

    assert read_log(path, tail_lines=None, since=None, timestamps=True) == path.read_text()
    assert read_log(path, tail_lines=None, since=None, timestamps=False) == "".join(f"{b}\n" for b in bodies)
    assert read_log(path, tail_lines=3, since=None, timestamps=False) == "".join(
        f"{b}\n" for b in bodies[-3:]
    )
    since = start + timedelta(milliseconds=12345)
    assert read_log(path, tail_lines=None, since=since, timestamps=False).splitlines() == bodies[12345:]

    text, truncated = read_log_bounded(path, timestamps=False, max_bytes=1000)
    assert truncated
    assert len(text.encode()) <= 1000
    assert text.splitlines() == bodies[-len(text.splitlines()) :]
    assert read_log_bounded(path, tail_lines=5, timestamps=False, max_bytes=10**9) == (
        "".join(f"{b}\n" for b in bodies[-5:]),
        False,
    )

    single = tmp_path / "single.log"
    _write_log(single, ["a" * 1000 + "b"])
    assert read_log_bounded(single, max_bytes=10) == ("a" * 8 + "b\n", True)


# -- timeouts, stopping and shutdown --------------------------------------------------------------------


def test_timeout_terminates_then_kills(tmp_path: Path) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path, recorder, grace=0.3)
        polite, stubborn = RunKey("e", 0, 1), RunKey("e", 1, 1)
        started = time.monotonic()
        await rt.launch(launch_of(polite, "sleep 60", timeout=0.3))
        await rt.launch(launch_of(stubborn, "trap '' TERM; sleep 60", timeout=0.3))
        await recorder.wait_exits(2)
        assert time.monotonic() - started < 5
        assert recorder.exit_of(polite).reason == "timeout"
        assert recorder.exit_of(polite).returncode == -15
        assert recorder.exit_of(stubborn).reason == "timeout"
        assert recorder.exit_of(stubborn).returncode == -9

    drive(scenario())


def test_stop_kills_the_group_and_drops_queued(tmp_path: Path) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path, recorder, max_parallel=1)
        running, queued, other = RunKey("e", 0, 1), RunKey("e", 1, 1), RunKey("other", 0, 1)
        job_path = await rt.launch(launch_of(running, "sleep 60 & echo $! > grandchild.pid; sleep 60"))
        await rt.launch(launch_of(queued, "echo should-not-run"))
        await rt.launch(launch_of(other, "echo ran"))
        pid_file = job_path.parent.parent / "grandchild.pid"
        await until(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
        grandchild = int(pid_file.read_text())
        assert process_group(grandchild) is not None
        assert rt.active() == {running, queued, other}

        await rt.stop("e")
        # stop() returns once both were reported
        assert (recorder.exit_of(running).reason, recorder.exit_of(queued).reason) == ("stopped", "stopped")
        killed = recorder.exit_of(running).returncode
        assert killed is not None and killed < 0
        assert recorder.exit_of(queued).returncode is None
        await until(lambda: process_group(grandchild) is None)
        assert [key for key, _ in recorder.spawns][:1] == [running]
        assert queued not in [key for key, _ in recorder.spawns]

        await recorder.wait_exits(3)
        assert (recorder.exit_of(other).reason, recorder.exit_of(other).returncode) == ("exited", 0)
        assert log_of(rt, other) == "ran\n"

    drive(scenario())


def test_stop_one_index_then_close(tmp_path: Path) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path, recorder, max_parallel=2)
        keys = [RunKey("e", i, 1) for i in range(3)]
        for key in keys:
            await rt.launch(launch_of(key, "sleep 60"))
        await until(lambda: len(recorder.spawns) == 2)
        await rt.stop("e", 1)
        assert [(e.key, e.reason) for e in recorder.exits] == [(keys[1], "stopped")]
        await until(lambda: len(recorder.spawns) == 3)  # the queued one took the freed slot
        await rt.close()
        assert rt.active() == set()
        assert {(e.key, e.reason) for e in recorder.exits} == {
            (keys[0], "shutdown"),
            (keys[1], "stopped"),
            (keys[2], "shutdown"),
        }
        with pytest.raises(RuntimeError):
            await rt.launch(launch_of(RunKey("e", 5, 1), "true"))

    drive(scenario())


def test_close_reports_running_as_shutdown_and_queued_as_never_started(tmp_path: Path) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path, recorder, max_parallel=1)
        await rt.launch(launch_of(RunKey("e", 0, 1), "sleep 60"))
        await rt.launch(launch_of(RunKey("e", 1, 1), "sleep 60"))
        await until(lambda: len(recorder.spawns) == 1)
        await rt.close()
        # The queued one never started: "stopped" is no failure, and the next hub launches it again.
        assert sorted((e.key.index, e.reason, e.returncode is None) for e in recorder.exits) == [
            (0, "shutdown", False),
            (1, "stopped", True),
        ]

    drive(scenario())


# -- scheduling -----------------------------------------------------------------------------------------


def test_max_parallel_bounds_running_processes(tmp_path: Path) -> None:
    events = tmp_path / "events"

    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path / "runs", recorder, max_parallel=2)
        for i in range(5):
            command = f"echo start >> {events}; sleep 0.2; echo end >> {events}"
            await rt.launch(launch_of(RunKey("e", i, 1), command))
        assert len(rt.active()) == 5  # launch() queued them all without waiting for a slot
        await recorder.wait_exits(5)
        assert all(e.reason == "exited" and e.returncode == 0 for e in recorder.exits)

    drive(scenario())
    running, most = 0, 0
    for event in events.read_text().split():
        running += 1 if event == "start" else -1
        most = max(most, running)
    assert most == 2


def test_queued_launches_start_in_order(tmp_path: Path) -> None:
    order = tmp_path / "order"

    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path / "runs", recorder, max_parallel=1)
        for i in range(4):
            await rt.launch(launch_of(RunKey("e", i, 1), f"echo {i} >> {order}"))
        await recorder.wait_exits(4)

    drive(scenario())
    assert order.read_text().split() == ["0", "1", "2", "3"]


def test_relaunch_is_idempotent_and_next_attempt_replaces(tmp_path: Path) -> None:
    command = f'echo "running $ASSAY_RUN"; {WAIT_FOR_GO}'

    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path, recorder)
        first, second = RunKey("e", 0, 1), RunKey("e", 0, 2)
        job_path = await rt.launch(launch_of(first, command, spec={"attempt": 1}))
        await until(lambda: "running e/0/1" in log_of(rt, first))
        assert await rt.launch(launch_of(first, command, spec={"attempt": "redelivered"})) == job_path
        assert rt.active() == {first}
        assert json.loads(job_path.read_text()) == {"attempt": 1}

        await rt.launch(launch_of(second, command, spec={"attempt": 2}))
        assert [(e.key, e.reason) for e in recorder.exits] == [(first, "stopped")]
        assert json.loads(job_path.read_text()) == {"attempt": 2}
        await rt.launch(launch_of(first, command))  # a stale dispatch of the older attempt
        assert rt.active() == {second}

        await until(lambda: "running e/0/2" in log_of(rt, second))
        (job_path.parent.parent / "go").touch()
        await recorder.wait_exits(2)
        assert (recorder.exits[1].key, recorder.exits[1].reason, recorder.exits[1].returncode) == (
            second,
            "exited",
            0,
        )
        assert [key for key, _ in recorder.spawns] == [first, second]
        assert log_of(rt, second).splitlines() == ["running e/0/1", "=== attempt 2 ===", "running e/0/2"]

    drive(scenario())


# -- orphans of a dead instance ---------------------------------------------------------------------------


def test_kill_orphan_needs_the_marker(tmp_path: Path) -> None:
    key = RunKey("e", 0, 1)
    marked = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 60 & sleep 60"],
        env={**os.environ, "ASSAY_RUN": "e/0/1"},
        start_new_session=True,
    )
    unmarked = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:

        async def scenario() -> None:
            rt = runtime(tmp_path, Recorder(), grace=0.5)
            await until(lambda: len(live_group_members(marked.pid)) >= 2)
            assert not await rt.kill_orphan(f"local:dead:{unmarked.pid}", key)
            assert not await rt.kill_orphan(f"local:dead:{marked.pid}", RunKey("e", 0, 2))
            assert not await rt.kill_orphan(f"local:{rt.instance_id}:{marked.pid}", key)
            assert not await rt.kill_orphan("local:dead:not-a-pid", key)
            assert not await rt.kill_orphan(f"elsewhere:dead:{marked.pid}", key)
            assert marked.poll() is None and unmarked.poll() is None

            assert await rt.kill_orphan(f"local:dead:{marked.pid}", key)
            await until(lambda: live_group_members(marked.pid) == [])
            assert unmarked.poll() is None
            assert not await rt.kill_orphan("local:dead:0", key)  # nothing carries the marker any more

        drive(scenario())
        # Killed by the signal, or (when the TERM reached its `sleep` first) a shell exiting 128 + 15.
        assert marked.wait(timeout=5) in (-signal.SIGTERM, -signal.SIGKILL, 128 + signal.SIGTERM)
    finally:
        for process in (marked, unmarked):
            if process.poll() is None:
                os.killpg(process.pid, 9)
            process.wait(timeout=5)


def test_a_group_launch_is_one_process_reported_for_every_member(tmp_path: Path) -> None:
    """lm-eval style: several benchmarks of one job run by one process; each member is spawned, active,
    logged and ended like a benchmark of its own, and a newer attempt of any member replaces the group."""

    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path, recorder)
        lead, second, third = RunKey("g", 0, 1), RunKey("g", 2, 1), RunKey("g", 3, 1)
        group = LocalLaunch(
            key=lead,
            provider_id="prov",
            benchmark_id="bench",
            command="echo group-ran; echo $ASSAY_RUN; sleep 60",
            env={},
            job_spec={"id": "g"},
            timeout_seconds=30,
            members=(GroupMember(second, "b2"), GroupMember(third, "b3")),
        )
        await rt.launch(group)
        await until(lambda: len(recorder.spawns) == 3)
        assert [k for k, _ in recorder.spawns] == [lead, second, third]
        assert len({ref for _, ref in recorder.spawns}) == 1  # one process
        assert rt.active() == {lead, second, third}
        await rt.launch(group)  # redelivered: nothing new
        assert len(recorder.spawns) == 3
        member_log = rt.log_path("g", 2, "prov", "b2")
        await until(lambda: "g/0/1,g/2/1,g/3/1" in member_log.read_text())
        assert "group-ran" in member_log.read_text()

        await rt.launch(launch_of(RunKey("g", 2, 2), "echo retry-of-two"))  # replaces the whole group
        await recorder.wait_exits(4)
        assert {(e.key, e.reason) for e in recorder.exits} == {
            (lead, "stopped"),
            (second, "stopped"),
            (third, "stopped"),
            (RunKey("g", 2, 2), "exited"),
        }
        await rt.close()

    drive(scenario())


def test_kill_orphan_finds_a_group_member(tmp_path: Path) -> None:
    marked = subprocess.Popen(
        ["sleep", "60"], env={**os.environ, "ASSAY_RUN": "e/0/1,e/4/2"}, start_new_session=True
    )
    try:

        async def scenario() -> None:
            rt = runtime(tmp_path, Recorder(), grace=0.5)
            assert not await rt.kill_orphan(f"local:dead:{marked.pid}", RunKey("e", 4, 1))
            assert await rt.kill_orphan(f"local:dead:{marked.pid}", RunKey("e", 4, 2))

        drive(scenario())
        assert marked.wait(timeout=5) == -signal.SIGTERM
    finally:
        if marked.poll() is None:
            os.killpg(marked.pid, 9)
            marked.wait(timeout=5)


def test_kill_orphan_without_a_pid_finds_the_run_by_its_marker(tmp_path: Path) -> None:
    """A start recorded before the process existed (``local:<instance>:0``) still finds what it started."""
    marked = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 60 & sleep 60"],
        env={**os.environ, "ASSAY_RUN": "e/7/3"},
        start_new_session=True,
    )
    try:

        async def scenario() -> None:
            rt = runtime(tmp_path, Recorder(), grace=0.5)
            await until(lambda: len(live_group_members(marked.pid)) >= 2)
            assert not await rt.kill_orphan("local:dead:0", RunKey("e", 7, 2))
            assert marked.poll() is None
            assert await rt.kill_orphan("local:dead:0", RunKey("e", 7, 3))
            await until(lambda: live_group_members(marked.pid) == [])

        drive(scenario())
    finally:
        if marked.poll() is None:
            os.killpg(marked.pid, 9)
        marked.wait(timeout=5)


def test_a_stopped_adapter_behind_a_shell_gets_its_grace(tmp_path: Path) -> None:
    """``sh -c`` dies at once on SIGTERM; the adapter it started still has the grace to report its cancel."""

    async def scenario() -> None:
        recorder = Recorder()
        rt = runtime(tmp_path, recorder, grace=5.0)
        key = RunKey("e", 0, 1)
        script = (
            "import signal, sys, time, pathlib\n"
            "def bye(*_):\n"
            "    time.sleep(0.5)\n"
            "    pathlib.Path('reported').write_text('cancelled')\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\n"
            "pathlib.Path('ready').write_text('1')\n"
            "time.sleep(60)\n"
        )
        (tmp_path / "adapter.py").write_text(script)
        # Not exec'd: the shell is the group leader and the adapter its child, as for most providers.
        job_path = await rt.launch(
            launch_of(key, f"{shlex.quote(sys.executable)} {tmp_path / 'adapter.py'}; true")
        )
        work = job_path.parent.parent
        await until(lambda: (work / "ready").exists())
        await rt.stop("e")
        assert (work / "reported").read_text() == "cancelled"

    drive(scenario(), timeout=30)
