"""Warm start of Python adapters (assay.runtimes._warm, adapters/forkserver.py) against real processes.

A forked run must look to the adapter exactly like a cold one (the same command through ``/bin/sh -c``), keep no
state from the server or from another run, end as the interpreter would, and be stopped, timed out, found as an
orphan and cleaned up exactly as a cold run is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from assay.runtimes import LocalRuntime, RunKey
from assay.runtimes._processes import carries_marker, marked_anywhere
from assay.runtimes._warm import FORKSERVER, WarmPlan, WarmPool, WarmStartError, plan_warm
from tests.runtimes.test_local import Recorder, drive, launch_of, log_of, process_group, until

PY = sys.executable

# What a run sees of itself, printed as one JSON line; it also leaves state behind to find in a later run.
PROBE = r"""
import json, os, random, resource, signal, sys
import evalhub.adapter as sdk

def parent_command():
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as file:
        return file.read().replace(b"\0", b" ").decode()

def proc_environ_marker():
    with open(f"/proc/{os.getpid()}/environ", "rb") as file:
        entries = file.read().split(b"\0")
    return [e.decode().split("=", 1)[1].split(",")[0] for e in entries if e.startswith(b"ASSAY_RUN=")]

umask = os.umask(0o022)
os.umask(umask)
seen = {
    "argv": sys.argv,
    "orig_argv": sys.orig_argv[1:],
    "executable": sys.executable,
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "file": __file__,
    "name": __name__,
    "main_is_us": sys.modules["__main__"].__dict__ is globals(),
    "env": dict(os.environ),
    "spec": json.load(open(os.environ["EVALHUB_JOB_SPEC_PATH"])),
    "own_session": os.getpgid(0) == os.getsid(0),
    "leader": os.getpid() == os.getpgid(0) == os.getsid(0),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    "signals": {
        name: str(signal.getsignal(getattr(signal, name)))
        for name in ("SIGTERM", "SIGINT", "SIGPIPE", "SIGXFSZ", "SIGCHLD", "SIGHUP", "SIGUSR1")
    },
    "blocked": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
    "stdin": sys.stdin.read(),
    "umask": umask,
    "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    "left_by_earlier_run": getattr(sdk, "_left_by_earlier_run", None),
    "leak_in_env": "LEAKED_BY_EARLIER_RUN" in os.environ,
    "random": random.random(),
    "proc_marker": proc_environ_marker(),
    "parent": parent_command(),
}
sdk._left_by_earlier_run = os.environ["ASSAY_RUN"]
os.environ["LEAKED_BY_EARLIER_RUN"] = "1"
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
print("PROBE " + json.dumps(seen))
"""


def probe_of(text: str) -> dict[str, Any]:
    [line] = [line for line in text.splitlines() if line.startswith("PROBE ")]
    probe: dict[str, Any] = json.loads(line.removeprefix("PROBE "))
    return probe


def warm_runtime(
    root: Path, recorder: Recorder, *, warm: bool = True, grace: float = 0.5, idle: float = 300.0
) -> LocalRuntime:
    return LocalRuntime(
        root,
        max_parallel=4,
        on_exit=recorder.on_exit,
        on_spawn=recorder.on_spawn,
        stop_grace_seconds=grace,
        warm_start=warm,
        warm_idle_seconds=idle,
    )


def alive(pid: int) -> bool:
    return process_group(pid) is not None


def normalise(probe: dict[str, Any], root: Path, evaluation: str) -> dict[str, Any]:
    """A probe with what differs between two runs of the same launch (root, evaluation id, pid) taken out."""
    # A cold run's shell leads its session, a warm run leads its own.
    text = json.dumps({k: v for k, v in probe.items() if k not in ("random", "parent", "leader")})
    return dict(json.loads(text.replace(str(root), "<root>").replace(evaluation, "<evaluation>")))


# -- what a run sees ------------------------------------------------------------------------------------


def test_a_warm_run_looks_like_a_cold_one_and_keeps_nothing_from_earlier_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LC_ASSAY_TEST", "from-hub")
    monkeypatch.setenv("DATABASE_URL", "postgresql://hub-secret")
    # A hub started under nohup ignores SIGHUP, and a cold run inherits that across exec: a warm one must too.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    (tmp_path / "probe.py").write_text(PROBE)
    command = f"{PY} {tmp_path / 'probe.py'}"
    env = {"EXTRA": "x y", "EVALHUB_MODE": "k8s"}

    async def run_twice(root: Path, evaluation: str, warm: bool) -> list[dict[str, Any]]:
        recorder = Recorder()
        rt = warm_runtime(root, recorder, warm=warm)
        probes = []
        try:
            assert await rt.warm_up(command, env) is warm
            for index in range(2):
                key = RunKey(evaluation, index, 1)
                await rt.launch(launch_of(key, command, env=env, spec={"id": evaluation, "index": index}))
                await recorder.wait_exits(index + 1, timeout=60)
                assert (recorder.exit_of(key).reason, recorder.exit_of(key).returncode) == ("exited", 0)
                probes.append(probe_of(log_of(rt, key)))
        finally:
            await rt.close()
        return probes

    async def scenario() -> None:
        cold = await run_twice(tmp_path / "cold", "cold-eval", warm=False)
        warm = await run_twice(tmp_path / "warm", "warm-eval", warm=True)
        # Forked from the server, not started by a shell.
        assert all("forkserver.py" in p["parent"] for p in warm)
        assert not any("forkserver.py" in p["parent"] for p in cold)
        for index in range(2):
            assert normalise(warm[index], tmp_path / "warm", "warm-eval") == normalise(
                cold[index], tmp_path / "cold", "cold-eval"
            )
        first, second = warm
        # Exactly its own environment, directory, arguments and job spec; the hub's secrets stay with the hub.
        assert second["env"]["ASSAY_RUN"] == "warm-eval/1/1" and second["proc_marker"] == ["warm-eval/1/1"]
        assert second["spec"] == {"id": "warm-eval", "index": 1}
        assert second["env"]["EXTRA"] == "x y" and second["env"]["EVALHUB_MODE"] == "local"
        assert second["env"]["LC_ASSAY_TEST"] == "from-hub" and "DATABASE_URL" not in second["env"]
        assert Path(second["cwd"]) == (tmp_path / "warm" / "warm-eval" / "1" / "prov" / "bench").resolve()
        assert second["argv"] == [str(tmp_path / "probe.py")] and second["name"] == "__main__"
        assert second["main_is_us"] and second["leader"] and second["stdin"] == ""
        # Nothing from the first run: module state, environment, signal handlers, random sequence.
        assert first["left_by_earlier_run"] is None and second["left_by_earlier_run"] is None
        assert not first["leak_in_env"] and not second["leak_in_env"]
        assert second["signals"]["SIGUSR1"] == str(signal.SIG_DFL)
        assert second["signals"]["SIGHUP"] == cold[1]["signals"]["SIGHUP"] == str(signal.SIG_IGN)
        assert first["random"] != second["random"]
        assert first["parent"] == second["parent"]  # the same server forked both

    try:
        drive(scenario(), timeout=120)
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_module_runs_as_python_m_would_run_it(tmp_path: Path) -> None:
    package = tmp_path / "work" / "probe_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv, 'path0': sys.path[0], 'name': __name__, 'cwd': os.getcwd(),"
        " 'orig': sys.orig_argv[1:]}))\n"
        "raise SystemExit(5)\n"
    )
    plan = WarmPlan(
        server=(PY, str(FORKSERVER)),
        kind="module",
        target="probe_pkg",
        argv=("-m",),
        orig_argv=("-m", "probe_pkg"),
        path0=os.path.realpath(tmp_path / "work"),
    )

    async def scenario() -> None:
        pool = WarmPool()
        read_fd, write_fd = os.pipe()
        try:
            env = {"PATH": os.environ["PATH"], "ASSAY_RUN": "m/0/1"}
            await pool.prepare(plan, env)
            _pid, ended = await pool.spawn(plan, env, tmp_path / "work", "m/0/1", write_fd)
            os.close(write_fd)
            assert await ended == 5
            with os.fdopen(read_fd, "rb") as output:
                seen = json.loads(output.read())
        finally:
            await pool.close()
        cold = json.loads(
            (
                await (
                    await asyncio.create_subprocess_exec(
                        PY, "-m", "probe_pkg", cwd=tmp_path / "work", stdout=asyncio.subprocess.PIPE
                    )
                ).communicate()
            )[0]
        )
        assert seen == cold
        assert seen["argv"] == [str(package / "__main__.py")] and seen["name"] == "__main__"

    drive(scenario(), timeout=60)


# -- how runs end ---------------------------------------------------------------------------------------


def test_exit_statuses_and_a_crash_that_touches_nothing_else(tmp_path: Path) -> None:
    scripts = {
        "seven": "import sys\nsys.exit(7)\n",
        "message": "import sys\nsys.exit('bye now')\n",
        "boom": "def fail():\n    raise ValueError('boom')\nfail()\n",
        "abort": "import os\nos.abort()\n",
        "atexit": "import atexit, sys\natexit.register(lambda: print('atexit ran'))\nsys.stdout.write('no newline')\n",
        "patient": (
            "import os, time\n"
            "open('started', 'w').close()\n"
            "while not os.path.exists('go'):\n"
            "    time.sleep(0.02)\n"
            "print('patient done', os.getppid())\n"
        ),
    }
    for name, text in scripts.items():
        (tmp_path / f"{name}.py").write_text(text)

    async def scenario() -> None:
        recorder = Recorder()
        rt = warm_runtime(tmp_path / "root", recorder)
        try:
            assert await rt.warm_up(f"{PY} {tmp_path / 'patient.py'}")
            patient = RunKey("e", 0, 1)
            job_path = await rt.launch(launch_of(patient, f"{PY} {tmp_path / 'patient.py'}"))
            work = job_path.parent.parent
            await until(lambda: (work / "started").exists(), timeout=60)
            keys = {}
            for index, name in enumerate(["seven", "message", "boom", "abort", "atexit"], start=1):
                keys[name] = RunKey("e", index, 1)
                await rt.launch(launch_of(keys[name], f"{PY} {tmp_path / name}.py"))
            await recorder.wait_exits(5, timeout=60)
            codes = {name: recorder.exit_of(key).returncode for name, key in keys.items()}
            assert codes == {"seven": 7, "message": 1, "boom": 1, "abort": -signal.SIGABRT, "atexit": 0}
            assert "bye now" in log_of(rt, keys["message"])
            boom = log_of(rt, keys["boom"])
            assert "Traceback (most recent call last):" in boom and "ValueError: boom" in boom
            assert log_of(rt, keys["atexit"]).splitlines() == ["no newlineatexit ran"]
            # The crash touched neither the run beside it nor the server.
            (work / "go").touch()
            await recorder.wait_exits(6, timeout=30)
            assert recorder.exit_of(patient).returncode == 0
            server = int(log_of(rt, patient).split()[-1])
            after = RunKey("e", 9, 1)
            await rt.launch(launch_of(after, f"{PY} {tmp_path / 'patient.py'}"))
            after_work = work.parent.parent.parent / "9" / "prov" / "bench"
            await until(lambda: (after_work / "started").exists(), timeout=30)
            (after_work / "go").touch()
            await recorder.wait_exits(7, timeout=30)
            assert int(log_of(rt, after).split()[-1]) == server
        finally:
            await rt.close()
        await until(lambda: not alive(server))

    drive(scenario(), timeout=120)


# -- stop, timeout, orphans, server death, shutdown -------------------------------------------------------

FAMILY = (
    "import os, subprocess, time\n"
    "child = subprocess.Popen(['sleep', '60'])\n"
    "open('family', 'w').write(f'{os.getpid()} {child.pid} {os.getppid()}')\n"
    "time.sleep(60)\n"
)


def test_stop_and_timeout_end_the_whole_group(tmp_path: Path) -> None:
    (tmp_path / "family.py").write_text(FAMILY)

    async def scenario() -> None:
        recorder = Recorder()
        rt = warm_runtime(tmp_path / "root", recorder)
        try:
            assert await rt.warm_up(f"{PY} {tmp_path / 'family.py'}")
            stopped, timed_out = RunKey("e", 0, 1), RunKey("e", 1, 1)
            families = []
            for key, timeout in ((stopped, 60.0), (timed_out, 1.0)):
                job_path = await rt.launch(launch_of(key, f"{PY} {tmp_path / 'family.py'}", timeout=timeout))
                family = job_path.parent.parent / "family"
                await until(lambda family=family: family.exists() and family.read_text() != "", timeout=60)
                families.append([int(x) for x in family.read_text().split()])
            await rt.stop("e", 0)
            await recorder.wait_exits(2, timeout=30)
            assert recorder.exit_of(stopped).reason == "stopped"
            assert recorder.exit_of(timed_out).reason == "timeout"
            for adapter, grandchild, _server in families:
                await until(lambda a=adapter, g=grandchild: not alive(a) and not alive(g))
            assert alive(families[0][2])  # the server outlives its children
        finally:
            await rt.close()

    drive(scenario(), timeout=120)


def test_an_orphan_of_a_dead_hub_is_found_by_its_marker(tmp_path: Path) -> None:
    (tmp_path / "family.py").write_text(FAMILY)

    async def scenario() -> None:
        recorder = Recorder()
        rt = warm_runtime(tmp_path / "root", recorder)
        later = warm_runtime(tmp_path / "root", Recorder())
        try:
            assert await rt.warm_up(f"{PY} {tmp_path / 'family.py'}")
            key = RunKey("e", 0, 1)
            job_path = await rt.launch(launch_of(key, f"{PY} {tmp_path / 'family.py'}"))
            family = job_path.parent.parent / "family"
            await until(lambda: family.exists() and family.read_text() != "", timeout=60)
            adapter, grandchild, _server = (int(x) for x in family.read_text().split())
            assert carries_marker(adapter, "e/0/1") and carries_marker(grandchild, "e/0/1")
            assert marked_anywhere("e/0/1") == {adapter, grandchild}
            # Another hub instance, reading the runtime_ref recorded before the fork (pid unknown).
            [(_, ref)] = recorder.spawns
            assert await later.kill_orphan(ref, key)
            await recorder.wait_exits(1, timeout=30)
            await until(lambda: not alive(adapter) and not alive(grandchild))
        finally:
            await rt.close()
            await later.close()

    drive(scenario(), timeout=120)


def test_a_dead_server_kills_its_runs_and_the_next_run_starts_a_new_one(tmp_path: Path) -> None:
    (tmp_path / "family.py").write_text(FAMILY)

    async def scenario() -> None:
        recorder = Recorder()
        rt = warm_runtime(tmp_path / "root", recorder)
        try:
            families = []
            for index in range(2):
                assert await rt.warm_up(f"{PY} {tmp_path / 'family.py'}")  # the second time: a new server
                key = RunKey("e", index, 1)
                job_path = await rt.launch(launch_of(key, f"{PY} {tmp_path / 'family.py'}", timeout=60))
                family = job_path.parent.parent / "family"
                await until(lambda family=family: family.exists() and family.read_text() != "", timeout=60)
                families.append([int(x) for x in family.read_text().split()])
                if index == 0:
                    adapter, grandchild, server = families[0]
                    os.kill(server, signal.SIGKILL)
                    await recorder.wait_exits(1, timeout=30)
                    assert recorder.exit_of(key).returncode == -signal.SIGKILL
                    await until(lambda a=adapter, g=grandchild: not alive(a) and not alive(g))
            assert families[1][2] != families[0][2]
            await rt.stop("e")
        finally:
            await rt.close()

    drive(scenario(), timeout=120)


def test_closing_the_runtime_leaves_no_process(tmp_path: Path) -> None:
    (tmp_path / "family.py").write_text(FAMILY)

    async def scenario() -> None:
        recorder = Recorder()
        rt = warm_runtime(tmp_path / "root", recorder)
        assert await rt.warm_up(f"{PY} {tmp_path / 'family.py'}")
        key = RunKey("e", 0, 1)
        job_path = await rt.launch(launch_of(key, f"{PY} {tmp_path / 'family.py'}"))
        family = job_path.parent.parent / "family"
        await until(lambda: family.exists() and family.read_text() != "", timeout=60)
        pids = [int(x) for x in family.read_text().split()]
        await rt.close()
        assert recorder.exit_of(key).reason == "shutdown"
        # Signalled and reaped or on their way out (a process that closed its files may not be a zombie yet).
        await until(lambda: not any(alive(pid) for pid in pids) and marked_anywhere("e/0/1") == set())

    drive(scenario(), timeout=120)


# -- what starts cold ---------------------------------------------------------------------------------------


def test_eligible_commands(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    env = {"PATH": f"{Path(PY).parent}:/usr/bin:/bin"}
    plan = plan_warm(f"{PY} a.py", env, tmp_path)
    assert plan is not None and plan.kind == "script" and plan.target == str(tmp_path / "a.py")
    assert plan_warm(f"exec {PY} {tmp_path / 'a.py'}", env, tmp_path) is not None
    adapter = plan_warm("assay-adapter lm_eval", env, tmp_path)
    assert adapter is not None and adapter.kind == "module" and adapter.target == "adapters.lm_eval"
    for command in [
        f"{PY} a.py --limit 3",  # arguments
        f"{PY} a.py; true",  # a shell
        f"{PY} -m a",
        f"{PY} missing.py",
        "/bin/sh a.py",  # not Python
        "sleep 1",
        "assay-adapter 'lm-eval'",
        "assay-adapter lm_eval --build",
        "'unbalanced",
    ]:
        assert plan_warm(command, env, tmp_path) is None, command
    # Another assay-adapter first on the provider's PATH: what it does is its business.
    other = tmp_path / "bin"
    other.mkdir()
    (other / "assay-adapter").write_text("#!/bin/sh\n")
    (other / "assay-adapter").chmod(0o755)
    assert plan_warm("assay-adapter lm_eval", {"PATH": f"{other}:{env['PATH']}"}, tmp_path) is None


def test_ineligible_and_failed_warm_starts_run_cold(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "probe.py").write_text(PROBE)

    async def scenario() -> None:
        recorder = Recorder()
        rt = warm_runtime(tmp_path / "root", recorder)
        try:
            shell = RunKey("e", 0, 1)
            await rt.launch(launch_of(shell, f"{PY} {tmp_path / 'probe.py'} extra-argument"))
            await recorder.wait_exits(1, timeout=60)
            assert "forkserver.py" not in probe_of(log_of(rt, shell))["parent"]
            # The first launch of a command does not wait for the server it starts: it runs cold.
            first = RunKey("e", 3, 1)
            await rt.launch(launch_of(first, f"{PY} {tmp_path / 'probe.py'}"))
            await recorder.wait_exits(2, timeout=60)
            assert "forkserver.py" not in probe_of(log_of(rt, first))["parent"]
            assert await rt.warm_up(f"{PY} {tmp_path / 'probe.py'}")
            # Eligible, but its fork server cannot start (no such adapter): cold, which says why; said once.
            with caplog.at_level(logging.WARNING, logger="assay.runtimes._warm"):
                assert not await rt.warm_up("assay-adapter no_such_adapter")
                for index in (1, 2):
                    await rt.launch(launch_of(RunKey("e", index, 1), "assay-adapter no_such_adapter"))
                    await recorder.wait_exits(index + 2, timeout=60)
                    failed = recorder.exit_of(RunKey("e", index, 1))
                    assert (failed.reason, failed.returncode) == ("exited", 2)
                    assert "unknown adapter 'no_such_adapter'" in log_of(rt, RunKey("e", index, 1))
            warnings = [r for r in caplog.records if "warm start of" in r.getMessage()]
            assert len(warnings) == 1
        finally:
            await rt.close()

    drive(scenario(), timeout=120)


def test_a_server_whose_preloads_start_threads_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "starts_a_thread.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    )
    plan = WarmPlan(
        server=(PY, str(FORKSERVER), "--preload", "starts_a_thread"),
        kind="script",
        target=str(tmp_path / "starts_a_thread.py"),
        argv=("starts_a_thread.py",),
        orig_argv=("starts_a_thread.py",),
        path0=str(tmp_path),
    )

    async def scenario() -> None:
        pool = WarmPool()
        read_fd, write_fd = os.pipe()
        try:
            env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path), "ASSAY_RUN": "t/0/1"}
            with pytest.raises(WarmStartError, match="thread"):
                await pool.prepare(plan, env)
            with pytest.raises(WarmStartError, match="thread"):  # not tried again at once
                await pool.spawn(plan, env, tmp_path, "t/0/1", write_fd)
        finally:
            os.close(read_fd)
            os.close(write_fd)
            await pool.close()

    drive(scenario(), timeout=60)


def test_a_file_a_preload_opened_stays_open_and_is_each_runs_own(tmp_path: Path) -> None:
    log = tmp_path / "preload.log"
    (tmp_path / "opens_a_file.py").write_text(
        "import os\nLOG = open(os.environ['PRELOAD_LOG'], 'a')  # as garak opens its log file at import\n"
    )
    (tmp_path / "writes.py").write_text(
        "import os, opens_a_file\n"
        "opens_a_file.LOG.write(os.environ['ASSAY_RUN'] + '\\n')\n"
        "opens_a_file.LOG.flush()\n"
        "print(os.readlink(f'/proc/self/fd/{opens_a_file.LOG.fileno()}'))\n"
    )
    plan = WarmPlan(
        server=(PY, str(FORKSERVER), "--preload", "opens_a_file"),
        kind="script",
        target=str(tmp_path / "writes.py"),
        argv=("writes.py",),
        orig_argv=("writes.py",),
        path0=str(tmp_path),
    )

    async def scenario() -> None:
        pool = WarmPool()
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path), "PRELOAD_LOG": str(log)}
        try:
            await pool.prepare(plan, env)
            for index in range(2):
                marker = f"f/{index}/1"
                read_fd, write_fd = os.pipe()
                _pid, ended = await pool.spawn(plan, {**env, "ASSAY_RUN": marker}, tmp_path, marker, write_fd)
                os.close(write_fd)
                assert await ended == 0
                with os.fdopen(read_fd) as output:
                    assert output.read().strip() == str(log)
        finally:
            await pool.close()
        assert log.read_text().splitlines() == ["f/0/1", "f/1/1"]

    drive(scenario(), timeout=60)


HUB = """
import asyncio, sys
from pathlib import Path
from assay.runtimes import LocalLaunch, LocalRuntime, RunKey

