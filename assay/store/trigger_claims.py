"""The triggers' memory in Postgres, always bound to a tenant (:class:`TriggerRepository`): deliveries already
handled, model versions seen (metadata merged over events), the claim of one evaluation per (policy, model
version), baselines, and the Kubeflow poll's cursor. Every "only once" here is a unique constraint, so
concurrent duplicate deliveries are safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from assay.core import Tenant


@dataclass(frozen=True, slots=True)
class VersionKey:
    """A model version as a registry names it."""

    source: str
    registry: str
    model_name: str
    version: str


@dataclass(frozen=True, slots=True)
class SeenVersion:
    """A model version with its metadata merged over every event about it."""

    key: VersionKey
    version_sort: str
    tags: dict[str, str]
    aliases: list[str]
    stage: str | None
    endpoint: str | None
    uri: str | None
    registry_updated: str | None


@dataclass(frozen=True, slots=True)
class PolicyEvaluation:
    """The claim of one evaluation of a model version by a policy."""

    policy_id: str
    key: VersionKey
    version_sort: str
    request: dict[str, Any]
    policy: dict[str, Any]
    evaluation_id: str | None
    error: dict[str, Any] | None
    baseline_evaluation_id: str | None
    created_at: datetime


def _seen(row: dict[str, Any]) -> SeenVersion:
    return SeenVersion(
        key=VersionKey(row["source"], row["registry"], row["model_name"], row["version"]),
        version_sort=row["version_sort"],
        tags=dict(row["tags"]),
        aliases=list(row["aliases"]),
        stage=row["stage"],
        endpoint=row["endpoint"],
        uri=row["uri"],
        registry_updated=row["registry_updated"],
    )


def _claim(row: dict[str, Any]) -> PolicyEvaluation:
    return PolicyEvaluation(
        policy_id=row["policy_id"],
        key=VersionKey(row["source"], row["registry"], row["model_name"], row["version"]),
        version_sort=row["version_sort"],
        request=row["request"],
        policy=row["policy"],
        evaluation_id=row["evaluation_id"],
        error=row["error"],
        baseline_evaluation_id=row["baseline_evaluation_id"],
        created_at=row["created_at"],
    )


_KEY_WHERE = "tenant = %s AND source = %s AND registry = %s AND model_name = %s"
# A claim whose evaluation can be a baseline: it has a job, and the job did not fail or get cancelled (a
# failed baseline compares nothing, and a gate against it would pass whatever the new version scored).
_USABLE = (
    "evaluation_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evaluations e"
    " WHERE e.id = policy_evaluations.evaluation_id AND e.state IN ('failed', 'cancelled'))"
)


class TriggerRepository:
    """What one tenant's triggers remember."""

    def __init__(self, pool: AsyncConnectionPool, tenant: Tenant) -> None:
        self._pool = pool
        self._tenant = tenant

    async def _one(self, query: str, params: Sequence[Any]) -> dict[str, Any] | None:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(query, params)
            return await cur.fetchone()

    def _key(self, key: VersionKey) -> list[Any]:
        return [self._tenant.name, key.source, key.registry, key.model_name]

    # --- deliveries ---------------------------------------------------------------------------------

    async def delivery(self, source: str, delivery_id: str) -> dict[str, Any] | None:
        """The answer recorded for an earlier delivery with this id, or None."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT outcome FROM trigger_deliveries WHERE tenant = %s AND source = %s AND delivery_id = %s",
                [self._tenant.name, source, delivery_id],
            )
            row = await cur.fetchone()
        return dict(row[0]) if row is not None else None

    async def record_delivery(self, source: str, delivery_id: str, outcome: dict[str, Any]) -> bool:
        """Remember a handled delivery; False when a concurrent copy of it was recorded first."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO trigger_deliveries (tenant, source, delivery_id, outcome) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [self._tenant.name, source, delivery_id, Jsonb(outcome)],
            )
        return cur.rowcount > 0

    # --- model versions -----------------------------------------------------------------------------

    async def merge_version(
        self,
        key: VersionKey,
        version_sort: str,
        *,
        tags: dict[str, str],
        aliases: Sequence[str],
        stage: str | None,
        endpoint: str | None,
        uri: str | None,
        registry_updated: str | None = None,
        exclusive_aliases: bool = False,
    ) -> SeenVersion:
        """Insert or merge what an event says about a version (tags merged, aliases added, stage, endpoint
        and uri overwritten when given). With ``exclusive_aliases`` an alias moves: the model's other
        versions lose it (MLflow: an alias names exactly one version)."""
        async with self._pool.connection() as conn, conn.transaction():
            if exclusive_aliases and aliases:
                await conn.execute(
                    "UPDATE model_versions SET aliases = ("
                    " SELECT coalesce(jsonb_agg(a), '[]'::jsonb) FROM jsonb_array_elements_text(aliases) a"
                    " WHERE NOT (a = ANY(%s))), updated_at = now()"
                    f" WHERE {_KEY_WHERE} AND version <> %s AND aliases ?| %s",
                    [list(aliases), *self._key(key), key.version, list(aliases)],
                )
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "INSERT INTO model_versions AS mv (tenant, source, registry, model_name, version, version_sort,"
                " tags, aliases, stage, endpoint, uri, registry_updated)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (tenant, source, registry, model_name, version) DO UPDATE SET"
                " tags = mv.tags || EXCLUDED.tags,"
                " aliases = (SELECT coalesce(jsonb_agg(DISTINCT a), '[]'::jsonb) FROM ("
                "   SELECT jsonb_array_elements_text(mv.aliases) a"
                "   UNION SELECT jsonb_array_elements_text(EXCLUDED.aliases)) s),"
                " stage = coalesce(EXCLUDED.stage, mv.stage),"
                " endpoint = coalesce(EXCLUDED.endpoint, mv.endpoint),"
                " uri = coalesce(EXCLUDED.uri, mv.uri),"
                " registry_updated = coalesce(EXCLUDED.registry_updated, mv.registry_updated),"
                " updated_at = now()"
                " RETURNING *",
                [
                    *self._key(key),
                    key.version,
                    version_sort,
                    Jsonb(tags),
                    Jsonb(sorted(set(aliases))),
                    stage,
                    endpoint,
                    uri,
                    registry_updated,
                ],
            )
            row = await cur.fetchone()
        assert row is not None
        return _seen(row)

    async def seen_version(self, key: VersionKey) -> SeenVersion | None:
        row = await self._one(
            f"SELECT * FROM model_versions WHERE {_KEY_WHERE} AND version = %s",
            [*self._key(key), key.version],
        )
        return _seen(row) if row is not None else None

    async def version_with_alias(self, key: VersionKey, alias: str) -> SeenVersion | None:
        """The version of ``key``'s model that holds ``alias`` now (the newest, should several)."""
        row = await self._one(
            f"SELECT * FROM model_versions WHERE {_KEY_WHERE} AND aliases ? %s"
            " ORDER BY updated_at DESC LIMIT 1",
            [*self._key(key), alias],
        )
        return _seen(row) if row is not None else None

    # --- one evaluation per (policy, version) --------------------------------------------------------

    async def claim(
        self,
        policy_id: str,
        key: VersionKey,
        version_sort: str,
        request: dict[str, Any],
        policy: dict[str, Any],
    ) -> tuple[PolicyEvaluation, bool]:
        """Claim the evaluation of ``key`` by ``policy_id``; returns the claim (an earlier one wins, with
        its frozen request) and whether this call made it."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "INSERT INTO policy_evaluations (tenant, policy_id, source, registry, model_name, version,"
                " version_sort, request, policy) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING *",
                [
                    self._tenant.name,
                    policy_id,
                    key.source,
                    key.registry,
                    key.model_name,
                    key.version,
                    version_sort,
                    Jsonb(request),
                    Jsonb(policy),
                ],
            )
            row = await cur.fetchone()
            if row is not None:
                return _claim(row), True
            await cur.execute(
                f"SELECT * FROM policy_evaluations WHERE policy_id = %s AND {_KEY_WHERE} AND version = %s",
                [policy_id, *self._key(key), key.version],
            )
            existing = await cur.fetchone()
        assert existing is not None  # claims are never deleted
        return _claim(existing), False

    async def settle_claim(
        self, claim: PolicyEvaluation, *, evaluation_id: str | None, error: dict[str, Any] | None
    ) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE policy_evaluations SET evaluation_id = coalesce(evaluation_id, %s), error = %s,"
                f" attempted_at = now() WHERE policy_id = %s AND {_KEY_WHERE} AND version = %s",
                [
                    evaluation_id,
                    Jsonb(error) if error else None,
                    claim.policy_id,
                    *self._key(claim.key),
                    claim.key.version,
                ],
            )

    async def by_evaluation(self, evaluation_id: str) -> PolicyEvaluation | None:
        row = await self._one(
            "SELECT * FROM policy_evaluations WHERE tenant = %s AND evaluation_id = %s",
            [self._tenant.name, evaluation_id],
        )
        return _claim(row) if row is not None else None

    async def previous(self, claim: PolicyEvaluation) -> PolicyEvaluation | None:
        """The policy's evaluation of the highest version below ``claim``'s, by version order."""
        row = await self._one(
            f"SELECT * FROM policy_evaluations WHERE policy_id = %s AND {_KEY_WHERE}"
            f" AND version_sort < %s AND {_USABLE} ORDER BY version_sort DESC LIMIT 1",
            [claim.policy_id, *self._key(claim.key), claim.version_sort],
        )
        return _claim(row) if row is not None else None

    async def of_version(self, policy_id: str, key: VersionKey) -> PolicyEvaluation | None:
        """An evaluation of ``key``: ``policy_id``'s own, else the newest by any policy."""
        row = await self._one(
            f"SELECT * FROM policy_evaluations WHERE {_KEY_WHERE} AND version = %s"
            f" AND {_USABLE} ORDER BY (policy_id = %s) DESC, created_at DESC LIMIT 1",
            [*self._key(key), key.version, policy_id],
        )
        return _claim(row) if row is not None else None

    async def record_baseline(self, claim: PolicyEvaluation, baseline_evaluation_id: str) -> str:
        """Record the baseline the gate used (the first decision stays); returns the recorded one."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE policy_evaluations SET baseline_evaluation_id = coalesce(baseline_evaluation_id, %s)"
                f" WHERE policy_id = %s AND {_KEY_WHERE} AND version = %s RETURNING baseline_evaluation_id",
                [baseline_evaluation_id, claim.policy_id, *self._key(claim.key), claim.key.version],
            )
            row = await cur.fetchone()
        return str(row[0]) if row is not None else baseline_evaluation_id

    # --- the Kubeflow poll --------------------------------------------------------------------------

    async def poll_cursor(self, registry: str) -> str | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT cursor FROM registry_poll_state WHERE tenant = %s AND registry = %s",
                [self._tenant.name, registry],
            )
            row = await cur.fetchone()
        return str(row[0]) if row is not None else None

    async def set_poll_cursor(self, registry: str, cursor: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO registry_poll_state (tenant, registry, cursor) VALUES (%s, %s, %s)"
                " ON CONFLICT (tenant, registry) DO UPDATE SET cursor = EXCLUDED.cursor, polled_at = now()",
                [self._tenant.name, registry, cursor],
            )


async def unsettled_claims(
    pool: AsyncConnectionPool, attempted_before: datetime, limit: int = 100
) -> list[tuple[Tenant, PolicyEvaluation]]:
    """Claims of every tenant whose job is not committed (a crash between claim and submit, or a refused
    submit) and last tried before ``attempted_before``, oldest attempt first."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        # Only for policies that still exist and are enabled: a removed policy starts nothing more.
        await cur.execute(
            "SELECT c.* FROM policy_evaluations c JOIN policies p ON p.tenant = c.tenant AND p.id = c.policy_id"
            " WHERE c.evaluation_id IS NULL AND c.attempted_at < %s"
            " AND coalesce((p.spec->>'enabled')::boolean, true) ORDER BY c.attempted_at LIMIT %s",
            [attempted_before, limit],
        )
        rows = await cur.fetchall()
    return [(Tenant(r["tenant"]), _claim(r)) for r in rows]


__all__ = [
    "PolicyEvaluation",
    "SeenVersion",
    "TriggerRepository",
    "VersionKey",
    "unsettled_claims",
]
