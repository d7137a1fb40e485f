"""The operations surface: health, readiness, metrics, OpenAPI, structured logs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from assay.settings import Settings
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


def test_health_endpoints(client: TestClient) -> None:
    for path in ("/api/v1/health", "/health", "/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.json()["status"] == "healthy"
    assert client.get("/readyz").json()["checks"] == {"database": "ok"}


def test_readyz_fails_when_the_database_goes_away(
    make_client: Callable[..., TestClient], database_url: str, pg_server: str
) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    client = make_client(db_connect_timeout=1)
    name = conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "unhealthy"
        listing = client.get("/api/v1/evaluations/providers")
        assert listing.status_code == 503
        assert listing.json()["message_code"] == "service_unavailable"
        health = client.get("/api/v1/health")  # the truth about the database (issue 21)
        assert health.status_code == 503
        # "timeout" when the pool is still waiting on a connection after a second, "unavailable…" once it failed
        database = health.json()["checks"]["database"]
        assert database == "timeout" or database.startswith("unavailable"), database
        assert client.get("/healthz").status_code == 200  # liveness does not depend on the DB
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    # The pool reconnects with backoff.
    wait_for(lambda: client.get("/readyz").status_code == 200, "the hub to be ready again", interval=0.2)
    assert client.get("/api/v1/evaluations/providers").status_code == 200


def test_metrics_by_route_status_and_pool(client: TestClient) -> None:
    client.get("/api/v1/evaluations/providers/demo")
    client.get("/api/v1/evaluations/providers/demo")  # the second one counts in the series the first found
    client.get("/api/v1/evaluations/providers/nope")
    text = client.get("/metrics").text
    assert (
        'assay_http_requests_total{method="GET",route="/api/v1/evaluations/providers/{provider_id}",status="200"} 2.0'
        in text
    )
    assert (
        'assay_http_request_duration_seconds_count{method="GET",route="/api/v1/evaluations/providers/{provider_id}"}'
        " 3.0" in text
    )
    assert (
        'assay_http_requests_total{method="GET",route="/api/v1/evaluations/providers/{provider_id}",status="404"} 1.0'
        in text
    )
    assert "assay_http_request_duration_seconds_bucket" in text
    assert 'assay_db_pool_connections{state="open"}' in text
    assert "assay_db_pool_max_connections 4.0" in text


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/evaluations/providers/{provider_id}" in spec["paths"]
    assert "/api/v1/evaluations/collections/{collection_id}/clones" in spec["paths"]
    as_yaml = yaml.safe_load(client.get("/openapi.yaml").text)
    assert as_yaml["info"]["title"] == "Assay"
    assert "swagger" in client.get("/docs").text.lower()


def test_log_lines_carry_request_tenant_and_user(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    from assay.telemetry.logs import JsonFormatter

    client = make_client()
    with caplog.at_level(logging.INFO, logger="assay.access"):
        client.get(
            "/api/v1/evaluations/providers",
            # X-User is not who the caller is: the token's subject is.
            headers={"X-Tenant": "team-a", "X-User": "alice", "X-Global-Transaction-Id": "req-123"},
        )
    records = [r for r in caplog.records if r.name == "assay.access"]
    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["request_id"] == "req-123"
    assert (line["tenant"], line["user"], line["status"]) == ("team-a", "test-admin", 200)
    assert line["route"] == "/api/v1/evaluations/providers"


def test_a_request_id_that_is_not_a_plain_token_is_replaced(make_client: Callable[..., TestClient]) -> None:
    """The caller's X-Global-Transaction-Id is echoed and logged: only visible ASCII of at most 128 characters is
    taken (a non-ASCII one came back in a response header no ASCII client could read, a long one on every log
    line); anything else gets a fresh id."""
    client = make_client()
    taken = client.get("/api/v1/evaluations/providers", headers={"X-Global-Transaction-Id": "ci-run-42/7"})
    assert taken.headers["x-global-transaction-id"] == "ci-run-42/7"
    for odd in ("\u00b3".encode("latin-1"), b"a" * 129, b"two words", b"\xff\xfe"):
        answer = client.get("/api/v1/evaluations/providers", headers={"X-Global-Transaction-Id": odd})
        assert answer.status_code == 200
        echoed = answer.headers["x-global-transaction-id"]
        assert echoed.encode() != odd and len(echoed) == 36, echoed  # a uuid of its own


def test_cors_allows_identity_headers_for_configured_origins(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_origins=("http://localhost:3000",))
    response = client.options(
        "/api/v1/evaluations/providers",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "X-Tenant",
        },
    )
    assert response.status_code == 200
    assert "x-tenant" in response.headers["access-control-allow-headers"].lower()


def test_configuration_reference_is_current() -> None:
    from pathlib import Path

    from assay.cli import configuration_reference

    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert doc.read_text() == configuration_reference(), "run: assay config-doc > docs/configuration.md"
    assert all(
        f"`ASSAY_{name.upper()}`" in doc.read_text()
        for name in Settings.model_fields
        if name != "database_url"
    )


def test_the_hubs_log_lines_keep_every_field_and_traceback() -> None:
    """configure_logging turns off what neither formatter writes (caller, thread, process); a JSON line still has
    its time, level, logger, message, context and extras, and an exception its traceback."""
    script = (
        "import logging\n"
        "from assay.telemetry import configure_logging, request_id_var\n"
        "configure_logging('json', 'INFO')\n"
        "request_id_var.set('req-9')\n"
        "logging.getLogger('assay.access').info('GET %s -> %d', '/x', 200, extra={'route': '/x', 'status': 200})\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    logging.getLogger('assay.lifecycle').exception('failed')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO, check=True
    )
    first, second = (json.loads(line) for line in done.stderr.splitlines())
    assert set(first) == {"time", "level", "logger", "message", "request_id", "route", "status"}
    assert (first["message"], first["request_id"], first["status"]) == ("GET /x -> 200", "req-9", 200)
    assert second["level"] == "error" and "ZeroDivisionError" in second["exception"]
    assert "line 7, in <module>" in second["exception"]
