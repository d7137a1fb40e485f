"""Evaluation jobs (EvalHub v1): submit, list, get, cancel/delete, retry, logs (the events callback: callbacks.py)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from starlette.routing import BaseRoute

from assay import triggers
from assay.api.job_resource import Job, JobPage
from assay.api.jobs import JobRequest
from assay.auth import Access, Permission
from assay.core.catalogue import unscaled_warning
from assay.core.compare import Tolerance, compare
from assay.core.gate import decide
from assay.core.jsontext import dumps
from assay.core.report import commit_status, junit_report, markdown_report
from assay.core.states import job_progress
from assay.errors import (
    AssayError,
    FieldError,
    Forbidden,
    InvalidQuery,
    InvalidRequest,
    NotFound,
    TemporaryError,
)
from assay.http import list_cursor
from assay.http.context import (
    Caller,
    CallerDep,
    Paging,
    boolean,
    caller,
    groups,
    lifecycle_of,
    number,
    paging,
    settings_of,
    strict_query,
    timestamp,
)
from assay.http.errors import checks_references
from assay.http.plain import PlainRoute, ValidatedBody, route_of
from assay.lifecycle import jobs
from assay.runtimes import read_log_bounded
from assay.store import EvaluationQuery, EvaluationRecord
from assay.telemetry import tracing

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/evaluations", tags=["jobs"])

_LIST_PARAMS = (
    "limit",
    "offset",
    "cursor",
    "status",
    "name",
    "tags",
    "owner",
    "experiment_id",
    "collection_id",
)
_LOG_PARAMS = ("tail_lines", "timestamps", "since_seconds")


def _ts(value: datetime | None) -> str | None:
    return timestamp(value) if value is not None else None


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def job_document(record: EvaluationRecord) -> dict[str, Any]:
    """The job resource of the contract (§5.1): the request echoed, status with a pending entry for
    every benchmark from the start, results, plus Assay's frozen plan and progress."""
    plan = record.plan
    runs = [row.run for row in record.runs]
    status_entries = []
    results_entries = []
    for run in runs:
        planned = plan.benchmarks[run.index]
        status_entries.append(
            _without_none(
                {
                    "provider_id": run.provider_id,
                    "id": run.benchmark_id,
                    "benchmark_index": run.index,
                    "status": run.status,
                    "phase": run.phase,
                    "progress": run.progress,
                    "current_step": run.current_step,
                    "total_steps": run.total_steps,
                    "completed_steps": run.completed_steps,
                    "attempt": run.attempt,
                    "error_message": run.error_message,
                    "warning_message": run.warning_message,
                    "started_at": _ts(run.started_at),
                    "completed_at": _ts(run.completed_at),
                }
            )
        )
        if run.terminal:
            entry: dict[str, Any] = {
                "id": run.benchmark_id,
                "provider_id": run.provider_id,
                "benchmark_index": run.index,
                **run.result,
                "fingerprint": planned.fingerprint,
            }
            if run.status != "completed":
                entry["test"] = {"evaluated": False, "reason": f"benchmark_{run.status}", "pass": False}
            results_entries.append(entry)
    results: dict[str, Any] = {k: v for k, v in record.results.items() if k != "retries"}
    if results_entries:
        results["benchmarks"] = results_entries
    request = dict(record.request)
    if "collection" in request and plan.collection_updated_at:
        request["collection"] = {**request["collection"], "collection_updated_at": plan.collection_updated_at}
    resource = _without_none(
        {
            "id": record.id,
            "tenant": record.tenant,
            "owner": record.owner,
            "created_at": _ts(record.created_at),
            "updated_at": _ts(record.updated_at),
            # docs/compatibility.md: the experiment's id belongs to the resource too (the SDK reads it there).
            "mlflow_experiment_id": record.results.get("mlflow_experiment_id"),
        }
    )
    return {
        "resource": resource,
        **request,
        "status": _without_none(
            {
                "state": record.state,
                "message": record.message,
                "benchmarks": status_entries,
                "progress": job_progress(runs),
                "started_at": _ts(record.started_at),
                "completed_at": _ts(record.completed_at),
                "retries": record.results.get("retries"),
            }
        ),
        "results": results,
        "plan": {
            "benchmarks": [p.document() for p in plan.benchmarks],
            "pass_criteria": {
                "threshold": plan.composite_threshold,
                "source": plan.composite_threshold_source,
            },
        },
    }


