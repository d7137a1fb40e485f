"""User actions on evaluation jobs: submit, cancel, delete, retry. Each commits its change together
with the events that set the rest of the lifecycle in motion."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

from assay.api import CollectionSpec, ProviderSpec
from assay.api.jobs import JobRequest
from assay.core import Tenant
from assay.core.egress import check_host, check_url
from assay.core.events import (
    EVALUATION_ACCEPTED,
    EVALUATION_CANCELLED,
    EVALUATION_FINISHED,
    EVALUATION_RETRIED,
    OutboxEvent,
)
from assay.core.events import evaluation_event as event
from assay.core.plan import Plan, build_plan, launch_groups
from assay.core.states import (
    STATE_CODES,
    TERMINAL_JOB,
    BenchmarkRun,
    Message,
    cancel_run,
    derive_state,
    fail_run,
    reset_for_retry,
)
from assay.errors import AssayError, Conflict, FieldError, InvalidRequest, NotFound
from assay.lifecycle.ports import Lifecycle
from assay.lifecycle.progress import asks_for_exports, record_transition
from assay.runtimes.kubernetes.objects import CONFIG_MAP_MAX_BYTES, oversized_launch
from assay.store import CatalogueChanged, EvaluationRecord, RunRow

log = logging.getLogger(__name__)


def request_hash(request: JobRequest) -> str:
    canonical = json.dumps(
        request.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def submit(
    ctx: Lifecycle, tenant: Tenant, owner: str | None, request: JobRequest, idempotency_key: str | None
) -> tuple[EvaluationRecord, bool]:
    """Validate, freeze and commit a job with a pending run per benchmark and ``evaluation.accepted``.

    Returns the job and whether it was created now (False: an earlier request with the same
    ``Idempotency-Key``). Nothing after the commit can fail the request: publishing is best effort.
    """
    store = ctx.database.scoped(tenant)
    evaluation_id = str(uuid.uuid4())
    accepted = event(EVALUATION_ACCEPTED, tenant.name, "submit", evaluation_id)
    try:
        # The catalogue as this process remembers it: the create below checks it is still what was read.
        plan, revision = await _plan(ctx, tenant, request, remembered=True)
    except AssayError:
        plan, revision = await _plan(ctx, tenant, request)  # a refusal comes from the catalogue as it is now
    for attempt in range(_PLAN_TRIES):
        record = _new_record(ctx, evaluation_id, tenant, owner, request, plan)
        try:
            created, is_new = await store.evaluations.create(
                record,
                idempotency_key=idempotency_key,
                request_hash=request_hash(request),
                events=[accepted],
                catalogue_revision=revision,
            )
            break
        except CatalogueChanged:
            # Changed since it was read: plan again from a fresh read; the last try commits without the check (a
            # catalogue that changes between every read and create is planned as of the read, as any submit is).
            plan, revision = await _plan(ctx, tenant, request)
            if attempt == _PLAN_TRIES - 2:
                revision = None
    if is_new:
        events = [accepted, *await _fail_unavailable(ctx, created)]
        await ctx.published(events)
    return created, is_new


# Plans per submit at most: the first (often from memory) and, should the catalogue change before the job is
# created, again from a fresh read, once checked and once not.
_PLAN_TRIES = 3


def _new_record(
    ctx: Lifecycle, evaluation_id: str, tenant: Tenant, owner: str | None, request: JobRequest, plan: Plan
) -> EvaluationRecord:
    now = ctx.clock()
    return EvaluationRecord(
        id=evaluation_id,
        tenant=tenant.name,
        owner=owner,
        name=request.name,
        request=request.model_dump(mode="json", exclude_none=True),
        plan=plan,
        state="pending",
        message=Message("Evaluation job created", STATE_CODES["pending"]).as_dict(),
        results={},
        cancelled=False,
        created_at=now,
        updated_at=now,
        started_at=None,
        completed_at=None,
        runs=tuple(
            RunRow(run=BenchmarkRun(index=p.index, provider_id=p.provider_id, benchmark_id=p.id))
            for p in plan.benchmarks
        ),
    )


async def plan_job(ctx: Lifecycle, tenant: Tenant, request: JobRequest) -> Plan:
    """The frozen plan of ``request`` as ``tenant`` sees the catalogue, or the error naming every reference
    and limit it breaks. Reads only: :func:`submit` commits the plan, and the HTTP layer asks it again for a
    body that also has unknown fields, so that one answer lists every invalid field."""
    plan, _ = await _plan(ctx, tenant, request)
    return plan


async def _plan(
    ctx: Lifecycle, tenant: Tenant, request: JobRequest, *, remembered: bool = False
) -> tuple[Plan, int | None]:
    """:func:`plan_job`, and the catalogue revision every view it planned from was read at (None when a fresh read
    of the collection and one of its providers straddled a change). With ``remembered``, from the views this
    process remembers where it has them (:meth:`~assay.store.CatalogueRepository.view`): they may be behind, so
    the plan may be committed only by a statement that checks the revision."""
    if request.experiment is not None and not ctx.settings.mlflow_tracking_uri:
        raise InvalidRequest(
            "experiment needs MLflow, and this hub has no MLflow tracking server configured",
            message_code="mlflow_required_for_experiment",
            errors=[FieldError("experiment", "mlflow_required", "no MLflow tracking server is configured")],
        )
    _check_egress(ctx, request)
    store = ctx.database.scoped(tenant)
    collection: CollectionSpec | None = None
    collection_updated_at: str | None = None
    provider_ids: set[str] = set()
    revisions: set[int] = set()
    if request.collection is not None:
        view = await store.collections.view([request.collection.id], remembered=remembered)
        revisions.add(view.revision)
        found = view.records.get(request.collection.id)
        if found is None:
            raise NotFound(
                f"Collection {request.collection.id!r} does not exist",
                errors=[FieldError("collection.id", "resource_not_found", "no such collection")],
            )
        collection = view.parsed(request.collection.id, CollectionSpec.model_validate)
        collection_updated_at = found.updated_at.isoformat()
        provider_ids = {b.provider_id for b in collection.benchmarks}
    else:
        provider_ids = {b.provider_id for b in request.benchmarks or []}
    view = await store.providers.view(sorted(provider_ids), remembered=remembered)
    revisions.add(view.revision)
    if remembered and len(revisions) > 1:
        return await _plan(ctx, tenant, request)  # remembered at different revisions: read both afresh
    providers = {pid: view.parsed(pid, ProviderSpec.model_validate) for pid in view.records}
    plan = build_plan(
        request,
        providers=providers,
        collection=collection,
        collection_updated_at=collection_updated_at,
        runtime=ctx.settings.runtime,
    )
    most = ctx.settings.max_benchmarks_per_job
    if len(plan.benchmarks) > most:
        raise InvalidRequest(
            f"The job would run {len(plan.benchmarks)} benchmarks; this hub runs at most {most} per job",
            message_code="too_many_benchmarks",
            errors=[FieldError("benchmarks", "too_many", f"at most {most} benchmarks per job")],
        )
    if ctx.settings.runtime == "kubernetes":
        _check_launch_size(ctx, tenant, request, plan)
    return plan, (revisions.pop() if len(revisions) == 1 else None)


def _check_launch_size(ctx: Lifecycle, tenant: Tenant, request: JobRequest, plan: Plan) -> None:
    """On Kubernetes each launch's job spec travels in a ConfigMap, which the API server refuses over 1 MiB:
    refuse such a job now (400 naming the heaviest field), not at dispatch after the 202."""
    groups = launch_groups(plan, [(p.index, 1) for p in plan.benchmarks])
    found = oversized_launch(
        tenant=tenant.name,
        request=request.model_dump(mode="json", exclude_none=True),
        groups=[[planned for planned, _ in runs] for runs in groups],
        settings=ctx.settings,
    )
    if found is not None:
        field, size = found
        raise InvalidRequest(
            f"The job spec would be {size} bytes on the cluster, more than the {CONFIG_MAP_MAX_BYTES} a Kubernetes "
            f"ConfigMap may hold; {field} is the largest part of it",
            message_code="job_spec_too_large",
            errors=[
                FieldError(field, "too_large", f"the job spec may be at most {CONFIG_MAP_MAX_BYTES} bytes")
            ],
        )


def _check_egress(ctx: Lifecycle, request: JobRequest) -> None:
    """The model endpoint and the OCI registry receive the tenant's credentials: refuse the hub's own
    machine and the cloud's metadata service (``assay.core.egress``)."""
    settings = ctx.settings
    loopback = settings.egress_allow_loopback
    rules = {
        "allow_loopback": settings.mode == "local" if loopback is None else loopback,
        "allow_private": settings.egress_allow_private,
    }
    errors = [check_url(request.model.url, "model.url", **rules)]
    oci = request.exports.oci if request.exports is not None else None
    if oci is not None:
        errors.append(check_host(oci.coordinates.oci_host, "exports.oci.coordinates.oci_host", **rules))
    found = [e for e in errors if e is not None]
    if found:
        raise InvalidRequest(
            "The job names a host this hub does not send credentials to: "
            + "; ".join(e.message for e in found),
            message_code="egress_refused",
            errors=found,
        )


