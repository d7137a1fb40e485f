"""Property-based tests of the whole HTTP API from its own /openapi.json (schemathesis): for every
operation, generated requests never get a 5xx, never a status the document does not list, and answers
carry the documented content type and (for 405) the Allow header.

A bounded run (a few examples per operation, ~250 requests) against one real hub on loopback with a real
PostgreSQL: it finds the class of bug "input the API does not expect" (issue 21) in CI, in well under two
minutes. Raise ASSAY_SCHEMATHESIS_EXAMPLES for a deeper run by hand.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from psycopg.conninfo import make_conninfo
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    status_code_conformance,
)
from schemathesis.specs.openapi.checks import response_headers_conformance, response_schema_conformance

from assay.http import create_app
from assay.settings import Settings
from tests.conftest import ADMIN, FIXTURES, TEST_HOSTS, LiveServer, TokenFile

EXAMPLES = int(os.environ.get("ASSAY_SCHEMATHESIS_EXAMPLES", "4"))


@pytest.fixture(scope="module")
def hub(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One hub for every operation of the module (a hub per operation would cost a database each)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    root: Path = tmp_path_factory.mktemp("schemathesis")
    tokens = TokenFile(root / "tokens.yaml")
    settings_ = Settings(
        database_url=make_conninfo(pg_server, dbname=name),
        data_dir=root / "hub",
        config_dir=FIXTURES / "catalogue",
        config_reload=False,
        log_format="json",
        log_level="WARNING",
        auth_token_file=tokens.path,
        allowed_hosts=TEST_HOSTS,
    )
    with LiveServer(create_app(settings_)) as server:
        yield server
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_the_api_answers_as_its_openapi_document_says(hub: LiveServer) -> None:
    """Every operation under /api, EXAMPLES generated requests each; every failure is listed at the end."""
    schema = schemathesis.openapi.from_url(f"{hub.url}/openapi.json", headers=ADMIN).include(
        path_regex=r"^/api/"
    )
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=hub.url,
                headers=ADMIN,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_headers_conformance,
                    response_schema_conformance,
                ],
                timeout=30,
            )

        try:
            exercise()
        except Exception as exc:  # collect every operation's failure, not only the first
            failures.append(f"{operation.label}:\n{exc}")
    assert operations > 30
    assert not failures, "\n\n".join(failures)


def test_the_document_describes_queries_headers_and_errors(hub: LiveServer) -> None:
    with hub.client() as http:
        document = http.get("/openapi.json").json()
        wrong_method = http.put("/api/v1/evaluations/jobs")
    jobs = document["paths"]["/api/v1/evaluations/jobs"]
    names = {(p["in"], p["name"]) for p in jobs["get"]["parameters"]}
    assert {("query", "limit"), ("query", "offset"), ("query", "status"), ("header", "X-Tenant")} <= names
    submit = jobs["post"]
    assert ("header", "Idempotency-Key") in {(p["in"], p["name"]) for p in submit["parameters"]}
    assert "422" not in submit["responses"]
    assert {"202", "400", "401", "403", "404", "409", "413", "415", "503"} <= set(submit["responses"])
    assert submit["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Job"
    }
    delete = document["paths"]["/api/v1/evaluations/jobs/{job_id}"]["delete"]
    assert "hard_delete" in {p["name"] for p in delete["parameters"]}
    compare = document["paths"]["/api/v1/evaluations/jobs/{job_id}/compare"]["get"]
    assert "baseline" in {p["name"] for p in compare["parameters"]}
    events = document["paths"]["/api/v1/events"]["post"]
    assert {"ce-id", "ce-type", "ce-source", "ce-specversion"} <= {p["name"] for p in events["parameters"]}
    assert "/api/v1/evaluations" in document["paths"]  # the design's entry point, an alias of submit
    assert wrong_method.status_code == 405
    # Starlette names the methods of the first route on the path; the header must be there (RFC 9110).
    assert set(wrong_method.headers["Allow"].replace(" ", "").split(",")) <= {"GET", "POST"}