def _job_response(record: EvaluationRecord, status_code: int, *, warn: bool = False) -> Response:
    document = job_document(record)
    if warn:
        warnings = [
            unscaled_warning(f"plan.benchmarks[{p.index}]", p.score.metric)
            for p in record.plan.benchmarks
            if p.weight > 0 and p.score.metric is not None and p.score.scale is None
        ]
        if warnings:  # accepted, but left out of the composite score (docs/lifecycle.md, "Scoring")
            document["warnings"] = [{"path": w.path, "code": w.code, "message": w.message} for w in warnings]
    return Response(dumps(document), status_code=status_code, media_type="application/json")


async def _reference_errors(request: Request, body: dict[str, Any]) -> list[FieldError]:
    """What submitting ``body`` would answer about its providers, benchmarks and collection (see
    :func:`checks_references`)."""
    try:
        spec = JobRequest.model_validate(body)
    except ValidationError:
        return []  # the body has more wrong than unknown fields: those are listed already
    who = await caller(request)
    try:
        await jobs.plan_job(lifecycle_of(request), who.tenant, spec)
    except AssayError as exc:
        return list(exc.errors) or [FieldError("$", exc.message_code, exc.message)]
    return []


@router.post(
    "",
    status_code=202,
    response_model=Job,
    summary="Submit an evaluation job (the same as POST /api/v1/evaluations/jobs)",
    responses={202: {"description": "The job was accepted"}},
)
@router.post(
    "/jobs",
    status_code=202,
    response_model=Job,
    responses={
        202: {"description": "The job was accepted (a replay of an Idempotency-Key returns the first job)"}
    },
)
@checks_references(_reference_errors)
async def submit_job(request: Request, who: CallerDep, spec: JobRequest) -> Response:
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key.strip()) <= 255:
        raise InvalidRequest(
            "The Idempotency-Key header must be 1 to 255 characters",
            errors=[FieldError("Idempotency-Key", "length", "must be 1 to 255 characters")],
        )
    if "trigger" in spec.custom:
        # custom.trigger picks the Kueue priority (ci, registry, sweep) in the queue all tenants share: the
        # hub's own ingress sets it, and otherwise only a caller granted ``priorities``/``create`` (an admin).
        access: Access = request.app.state.access
        principal = who.principal
        if principal is None or not await access.guard.authorize(
            principal, who.tenant.name, Permission("priorities", "create")
        ):
            raise Forbidden(
                "custom.trigger sets the job's queue priority: it is set by the hub's CI and registry ingress, "
                "or by an administrator of the tenant",
                errors=[
                    FieldError("custom.trigger", "forbidden", "set by the server or an administrator only")
                ],
            )
    with tracing.span("submit", {"assay.tenant": who.tenant.name}, parent=request.headers, kind="server"):
        record, created = await jobs.submit(
            lifecycle_of(request), who.tenant, who.user, spec, key.strip() if key else None
        )
        tracing.annotate("assay.evaluation.id", record.id)
    response = _job_response(record, 202, warn=True)
    response.headers["Location"] = f"{router.prefix}/jobs/{record.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.get(
    "/jobs",
    response_model=JobPage,
    dependencies=[Depends(strict_query(*_LIST_PARAMS))],
)
async def list_jobs(request: Request, who: CallerDep) -> Response:
    page: Paging = paging(request, 50)
    query = EvaluationQuery(
        state=groups(request, "status"),
        name=groups(request, "name"),
        tags=groups(request, "tags"),
        owner=groups(request, "owner"),
        experiment_id=groups(request, "experiment_id"),
        collection_id=groups(request, "collection_id"),
        limit=page.limit,
        offset=page.offset,
        after=list_cursor.position(request, page),  # keyset paging: next.href carries a cursor
    )
    result = await who.store.evaluations.list(query)
    # The documents as get_job renders them (response_model documents the page; tests check conformance).
    return JSONResponse(
        {
            **list_cursor.links(request, page, result),
            "limit": page.limit,
            "total_count": result.total,
            "items": [job_document(r) for r in result.records],
        }
    )


