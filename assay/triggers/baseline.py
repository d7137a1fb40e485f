"""Which job an evaluation is gated against, decided when the gate is asked for (not when events arrive):
the policy's evaluation of the previous version by version order, of the version holding an alias, or
a fixed job; or what the caller names. The baseline a final decision used is recorded on the claim."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assay.api.policies import PolicySpec
from assay.core import Tenant
from assay.core.compare import Tolerance
from assay.core.gate import GateRules
from assay.store import Database
from assay.store.trigger_claims import PolicyEvaluation, TriggerRepository


@dataclass(frozen=True, slots=True)
class GateRequest:
    """What a caller asked for explicitly (query parameters, the CLI); None: the policy's, else defaults."""

    baseline: str | None = None
    max_drop: float | None = None
    relative: bool | None = None
    sigma: float | None = None


@dataclass(slots=True)
class GatePlan:
    """The rules and baseline for one evaluation's gate."""

    rules: GateRules
    baseline_id: str | None
    baseline: dict[str, Any] = field(default_factory=dict)
    """How the baseline was chosen: kind, the version it evaluated, or why there is none."""
    claim: PolicyEvaluation | None = None


def _rules(asked: GateRequest, policy: PolicySpec | None) -> GateRules:
    gate = policy.gate if policy is not None else None
    tolerance = Tolerance(
        max_drop=asked.max_drop if asked.max_drop is not None else (gate.max_drop if gate else 0.0),
        relative=asked.relative if asked.relative is not None else (gate.relative if gate else False),
        sigma=asked.sigma if asked.sigma is not None else (gate.sigma if gate else 2.0),
    )
    return GateRules(tolerance=tolerance, require_thresholds=gate.require_thresholds if gate else True)


async def plan_gate(database: Database, tenant: Tenant, job_id: str, asked: GateRequest) -> GatePlan:
    triggers = TriggerRepository(database.pool, tenant)
    claim = await triggers.by_evaluation(job_id)
    policy = PolicySpec.model_validate(claim.policy) if claim is not None else None
    rules = _rules(asked, policy)
    if asked.baseline is not None:
        return GatePlan(rules, asked.baseline, {"kind": "requested"}, claim)
    if claim is None or policy is None:
        return GatePlan(rules, None, {"kind": "none", "reason": "no_baseline_requested"})
    described = {"kind": policy.baseline.kind}
    if claim.baseline_evaluation_id is not None:
        return GatePlan(rules, claim.baseline_evaluation_id, {**described, "recorded": True}, claim)
    kind = policy.baseline.kind
    if kind == "job":
        return GatePlan(rules, policy.baseline.job_id, described, claim)
    if kind == "previous_version":
        previous = await triggers.previous(claim)
        if previous is None:
            return GatePlan(rules, None, {**described, "reason": "no_previous_version"}, claim)
        return GatePlan(rules, previous.evaluation_id, {**described, "version": previous.key.version}, claim)
    if kind == "alias":
        alias = policy.baseline.alias or ""
        holder = await triggers.version_with_alias(claim.key, alias)
        if holder is None:
            return GatePlan(rules, None, {**described, "alias": alias, "reason": "alias_not_set"}, claim)
        if holder.key.version == claim.key.version:
            return GatePlan(rules, None, {**described, "alias": alias, "reason": "holds_the_alias"}, claim)
        evaluated = await triggers.of_version(claim.policy_id, holder.key)
        if evaluated is None:
            return GatePlan(
                rules,
                None,
                {**described, "alias": alias, "version": holder.key.version, "reason": "alias_not_evaluated"},
                claim,
            )
        return GatePlan(
            rules,
            evaluated.evaluation_id,
            {**described, "alias": alias, "version": holder.key.version},
            claim,
        )
    return GatePlan(rules, None, {"kind": "none", "reason": "policy_has_no_baseline"}, claim)


async def record_baseline(database: Database, tenant: Tenant, plan: GatePlan) -> None:
    """Remember the baseline a final decision used, so later reports say the same."""
    if plan.claim is not None and plan.baseline_id is not None and plan.baseline.get("kind") != "requested":
        await TriggerRepository(database.pool, tenant).record_baseline(plan.claim, plan.baseline_id)


__all__ = ["GatePlan", "GateRequest", "plan_gate", "record_baseline"]
