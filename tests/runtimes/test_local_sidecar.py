"""The local hub's sidecar process (assay.runtimes.sidecar.LocalSidecar) against the real ``adapters.sidecar``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from assay.runtimes.sidecar import LocalSidecar, SidecarOptions


def _options(tmp_path: Path) -> SidecarOptions:
    return SidecarOptions(
        jobs_root=tmp_path / "jobs",
        hub_url="http://127.0.0.1:9",  # nothing is forwarded in this test
        cache_dir=tmp_path / "cache",
        max_concurrency=2,
        work_dir=tmp_path / "sidecar",
        shutdown_seconds=0.5,
    )


def test_one_client_serves_every_drain_and_closes_with_the_sidecar(tmp_path: Path) -> None:
    async def scenario() -> None:
        sidecar = LocalSidecar(_options(tmp_path))
        assert await sidecar.drain("job-before-start", timeout=0.0) == -1  # not started: cannot ask
        await sidecar.start()
        try:
            client = sidecar._client
            assert isinstance(client, httpx.AsyncClient)
            # Several finished runs at once, then one more: all answered, through the one client.
            drained = await asyncio.gather(*(sidecar.drain(f"job-{i}", timeout=1.0) for i in range(5)))
            assert drained == [0] * 5
            assert await sidecar.drain("job-5", timeout=1.0) == 0
            assert sidecar._client is client and not client.is_closed
        finally:
            await sidecar.close(grace_seconds=10.0)
        assert client.is_closed
        assert sidecar._process is not None and sidecar._process.poll() is not None
        assert await sidecar.drain("job-after-close", timeout=0.0) == -1

    asyncio.run(asyncio.wait_for(scenario(), 60.0))