async def _fail_unavailable(ctx: Lifecycle, record: EvaluationRecord) -> list[OutboxEvent]:
    """Fail at once the runs this hub cannot start (a provider without a runtime for it), before the
    acceptance is published, so dispatch never tries them: EvalHub accepts such a job with 202 and
    fails it with ``local_runtime_not_enabled``, and its clients rely on that. Their
    ``benchmark.finished`` events settle the job like any other failure."""
    unavailable = [p for p in record.plan.benchmarks if p.unavailable]
    if not unavailable:
        return []
    async with ctx.database.evaluations.locked(record.id) as unit:
        if unit is None:
            return []
        runs = {run.index: run for run in unit.runs()}
        for planned in unavailable:
            transition = fail_run(
                runs[planned.index],
                planned.unavailable or "",
                "local_runtime_not_enabled",
                ctx.clock(),
                origin="server",
            )
            record_transition(unit, transition, "submit", metrics=ctx.metrics)
        return list(unit.events)


async def cancel(ctx: Lifecycle, tenant: Tenant, evaluation_id: str, *, hard_delete: bool) -> None:
    """Soft cancel (the job stays, non-terminal runs become cancelled) or hard delete.

    The state is checked before anything is stopped: a refused cancel touches nothing.
    """
    repo = ctx.database.scoped(tenant).evaluations
    events = []
    async with repo.locked(evaluation_id) as unit:
        if unit is None:
            raise NotFound(f"Evaluation job {evaluation_id!r} does not exist")
        state = unit.record.state
        running = state not in TERMINAL_JOB
        if not hard_delete and state in TERMINAL_JOB:
            if state == "cancelled":
                return
            raise Conflict(
                f"The job {evaluation_id} can not be cancelled because it is {state!r}.",
                message_code="job_can_not_be_updated",
            )
        if running or hard_delete:
            events.append(
                event(
                    EVALUATION_CANCELLED, unit.record.tenant, "submit", evaluation_id, {"purge": hard_delete}
                )
            )
        if not hard_delete:
            now = ctx.clock()
            message = Message("Evaluation job cancelled", STATE_CODES["cancelled"])
            for run in unit.runs():
                unit.put(cancel_run(run, message, now).run)
            unit.set(cancelled=True, state="cancelled", message=message.as_dict(), completed_at=now)
            events.append(
                event(
                    EVALUATION_FINISHED,
                    unit.record.tenant,
                    "submit",
                    evaluation_id,
                    {"state": "cancelled", "exports": asks_for_exports(unit.record.request)},
                )
            )
        for item in events:
            unit.emit(item)
    if hard_delete:
        await repo.delete(evaluation_id)
    await ctx.published(events)


