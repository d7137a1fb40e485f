"""EvalHub's own MCP server (``evalhub-mcp``, the Go binary of PyPI ``eval-hub-mcp`` 1.0.2, unmodified) against a
live Assay, driven over stdio by the official MCP client (PyPI ``mcp``): what an agent in an IDE does. Its tools
discover providers, submit an evaluation, follow it to the end and cancel one; its resources read the catalogue
and the jobs; a server configured for another tenant sees none of it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextResourceContents

from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.lifecycle.test_local_lifecycle import exact_match_provider

MCP_SERVER = shutil.which("evalhub-mcp", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(
    MCP_SERVER is None and not os.environ.get("CI"),
    reason="eval-hub-mcp is not installed (pip install -e .[dev])",
)


def idle_provider() -> dict[str, Any]:
    """A provider whose adapter never reports: its job stays running until it is cancelled."""
    body = exact_match_provider(id="idle", name="Idle (test adapter)")
    body["runtime"] = {"local": {"command": "sleep 600"}}
    return body


def with_mcp(
    hub: LiveServer, tenant: str, tmp_path: Path, scenario: Callable[[ClientSession], Awaitable[None]]
) -> None:
    """Run ``scenario`` against a fresh ``evalhub-mcp`` (stdio) configured, as its README says, by environment."""
    assert MCP_SERVER is not None, "eval-hub-mcp is not installed"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "EVALHUB_BASE_URL": hub.url,
        "EVALHUB_TOKEN": ADMIN_TOKEN,
        "EVALHUB_TENANT": tenant,
    }

    async def main() -> None:
        with (tmp_path / f"evalhub-mcp-{tenant}.log").open("w") as log:
            params = StdioServerParameters(command=MCP_SERVER, args=[], env=env)
            async with (
                stdio_client(params, errlog=log) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                await scenario(session)

    asyncio.run(asyncio.wait_for(main(), timeout=120))


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.isError, result.content
    assert result.structuredContent is not None, result.content
    return result.structuredContent


async def resource(session: ClientSession, uri: str) -> Any:
    read = await session.read_resource(uri)  # type: ignore[arg-type]  # AnyUrl accepts the string
    [content] = read.contents
    assert isinstance(content, TextResourceContents)
    return json.loads(content.text)


async def status_until(session: ClientSession, job_id: str, states: set[str]) -> dict[str, Any]:
    """get_job_status, asked again (as an agent polls) until the job is in one of ``states``."""
    for _ in range(600):
        status = structured(await session.call_tool("get_job_status", {"job_id": job_id}))
        if status["state"] in states:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {states}: {status}")


def test_an_agent_discovers_submits_follows_and_cancels_through_evalhubs_mcp(
    live_hub: LiveServer, tmp_path: Path
) -> None:
    with live_hub.client() as http:
        for provider in (exact_match_provider(), idle_provider()):
            created = http.post("/api/v1/evaluations/providers", json=provider)
            assert created.status_code == 201, created.text
    seen: dict[str, str] = {}

    async def agent(session: ClientSession) -> None:
        tools = {tool.name for tool in (await session.list_tools()).tools}
        assert tools >= {"discover_providers", "submit_evaluation", "get_job_status", "cancel_job"}
        found = structured(await session.call_tool("discover_providers", {}))
        assert {"exact", "idle"} <= {p["id"] for p in found["providers"]}

        model = {"url": "http://127.0.0.1:9/v1", "name": "recorded-model"}
        submitted = structured(
            await session.call_tool(
                "submit_evaluation",
                {"name": "mcp-run", "model": model, "benchmarks": [{"id": "qa", "provider_id": "exact"}]},
            )
        )
        assert submitted["state"] == "pending"
        job_id = str(submitted["job_id"])
        seen["completed"] = job_id
        done = await status_until(session, job_id, {"completed", "failed"})
        assert done["state"] == "completed" and done["progress_percent"] == 100, done
        assert [b["status"] for b in done["benchmarks"]] == ["completed"]
        job = await resource(session, f"evalhub://jobs/{job_id}")
        assert job["status"]["state"] == "completed"
        assert job["results"]["benchmarks"][0]["metrics"]["exact_match"] == pytest.approx(
            0.5
        )  # the recorded answers (tests/lifecycle)

        idle = structured(
            await session.call_tool(
                "submit_evaluation",
                {"name": "mcp-cancel", "model": model, "benchmarks": [{"id": "qa", "provider_id": "idle"}]},
            )
        )
        idle_id = str(idle["job_id"])
        seen["cancelled"] = idle_id
        await status_until(session, idle_id, {"running", "pending"})
        assert (
            "cancelled successfully"
            in structured(await session.call_tool("cancel_job", {"job_id": idle_id}))["message"]
        )
        await status_until(session, idle_id, {"cancelled"})
        listed = await resource(session, "evalhub://jobs")
        assert {j["resource"]["id"] for j in listed} >= {job_id, idle_id}

    with_mcp(live_hub, "default", tmp_path, agent)

    async def other_tenant(session: ClientSession) -> None:
        assert await resource(session, "evalhub://jobs") == []
        for job_id in seen.values():
            assert (await session.call_tool("get_job_status", {"job_id": job_id})).isError
            assert (await session.call_tool("cancel_job", {"job_id": job_id})).isError

    with_mcp(live_hub, "team-b", tmp_path, other_tenant)
    with live_hub.client() as http:  # what the other tenant's server tried changed nothing
        assert (
            http.get(f"/api/v1/evaluations/jobs/{seen['completed']}").json()["status"]["state"] == "completed"
        )