class RenderedJobs:
    """Rendered job documents, reused while the job's change counter says they are current: clients
    poll jobs (eval-hub-sdk every few seconds, CI loops more often), and most polls see no change."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[int, bytes]] = OrderedDict()
        self._max = max_entries

    def get(self, key: tuple[str, str]) -> tuple[int, bytes] | None:
        """The last rendered document of ``key`` and the change counter it was rendered at."""
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: tuple[str, str], version: int, body: bytes) -> None:
        self._entries[key] = (version, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


def _rendered_jobs(request: Request) -> RenderedJobs:
    state = request.app.state
    if not hasattr(state, "rendered_jobs"):
        state.rendered_jobs = RenderedJobs()
    return cast(RenderedJobs, state.rendered_jobs)


@router.get("/jobs/{job_id}", response_model=Job)
async def get_job(job_id: str, request: Request, who: CallerDep) -> Response:
    repo = who.store.evaluations
    key = (who.tenant.name, job_id)
    cache = _rendered_jobs(request)
    rendered = cache.get(key)
    # One statement: only the counter comes back while the job is what this process last rendered, or what it
    # last made of it (often: it created the job, then its events and aggregate changed it).
    record = await repo.current(job_id, rendered[0] if rendered is not None else None)
    if record is None:
        assert rendered is not None  # None only when unchanged since what was rendered
        return Response(rendered[1], media_type="application/json")
    body = dumps(job_document(record))
    cache.put(key, record.version, body)
    return Response(body, media_type="application/json")


async def _poll_job(request: Request) -> Response:
    return await get_job(request.path_params["job_id"], request, await caller(request))


def polled_routes() -> list[BaseRoute]:
    """``GET /jobs/{job_id}``, what every client polls, served first and without FastAPI's per-request routing
    and dependency solving (0.4 ms of the hub's CPU per poll, a third of it, measured with the routers included;
    ``bench/orchestration.py``). The same function with the same caller: the access middleware authorised the
    request before either route. FastAPI's registration above stays: it is what ``/openapi.json`` describes."""
    return [PlainRoute(f"{router.prefix}/jobs/{{job_id}}", _poll_job, "GET")]


async def _take_submit(request: Request, spec: JobRequest) -> Response:
    return cast(Response, await submit_job(request, await caller(request), spec))


def submit_routes() -> list[BaseRoute]:
    """``POST /jobs`` (and ``POST /api/v1/evaluations``), served first as the status events are: a valid job
    request is validated in one pass from its bytes (:class:`~assay.http.plain.ValidatedBody`) and submitted by the
    same function; any other body is FastAPI's route's to answer, with the unknown references it names."""
    return [
        PlainRoute(path, ValidatedBody(JobRequest, _take_submit, route_of(router, submit_job, path)), "POST")
        for path in (router.prefix, f"{router.prefix}/jobs")
    ]


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    response_class=Response,
    dependencies=[Depends(strict_query("hard_delete"))],
)
async def delete_job(job_id: str, request: Request, who: CallerDep) -> None:
    hard = boolean(request, "hard_delete", False)
    await jobs.cancel(lifecycle_of(request), who.tenant, job_id, hard_delete=hard)


@router.get(
    "/jobs/{job_id}/compare",
    dependencies=[Depends(strict_query("baseline", "max_drop", "relative", "sigma"))],
)
async def compare_jobs(job_id: str, request: Request, who: CallerDep) -> dict[str, Any]:
    """Assay: per-benchmark and composite deltas against ``baseline`` (another job of the tenant), and
    the benchmarks that regressed by more than ``max_drop`` (absolute, or a fraction of the baseline
    with ``relative=true``) and by more than ``sigma`` combined standard errors."""
    baseline_id = request.query_params.get("baseline")
    if not baseline_id:
        raise InvalidQuery(
            "Query parameter 'baseline' (a job id) is required",
            message_code="query_parameter_required",
            errors=[FieldError("baseline", "required", "the id of the job to compare with")],
        )
    tolerance = Tolerance(
        max_drop=number(request, "max_drop", 0.0, 0.0),
        relative=boolean(request, "relative", False),
        sigma=number(request, "sigma", 2.0, 0.0),
    )
    current = job_document(await who.store.evaluations.get(job_id))
    try:
        baseline = job_document(await who.store.evaluations.get(baseline_id))
    except NotFound:
        raise NotFound(
            f"Baseline job {baseline_id!r} does not exist",
            errors=[FieldError("baseline", "resource_not_found", "no such job")],
        ) from None
    return compare(current, baseline, tolerance)


