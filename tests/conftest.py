"""Shared fixtures: a real PostgreSQL server for the session, a fresh database per test, the app."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg.conninfo import make_conninfo

from assay.http import create_app
from assay.settings import Settings
from assay.store import EmbeddedPostgres

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server (the embedded one the hub uses), for the whole session."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    url = server.start()
    yield url
    server.stop()


@pytest.fixture()
def database_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database on the session server; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(pg_server, dbname=name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture()
def settings_for(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "data_dir": tmp_path / "hub",
            "config_dir": FIXTURES / "catalogue",
            "config_reload": False,
            "log_format": "json",
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture()
def make_client(settings_for: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    """Build a started app over the test database; ``make_client(**settings)`` may be called again."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(create_app(settings_for(**overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture()
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """The local-mode app with the small test catalogue (tests/fixtures/catalogue)."""
    return make_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A real uvicorn server on loopback, in a thread, for clients that speak HTTP (eval-hub-sdk)."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture()
def start_hub(settings_for: Callable[..., Settings]) -> Iterator[Callable[..., LiveServer]]:
    """Start a whole local hub on a real loopback port (adapters call it back over HTTP)."""
    started: list[LiveServer] = []

    def start(exporter: Callable[[Settings], Any] | None = None, **overrides: Any) -> LiveServer:
        """``exporter`` builds the hub's exporter from its settings (``assay.exports.build_exporter``)."""
        port = free_port()
        settings = settings_for(port=port, **overrides)
        app = create_app(settings, exporter=exporter(settings) if exporter is not None else None)
        server = LiveServer(app, port).__enter__()
        server.settings = settings  # type: ignore[attr-defined]
        server.app = server.server.config.app  # type: ignore[attr-defined]
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)


@pytest.fixture()
def live_hub(start_hub: Callable[..., LiveServer]) -> LiveServer:
    return start_hub()


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        time.sleep(interval)


@pytest.fixture(scope="session")
def model_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The bundled Gemma 3 270M served by llama.cpp on loopback (``assay.demo.ModelServer``), one for the whole
    session: ``.base_url`` (``http://127.0.0.1:P/v1``), ``.model_name``. The GGUF file is assembled once into
    ``$ASSAY_TEST_CACHE/models`` or the pytest cache (``.pytest_cache/d/assay-models``) and reused by later runs."""
    import os

    from assay.demo import ModelServer

    configured = os.environ.get("ASSAY_TEST_CACHE")
    if configured:
        cache = Path(configured) / "models"
    elif request.config.cache is not None:
        cache = Path(request.config.cache.mkdir("assay-models"))
    else:  # the cache provider is disabled (-p no:cacheprovider): assemble once per session
        cache = tmp_path_factory.mktemp("assay-models")
    with ModelServer(cache_dir=cache) as server:
        yield server
