"""Shared fixtures: a real PostgreSQL server for the session, a fresh database per test, the app.

Every hub the fixtures build authenticates with bearer tokens, like a user's: a token file per test with
:data:`ADMIN_TOKEN` (an administrator of every tenant); ``issue_token`` adds more with their own roles, and
``launch_headers`` gives the launch credential a status event needs."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg.conninfo import make_conninfo

from assay.http import create_app
from assay.settings import Settings
from assay.store import EmbeddedPostgres
from tests.support.net import free_port
from tests.support.recorders import EventRecorder, recording
from tests.support.servers import ThreadedServer

# The docker-registry fixture (`registry`), shared by the export and trace tests.
pytest_plugins = ["tests.registry"]

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "assay-test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# TestClient sends Host: testserver; live servers are on 127.0.0.1.
TEST_HOSTS = ("127.0.0.1", "localhost", "testserver")


class TokenFile:
    """The hub's token file (``ASSAY_AUTH_TOKEN_FILE``) of one test; the hub re-reads it when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[dict[str, Any]] = []
        self.add(ADMIN_TOKEN, "test-admin", {"*": "admin"})

    def add(self, token: str, subject: str, tenants: dict[str, str]) -> str:
        self.entries.append(
            {"subject": subject, "sha256": hashlib.sha256(token.encode()).hexdigest(), "tenants": tenants}
        )
        text = yaml.safe_dump({"tokens": self.entries})
        self.path.write_text(text, encoding="utf-8")
        # Two writes within the file system's timestamp resolution must still look changed.
        stamp = time.time() + len(self.entries) * 0.01
        os.utime(self.path, (stamp, stamp))
        return token


def pytest_configure(config: pytest.Config) -> None:
    """A base temporary directory of this run's own: pytest's default (``pytest-of-<user>/pytest-N``) keeps
    the last three runs and deletes older ones, so a second run beside this one would delete the data
    directory of this run's PostgreSQL server under it."""
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        import tempfile

        config.option.basetemp = tempfile.mkdtemp(prefix="assay-pytest-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


_OWN_BASETEMP = pytest.StashKey[str]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The run's own base directory goes when the run passed (about 1 GB: the demo's model, PostgreSQL data
    directories); a failed run keeps it for a look, and says where."""
    own = session.config.stash.get(_OWN_BASETEMP, None)
    if own is None:
        return
    if exitstatus == 0:
        import shutil

        shutil.rmtree(own, ignore_errors=True)
    else:
        print(f"\nassay: this run's files are kept in {own}")


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
def token_file(tmp_path: Path) -> TokenFile:
    return TokenFile(tmp_path / "tokens.yaml")


@pytest.fixture()
def issue_token(token_file: TokenFile) -> Callable[..., dict[str, str]]:
    """``issue_token("alice", {"team-a": "editor"})`` → headers carrying a new token with those roles."""

    def issue(subject: str, tenants: dict[str, str]) -> dict[str, str]:
        token = token_file.add(f"token-{subject}-{uuid.uuid4().hex}", subject, tenants)
        return {"Authorization": f"Bearer {token}"}

    return issue


def launch_headers(
    source: Any, job_id: str, tenant: str = "default", runs: Any = ((0, 1),)
) -> dict[str, str]:
    """The headers of a status event from the launch running ``runs`` ((index, attempt) pairs) of ``job_id``,
    signed with the key of the hub behind ``source`` (its Settings, a TestClient or a LiveServer)."""
    from assay.auth import launch_signer

    settings = source if isinstance(source, Settings) else getattr(source, "settings", None)
    if settings is None:
        settings = source.app.state.settings
    token = launch_signer(settings).issue(tenant, job_id, list(runs), datetime.now(UTC), 3600)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def settings_for(database_url: str, tmp_path: Path, token_file: TokenFile) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "data_dir": tmp_path / "hub",
            "config_dir": FIXTURES / "catalogue",
            "config_reload": False,
            "log_format": "json",
            "auth_token_file": token_file.path,
            # Cluster-mode apps too: tokens from the file (tests/kubernetes exercises TokenReview), one launch key.
            "auth_mode": "token",
            "launch_signing_key": "assay-test-launch-signing-key-0123456789abcdef",
            "allowed_hosts": TEST_HOSTS,
            # The tests' own adapters are local commands their tenants define (tests/security checks the refusal).
            "local_command_tenants": ("default", "team-a", "team-b"),
            # Cluster-mode tests reach their model and registry on loopback (one machine plays the cluster).
            "egress_allow_loopback": True,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture()
def make_client(settings_for: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    """Build a started app over the test database; ``make_client(**settings)`` may be called again."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(
            create_app(settings_for(**overrides)), raise_server_exceptions=False, headers=ADMIN
        )
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture()
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """The local-mode app with the small test catalogue (tests/fixtures/catalogue), as an administrator."""
    return make_client()


class LiveServer(ThreadedServer):
    """A real uvicorn server on loopback, in a thread, for clients that speak HTTP (eval-hub-sdk)."""

    def __init__(self, app: FastAPI, port: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(app, port)
        self.headers = dict(ADMIN if headers is None else headers)
        """What a client of this server sends: an administrator's token."""

    def client(self, timeout: float = 30.0, headers: dict[str, str] | None = None) -> httpx.Client:
        """An HTTP client of this server carrying the administrator's token (or ``headers``)."""
        return httpx.Client(
            base_url=self.url, headers=self.headers if headers is None else headers, timeout=timeout
        )


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


@pytest.fixture()
def recorder() -> Iterator[EventRecorder]:
    """The hub's events endpoint as a recording stand-in on loopback (``tests.support.recorders``)."""
    with recording() as events:
        yield events


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
    elif getattr(request.config, "cache", None) is not None:
        cache = Path(request.config.cache.mkdir("assay-models"))
    else:  # the cache provider is disabled (-p no:cacheprovider): assemble once per session
        cache = tmp_path_factory.mktemp("assay-models")
    with ModelServer(cache_dir=cache) as server:
        yield server
