"""The local hub's sidecar process (assay.runtimes.sidecar.LocalSidecar) against the real ``adapters.sidecar``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from assay.runtimes.sidecar import LocalSidecar, SidecarOptions, _answers
from tests.support.net import free_port


def _options(tmp_path: Path, hub_url: str = "http://127.0.0.1:9") -> SidecarOptions:
    return SidecarOptions(
        jobs_root=tmp_path / "jobs",
        hub_url=hub_url,
        cache_dir=tmp_path / "cache",
        max_concurrency=2,
        work_dir=tmp_path / "sidecar",
        shutdown_seconds=0.5,
    )


def test_start_waits_for_the_sidecar_and_close_stops_it(tmp_path: Path) -> None:
    """start() returns once the sidecar answers its health probe (the standard library's client, on loopback:
    nothing to import or load for it); finished runs with nothing on the way drain from the spool; close()
    stops the process."""

    async def scenario() -> None:
        sidecar = LocalSidecar(_options(tmp_path))
        url = await sidecar.start()
        try:
            assert url == sidecar.url and url.startswith("http://127.0.0.1:")
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{url}/health")).status_code == 200
            drained = await asyncio.gather(*(sidecar.drain(f"job-{i}", timeout=1.0) for i in range(5)))
            assert drained == [0] * 5
        finally:
            await sidecar.close(grace_seconds=10.0)
        assert sidecar._process is not None and sidecar._process.poll() is not None
        assert not _answers(int(url.rsplit(":", 1)[1]))  # a closed port is "not ready", not an error

    asyncio.run(asyncio.wait_for(scenario(), 60.0))


def test_drain_waits_for_what_the_sidecar_buffered_to_reach_the_hub(tmp_path: Path) -> None:
    """The hub is down when the adapter reports: the sidecar acknowledges and spools the event. Draining the
    run's job waits until the hub has taken it (the spool is empty again), and says how many are left when
    it gives up first."""
    hub_port = free_port()  # nothing listens yet

    async def scenario() -> None:
        sidecar = LocalSidecar(_options(tmp_path, f"http://127.0.0.1:{hub_port}"))
        await sidecar.start()
        try:
            event = {"benchmark_status_event": {"provider_id": "p", "id": "b", "benchmark_index": 0}}
            event["benchmark_status_event"]["status"] = "running"
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(f"{sidecar.url}/api/v1/evaluations/jobs/job1/events", json=event)
            assert answer.status_code == 202
            assert sidecar.spooled("job1") and not sidecar.spooled("job2")
            assert await sidecar.drain("job1", timeout=0.0) == 1  # still on its way
            assert await sidecar.drain("job2", timeout=0.0) == 0

            received = asyncio.Event()

            async def hub(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                await writer.drain()
                writer.close()
                received.set()

            server = await asyncio.start_server(hub, "127.0.0.1", hub_port)
            async with server:
                assert await sidecar.drain("job1", timeout=30.0) == 0  # the sidecar's retry reached the hub
                assert received.is_set()
        finally:
            await sidecar.close(grace_seconds=10.0)

    asyncio.run(asyncio.wait_for(scenario(), 60.0))
