"""From a parsed delivery to evaluations: dedupe the delivery, merge what it says about the version,
run every enabled policy of the tenant over it, and submit one job per (policy, version).

"Exactly once" rests on two unique constraints: ``trigger_deliveries (tenant, source, delivery_id)``
recognises a redelivery, and ``policy_evaluations (tenant, policy, source, registry, model, version)``
lets only the first delivery claim a version's evaluation. The claim freezes the job request, and
the job is submitted with an ``Idempotency-Key`` derived from the claim, so concurrent copies of one
event, or a copy that arrives after a crash between claim and submit, end in the same single job.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from assay.api.jobs import JobRequest
from assay.api.policies import PolicySpec
from assay.core import Tenant
from assay.core.validation import parse_model
from assay.errors import RequestError
from assay.lifecycle import Lifecycle, jobs
from assay.store.policies import PolicyRepository
from assay.store.trigger_claims import PolicyEvaluation, TriggerRepository, VersionKey, unsettled_claims
from assay.triggers.ingress import Ignored
from assay.triggers.matching import Unresolvable, VersionFacts, job_request, mismatch
from assay.triggers.versions import ModelVersionEvent

log = logging.getLogger(__name__)

_CI_SOURCES = ("github", "gitlab")


@dataclass(slots=True)
class Outcome:
    """What a delivery did; the webhook's answer (202 when it created a job, else 200)."""

    status: Literal["accepted", "duplicate", "ignored"]
    delivery_id: str
    reason: str | None = None
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        return 202 if any(e.get("created") for e in self.evaluations) and self.status == "accepted" else 200

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "delivery_id": self.delivery_id}
        if self.reason:
            body["reason"] = self.reason
        body["evaluations"] = self.evaluations
        body["job_ids"] = [e["job_id"] for e in self.evaluations if e.get("job_id")]
        if self.skipped:
            body["skipped"] = self.skipped
        return body


def key_of(event: ModelVersionEvent) -> VersionKey:
    return VersionKey(event.source, event.registry, event.name, event.version)


def idempotency_key(tenant: Tenant, claim: PolicyEvaluation) -> str:
    """The submission key of a claim: every copy of the event submits under it, so one job results."""
    key = claim.key
    raw = "\x1f".join((tenant.name, claim.policy_id, key.source, key.registry, key.model_name, key.version))
    return "assay-policy:" + hashlib.sha256(raw.encode()).hexdigest()


async def ingest(
    ctx: Lifecycle, tenant: Tenant, source: str, delivery_id: str, parsed: ModelVersionEvent | Ignored
) -> Outcome:
    """Handle one authenticated, parsed delivery exactly once per ``(tenant, source, delivery_id)``."""
    triggers = TriggerRepository(ctx.database.pool, tenant)
    prior = await triggers.delivery(source, delivery_id)
    if prior is not None:
        return Outcome(
            "duplicate",
            delivery_id,
            reason="delivery_already_handled",
            evaluations=[{**e, "created": False} for e in prior.get("evaluations", [])],
        )
    if isinstance(parsed, Ignored):
        outcome = Outcome("ignored", delivery_id, reason=parsed.reason)
    else:
        outcome = await evaluate_version(ctx, tenant, parsed)
    if not await triggers.record_delivery(source, delivery_id, outcome.body()):
        # A concurrent copy of this delivery got there first; whatever it started, this one did not add to.
        outcome.status, outcome.reason = "duplicate", "delivery_already_handled"
        for item in outcome.evaluations:
            item["created"] = False
    return outcome


async def evaluate_version(ctx: Lifecycle, tenant: Tenant, event: ModelVersionEvent) -> Outcome:
    """Merge what ``event`` says about its version and start what the tenant's policies ask for."""
    triggers = TriggerRepository(ctx.database.pool, tenant)
    key = key_of(event)
    seen = await triggers.merge_version(
        key,
        event.sort_key,
        tags=event.tags,
        aliases=event.aliases,
        stage=event.stage,
        endpoint=event.endpoint,
        uri=event.uri,
        registry_updated=event.registry_updated,
        exclusive_aliases=event.exclusive_aliases,
    )
    facts = VersionFacts.of(event, seen)
    outcome = Outcome("accepted", event.delivery_id)
    for record in await PolicyRepository(ctx.database.pool, tenant).enabled():
        policy = PolicySpec.model_validate(record.spec)
        why = mismatch(policy, facts)
        if why is not None:
            if event.source in policy.rule.sources:
                outcome.skipped.append({"policy_id": record.id, "reason": why})
            continue
        try:
            request = job_request(record.id, policy, facts)
        except Unresolvable as exc:
            outcome.skipped.append({"policy_id": record.id, "reason": exc.code, "message": exc.message})
            continue
        request["custom"]["trigger"] = "ci" if event.source in _CI_SOURCES else "registry"
        claim, _ = await triggers.claim(record.id, key, seen.version_sort, request, record.spec)
        await _start(ctx, tenant, triggers, claim, outcome)
    if not outcome.evaluations:
        outcome.status = "ignored"
        outcome.reason = "no_policy_matched" if not outcome.skipped else "no_evaluation_started"
    elif not any(e["created"] for e in outcome.evaluations):
        outcome.reason = "already_evaluated"
    return outcome


async def _start(
    ctx: Lifecycle, tenant: Tenant, triggers: TriggerRepository, claim: PolicyEvaluation, outcome: Outcome
) -> None:
    described = {"policy_id": claim.policy_id, "model": claim.key.model_name, "version": claim.key.version}
    if claim.evaluation_id is not None:
        outcome.evaluations.append({**described, "job_id": claim.evaluation_id, "created": False})
        return
    try:
        request = parse_model(JobRequest, claim.request, what="policy job request")
        record, created = await jobs.submit(
            ctx, tenant, f"policy:{claim.policy_id}", request, idempotency_key(tenant, claim)
        )
    except RequestError as exc:
        # The policy's collection was deleted, a provider cannot run here, ...: remembered on the claim,
        # and tried again when the version is delivered again, or by the sweep (retry_unsettled_claims).
        error = {"message_code": exc.message_code, "message": exc.message}
        await triggers.settle_claim(claim, evaluation_id=None, error=error)
        outcome.skipped.append({"policy_id": claim.policy_id, "reason": "job_refused", **error})
        log.warning("policy %s could not start a job for %s: %s", claim.policy_id, described, exc.message)
        return
    await triggers.settle_claim(claim, evaluation_id=record.id, error=None)
    outcome.evaluations.append({**described, "job_id": record.id, "created": created})


async def retry_unsettled_claims(ctx: Lifecycle) -> dict[str, int]:
    """The sweep step: submit the job of every claim left without one for ``ASSAY_DISPATCH_STALE_SECONDS``
    (the process died between claim and submit, or the submission was refused and may pass now). The
    claim's idempotency key makes a race with a live delivery of the same version commit one job."""
    stale = ctx.clock() - timedelta(seconds=ctx.settings.dispatch_stale_seconds)
    counts = {"policy_claims_started": 0, "policy_claims_refused": 0}
    for tenant, claim in await unsettled_claims(ctx.database.pool, stale):
        outcome = Outcome("accepted", "sweep")
        await _start(ctx, tenant, TriggerRepository(ctx.database.pool, tenant), claim, outcome)
        counts["policy_claims_started" if outcome.evaluations else "policy_claims_refused"] += 1
    return counts


__all__ = ["Outcome", "evaluate_version", "idempotency_key", "ingest", "key_of", "retry_unsettled_claims"]