_GATE_PARAMS = ("baseline", "max_drop", "relative", "sigma")
_REPORT_FORMATS = ("junit", "markdown", "github-status", "gitlab-status")


async def _gate(request: Request, who: Caller, job_id: str) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(job document, gate, whether gating was asked for): the baseline is the one asked for
    (``baseline=``), else the one the job's evaluation policy names, resolved now by version order; a
    final decision records the baseline used."""
    params = request.query_params
    asked = triggers.GateRequest(
        baseline=params.get("baseline") or None,
        max_drop=number(request, "max_drop", 0.0, 0.0) if "max_drop" in params else None,
        relative=boolean(request, "relative", False) if "relative" in params else None,
        sigma=number(request, "sigma", 2.0, 0.0) if "sigma" in params else None,
    )
    document = job_document(await who.store.evaluations.get(job_id))
    database = lifecycle_of(request).database
    plan = await triggers.plan_gate(database, who.tenant, job_id, asked)
    baseline: dict[str, Any] | None = None
    if plan.baseline_id is not None:
        try:
            baseline = job_document(await who.store.evaluations.get(plan.baseline_id))
        except NotFound:
            if asked.baseline is not None:
                raise NotFound(
                    f"Baseline job {plan.baseline_id!r} does not exist",
                    errors=[FieldError("baseline", "resource_not_found", "no such job")],
                ) from None
            plan.baseline = {**plan.baseline, "reason": "baseline_deleted"}
    gate = decide(document, baseline, plan.rules, baseline_info=plan.baseline)
    if baseline is not None and gate["decision"] != "pending":
        await triggers.record_baseline(database, who.tenant, plan)
    asked_for = plan.claim is not None or any(name in params for name in _GATE_PARAMS)
    return document, gate, asked_for


@router.get("/jobs/{job_id}/gate", dependencies=[Depends(strict_query(*_GATE_PARAMS))])
async def job_gate(job_id: str, request: Request, who: CallerDep) -> dict[str, Any]:
    """Assay: the CI gate of the evaluation: thresholds, the baseline and each regression, and the decision."""
    return (await _gate(request, who, job_id))[1]


@router.get("/jobs/{job_id}/report", dependencies=[Depends(strict_query("format", "context", *_GATE_PARAMS))])
async def job_report(job_id: str, request: Request, who: CallerDep) -> Response:
    """Assay: the evaluation for CI: JUnit XML (``format=junit``, the default; regressions against the
    baseline are failures naming the benchmark), Markdown, or a commit-status body for GitHub or GitLab."""
    kind = request.query_params.get("format", "junit")
    if kind not in _REPORT_FORMATS:
        raise InvalidQuery(
            f"Query parameter 'format' must be one of {', '.join(_REPORT_FORMATS)}",
            errors=[FieldError("format", "enum", f"must be one of {', '.join(_REPORT_FORMATS)}")],
        )
    document, gate, asked_for = await _gate(request, who, job_id)
    # Without a policy or gate parameters the composite case stays the gate, as it always was.
    shown = gate if asked_for else None
    if kind == "junit":
        return Response(junit_report(document, shown), media_type="application/xml")
    if kind == "markdown":
        return Response(markdown_report(document, shown), media_type="text/markdown; charset=utf-8")
    target = str(request.url_for("job_report", job_id=job_id).include_query_params(format="markdown"))
    context = request.query_params.get("context") or f"assay/{document.get('name', job_id)}"
    status = commit_status(
        document, gate, forge=kind.removesuffix("-status"), target_url=target, context=context[:255]
    )
    return JSONResponse(status)


@router.post("/jobs/{job_id}/cancel", status_code=204, response_class=Response)
async def cancel_job(job_id: str, request: Request, who: CallerDep) -> None:
    """Assay: an explicit soft cancel (the same as ``DELETE`` without ``hard_delete``)."""
    await jobs.cancel(lifecycle_of(request), who.tenant, job_id, hard_delete=False)


@router.post(
    "/jobs/{job_id}/retry", status_code=202, response_model=Job, dependencies=[Depends(strict_query("only"))]
)
async def retry_job(job_id: str, request: Request, who: CallerDep) -> Response:
    """Assay: run the failed (and cancelled) benchmarks of a finished job again, keeping completed results."""
    only = request.query_params.get("only", "failed")
    if only != "failed":
        raise InvalidQuery(
            "Query parameter 'only' must be 'failed'", errors=[FieldError("only", "enum", "must be failed")]
        )
    record = await jobs.retry(lifecycle_of(request), who.tenant, job_id)
    return _job_response(record, 202)


LogOptions = tuple[int | None, datetime | None, bool]


def _log_options(request: Request) -> LogOptions:
    """(tail_lines or None for all, since, timestamps) of a logs request; read once per request."""
    raw_tail = request.query_params.get("tail_lines", "1000")
    try:
        tail = int(raw_tail)
    except ValueError:
        tail = 0
    if tail != -1 and not 1 <= tail <= 10000:
        raise InvalidQuery(
            f"tail_lines must be -1 or 1..10000, got {raw_tail[:20]!r}",
            message_code="query_parameter_value_invalid",
            errors=[FieldError("tail_lines", "range", "must be -1 (all) or from 1 to 10000")],
        )
    since: datetime | None = None
    raw_since = request.query_params.get("since_seconds")
    if raw_since is not None:
        try:
            seconds = int(raw_since)
        except ValueError:
            seconds = 0
        if seconds < 1:
            raise InvalidQuery(
                f"since_seconds must be a positive integer, got {raw_since[:20]!r}",
                message_code="query_parameter_value_invalid",
                errors=[FieldError("since_seconds", "range", "must be a positive integer")],
            )
        since = datetime.now(UTC) - timedelta(seconds=seconds)
    return (None if tail == -1 else tail), since, boolean(request, "timestamps", False)


def _benchmark_log(
    request: Request, record: EvaluationRecord, index: int, options: LogOptions, max_bytes: int
) -> tuple[str, bool]:
    """Blocking file reads: called in a worker thread, never on the event loop."""
    run = record.runs[index].run
    runtime = lifecycle_of(request).runtime
    path = runtime.log_path(record.id, index, run.provider_id, run.benchmark_id) if runtime else None
    if path is None:
        return "", False
    tail, since, stamps = options
    return read_log_bounded(path, tail_lines=tail, since=since, timestamps=stamps, max_bytes=max_bytes)


def _log_response(text: str, truncated: bool, unavailable: str | None = None) -> PlainTextResponse:
    response = PlainTextResponse(text, media_type="text/plain; charset=utf-8")
    if truncated:
        response.headers["X-Log-Truncated"] = "true"
    if unavailable:  # why a section is empty: no pod (yet, or any more), or the adapter has not started
        response.headers["X-Log-Unavailable"] = unavailable.encode("ascii", "replace").decode()[:512]
    return response


def _in_cluster(request: Request) -> bool:
    return settings_of(request).runtime == "kubernetes"


async def _cluster_logs(
    request: Request, record: EvaluationRecord, indices: list[int], options: LogOptions, max_bytes: int
) -> list[tuple[str, bool, str | None]]:
    """(text, truncated, why empty) per benchmark in ``indices``: the adapter container's log of the latest
    attempt's pod, read through the Kubernetes API (docs/cluster.md, "Logs")."""
    # The kubernetes client loads with the first logs request of a cluster's submit function, never at its
    # cold start (tests/test_cold_start_path.py, the import-linter contract in pyproject.toml).
    from assay.runtimes.kubernetes import logs as pod_logs

    state = request.app.state
    reader: pod_logs.PodLogs | None = getattr(state, "pod_logs", None)
    if reader is None:
        try:
            reader = await asyncio.to_thread(pod_logs.PodLogs, settings_of(request))
        except Exception as exc:  # no in-cluster ServiceAccount, an unreadable kubeconfig
            log.warning("cannot configure the Kubernetes client for pod logs", exc_info=True)
            raise TemporaryError(
                f"The hub cannot reach the Kubernetes API to read pod logs ({type(exc).__name__}); "
                "see the submit function's log",
                message_code="pod_logs_unavailable",
            ) from None
        state.pod_logs = reader
    tail, since, stamps = options
    try:
        found = await reader.read_many(
            record.tenant,
            record.id,
            indices,
            tail_lines=tail,
            since=since,
            timestamps=stamps,
            max_bytes=max_bytes,
        )
    except pod_logs.PodLogsForbidden as exc:
        raise Forbidden(str(exc), message_code="pod_logs_forbidden") from None
    except pod_logs.PodLogsUnavailable as exc:
        raise TemporaryError(str(exc), message_code="pod_logs_unavailable") from None
    return [(f.text, f.truncated, f.missing) for f in found]


