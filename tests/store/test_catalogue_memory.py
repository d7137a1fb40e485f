"""A submit plans from the catalogue as this process last read it (``CatalogueMemory``) and the statement that
creates the job checks the catalogue has not moved since (``catalogue_unchanged``). These check, with the real
app and database, that a change made elsewhere (another replica, an operator's SQL) is never planned around, that
a refusal is never given from memory, and that an unchanged catalogue is not read again."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from assay.core import Tenant
from assay.store import CatalogueChanged, Database
from tests.http.test_providers import provider_body
from tests.store.test_guarded_change import job
from tests.store.test_job_list_store import run

P = "/api/v1/evaluations/providers"
J = "/api/v1/evaluations/jobs"


def submit(client: TestClient, provider_id: str) -> Any:
    return client.post(
        J,
        json={
            "name": "remembered",
            "model": {"url": "http://127.0.0.1:9/v1", "name": "m"},
            "benchmarks": [{"id": "qa", "provider_id": provider_id}],
        },
    )


def threshold(database_url: str, job_id: str) -> float:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT plan FROM evaluations WHERE id = %s", [job_id]).fetchone()
    assert row is not None
    return float(row[0]["benchmarks"][0]["score"]["threshold"])


def change_elsewhere(database_url: str, provider_id: str, spec: dict[str, Any]) -> None:
    """What another replica's write does to this process: the rows change, its memory does not hear of it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE providers SET spec = %s WHERE id = %s", [Jsonb(spec), provider_id])


def test_a_provider_changed_elsewhere_is_planned_as_it_is_now(client: TestClient, database_url: str) -> None:
    pid = client.post(P, json=provider_body()).json()["resource"]["id"]
    first = submit(client, pid)
    assert first.status_code == 202, first.text
    assert threshold(database_url, first.json()["resource"]["id"]) == 0.6
    spec = provider_body()
    spec["benchmarks"][0]["pass_criteria"] = {"threshold": 0.9}
    change_elsewhere(database_url, pid, {**spec, "id": pid})
    second = submit(client, pid)  # memory still has 0.6: the create refuses it, the plan is made again
    assert second.status_code == 202, second.text
    assert threshold(database_url, second.json()["resource"]["id"]) == 0.9


def test_a_refusal_is_never_given_from_memory(client: TestClient, database_url: str) -> None:
    refused = submit(client, "later")
    assert refused.status_code in (400, 404), refused.text  # remembered: no provider "later" at this revision
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO providers (tenant, id, owner, spec) VALUES ('default', 'later', 'someone', %s)",
            [Jsonb({**provider_body(), "id": "later"})],
        )
    accepted = submit(client, "later")
    assert accepted.status_code == 202, accepted.text


def test_an_unchanged_catalogue_is_not_read_again(client: TestClient, database_url: str) -> None:
    pid = client.post(P, json=provider_body()).json()["resource"]["id"]
    assert submit(client, pid).status_code == 202  # read once, remembered
    answers: list[int] = []
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE providers IN ACCESS EXCLUSIVE MODE")  # a read of providers would wait for it
        worker = threading.Thread(target=lambda: answers.append(submit(client, pid).status_code))
        worker.start()
        worker.join(timeout=10)
        assert answers == [202], "the second submit read the providers table"
    worker.join()


def test_a_create_at_an_old_revision_writes_nothing(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        store = database.scoped(Tenant("team-a"))
        view = await store.providers.view(["p"], remembered=True)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO providers (tenant, id, owner, spec) VALUES ('team-a', 'p', 'someone', '{}')"
            )
        assert (await store.providers.view(["p"], remembered=True)) is view  # memory: not read again
        with pytest.raises(CatalogueChanged):
            await store.evaluations.create(
                job("job-stale"),
                idempotency_key=None,
                request_hash="h",
                events=(),
                catalogue_revision=view.revision,
            )
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM evaluations").fetchone() == (0,)
        fresh = await store.providers.view(["p"], remembered=False)
        assert fresh.revision > view.revision and set(fresh.records) == {"p"}
        await store.evaluations.create(
            job("job-fresh"),
            idempotency_key=None,
            request_hash="h",
            events=(),
            catalogue_revision=fresh.revision,
        )
        assert (await store.evaluations.get("job-fresh")).id == "job-fresh"

    run(database_url, scenario)


def test_memory_is_bounded_and_forgets_on_this_processs_own_writes(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        store = database.scoped(Tenant("team-a"))
        for n in range(300):
            await store.providers.view([f"p{n}"], remembered=True)
        assert len(database.catalogue_memory._views) == 256
        await store.providers.create("mine", "someone", {"name": "x"})
        assert len(database.catalogue_memory._views) == 0

    run(database_url, scenario)


def test_a_remembered_view_validates_each_spec_once(database_url: str) -> None:
    async def scenario(database: Database) -> None:
        store = database.scoped(Tenant("team-a"))
        await store.providers.create("p", "someone", {"name": "x"})
        parsed: list[dict[str, Any]] = []

        def parse(spec: dict[str, Any]) -> str:
            parsed.append(spec)
            return str(spec["name"])

        view = await store.providers.view(["p"], remembered=True)
        again = await store.providers.view(["p"], remembered=True)
        assert again is view and view.parsed("p", parse) == again.parsed("p", parse) == "x"
        assert parsed == [{"name": "x"}]  # once for both submits that plan from this view
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE providers SET spec = '{\"name\": \"y\"}' WHERE id = 'p'")
        fresh = await store.providers.view(["p"], remembered=False)
        assert fresh.parsed("p", parse) == "y" and len(parsed) == 2  # a new read is parsed anew

    run(database_url, scenario)


def test_submits_from_an_unchanged_catalogue_validate_the_provider_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assay.api.providers import ProviderSpec

    pid = client.post(P, json=provider_body(name="Validated once")).json()["resource"]["id"]
    validated: list[str] = []
    real = ProviderSpec.model_validate

    def counted(obj: Any, *args: Any, **kwargs: Any) -> ProviderSpec:
        if isinstance(obj, dict) and obj.get("name") == "Validated once":
            validated.append(pid)
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(ProviderSpec, "model_validate", counted)
    for _ in range(3):
        assert submit(client, pid).status_code == 202
    assert validated == [pid]  # the first submit's plan; the others planned from the same remembered view