async def main(root, command):
    async def on_exit(exit_):
        pass
    rt = LocalRuntime(Path(root), max_parallel=1, on_exit=on_exit, warm_start=True)
    assert await rt.warm_up(command)
    await rt.launch(LocalLaunch(key=RunKey("e", 0, 1), provider_id="prov", benchmark_id="bench",
                                command=command, env={}, job_spec={}, timeout_seconds=600))
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_a_hub_killed_takes_its_fork_server_and_children_with_it(tmp_path: Path) -> None:
    (tmp_path / "family.py").write_text(FAMILY)
    (tmp_path / "hub.py").write_text(HUB)
    root = tmp_path / "root"
    family = root / "e" / "0" / "prov" / "bench" / "family"

    async def scenario() -> None:
        hub = await asyncio.create_subprocess_exec(
            PY, str(tmp_path / "hub.py"), str(root), f"{PY} {tmp_path / 'family.py'}"
        )
        try:
            await until(lambda: family.exists() and family.read_text() != "", timeout=60)
            adapter, grandchild, server = (int(x) for x in family.read_text().split())
        finally:
            hub.kill()
            await hub.wait()
        # The server goes with the hub, the adapter with the server; what the adapter started is an orphan that
        # the next hub finds by its marker, as after a cold run.
        await until(lambda: not alive(server) and not alive(adapter), timeout=30)
        assert alive(grandchild) and carries_marker(grandchild, "e/0/1")
        later = warm_runtime(root, Recorder())
        try:
            assert await later.kill_orphan("local:dead-hub:0", RunKey("e", 0, 1))
        finally:
            await later.close()
        await until(lambda: not alive(grandchild))

    drive(scenario(), timeout=120)


def test_an_idle_server_is_let_go_and_the_next_launch_starts_another(tmp_path: Path) -> None:
    (tmp_path / "parent.py").write_text("import os\nprint(os.getppid())\n")
    command = f"{PY} {tmp_path / 'parent.py'}"

    async def scenario() -> None:
        recorder = Recorder()
        rt = warm_runtime(tmp_path / "root", recorder, idle=0.2)
        try:
            servers = []
            for index in range(2):
                assert await rt.warm_up(command)
                await rt.launch(launch_of(RunKey("e", index, 1), command))
                await recorder.wait_exits(index + 1, timeout=60)
                servers.append(int(log_of(rt, RunKey("e", index, 1))))
                await until(lambda server=servers[-1]: not alive(server))  # idle: stopped
            assert servers[0] != servers[1]
        finally:
            await rt.close()

    drive(scenario(), timeout=120)