def _section(record: EvaluationRecord, index: int, container: str, text: str) -> str:
    row = record.runs[index].run
    section = f"=== pod={record.id}-{index} container={container} benchmark_id={row.benchmark_id} ===\n{text}"
    return section if section.endswith("\n") else section + "\n"


def _unavailable(record: EvaluationRecord, missing: dict[int, str]) -> str | None:
    if not missing:
        return None
    if len(missing) == 1 and len(record.runs) == 1:
        return next(iter(missing.values()))
    return "; ".join(f"benchmark {index}: {why}" for index, why in sorted(missing.items()))


@router.get("/jobs/{job_id}/logs", dependencies=[Depends(strict_query(*_LOG_PARAMS))])
async def job_logs(job_id: str, request: Request, who: CallerDep) -> PlainTextResponse:
    record = await who.store.evaluations.get(job_id)
    options = _log_options(request)
    # One response holds at most max_log_bytes: each benchmark gets an equal share of it.
    share = max(1024, settings_of(request).max_log_bytes // max(1, len(record.runs)))
    indices = [row.run.index for row in record.runs]
    if _in_cluster(request):
        found = await _cluster_logs(request, record, indices, options, share)
        text = "".join(_section(record, i, "adapter", t) for i, (t, _, _) in zip(indices, found, strict=True))
        missing = {i: why for i, (_, _, why) in zip(indices, found, strict=True) if why}
        return _log_response(text, any(cut for _, cut, _ in found), _unavailable(record, missing))

    def read() -> tuple[str, bool]:
        sections = []
        truncated = False
        for index in indices:
            text, cut = _benchmark_log(request, record, index, options, share)
            truncated = truncated or cut
            sections.append(_section(record, index, "local", text))
        return "".join(sections), truncated

    return _log_response(*await asyncio.to_thread(read))


@router.get(
    "/jobs/{job_id}/benchmarks/{benchmark_index}/logs", dependencies=[Depends(strict_query(*_LOG_PARAMS))]
)
async def benchmark_logs(
    job_id: str, benchmark_index: str, request: Request, who: CallerDep
) -> PlainTextResponse:
    record = await who.store.evaluations.get(job_id)
    # ASCII digits only (str.isdigit also takes '³'), and few of them (int() refuses over 4300 digits).
    digits = benchmark_index.isascii() and benchmark_index.isdigit() and len(benchmark_index) <= 9
    index = int(benchmark_index) if digits else -1
    if record.run(index) is None:
        raise NotFound(f"Job {job_id} has no benchmark at index {benchmark_index[:20]!r}")
    options, most = _log_options(request), settings_of(request).max_log_bytes
    if _in_cluster(request):
        ((text, truncated, missing),) = await _cluster_logs(request, record, [index], options, most)
        return _log_response(text, truncated, missing)
    return _log_response(*await asyncio.to_thread(_benchmark_log, request, record, index, options, most))


__all__ = ["job_document", "router"]