async def retry(ctx: Lifecycle, tenant: Tenant, evaluation_id: str) -> EvaluationRecord:
    """Run the failed and cancelled benchmarks of a finished job again, in place; completed results stay."""
    repo = ctx.database.scoped(tenant).evaluations
    async with repo.locked(evaluation_id) as unit:
        if unit is None:
            raise NotFound(f"Evaluation job {evaluation_id!r} does not exist")
        state = unit.record.state
        if state not in TERMINAL_JOB:
            raise Conflict(
                f"The job {evaluation_id} is {state!r}; only a finished job can be retried",
                message_code="job_not_finished",
            )
        again = [run for run in unit.runs() if run.status in ("failed", "cancelled")]
        if not again:
            raise Conflict(
                f"The job {evaluation_id} has no failed or cancelled benchmarks to retry",
                message_code="nothing_to_retry",
            )
        for run in again:
            unit.put(reset_for_retry(run))
        new_state, message = derive_state(unit.runs())
        results: dict[str, Any] = {k: v for k, v in unit.record.results.items() if k != "test"}
        results["retries"] = [
            *unit.record.results.get("retries", []),
            {"at": ctx.clock().isoformat(), "benchmarks": [r.index for r in again]},
        ]
        unit.set(
            cancelled=False,
            state=new_state,
            message=Message(
                f"Retrying {len(again)} benchmark(s): {', '.join(r.benchmark_id for r in again)}",
                "evaluation_job_retrying",
            ).as_dict()
            if new_state != "pending"
            else message.as_dict(),
            results=results,
            completed_at=None,
        )
        retried = event(
            EVALUATION_RETRIED,
            unit.record.tenant,
            "submit",
            evaluation_id,
            {"indices": [r.index for r in again]},
        )
        unit.emit(retried)
    await ctx.published([retried])
    return await repo.get(evaluation_id)


__all__ = ["cancel", "request_hash", "retry", "submit"]
