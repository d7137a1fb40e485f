"""The adapters' status events (EvalHub v1 ``POST /api/v1/evaluations/jobs/{id}/events``), sent through the
sidecar with a launch's credential. Served by the callback function and the local hub; a module of its own so
the callback function builds only the routes it serves."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.routing import BaseRoute

from assay.api.jobs import StatusEvent
from assay.errors import FieldError, Forbidden
from assay.http.context import lifecycle_of, principal_of
from assay.http.plain import PlainRoute, ValidatedBody, route_of
from assay.lifecycle import progress
from assay.telemetry import tracing

router = APIRouter(prefix="/api/v1/evaluations", tags=["callbacks"])


@router.post("/jobs/{job_id}/events", status_code=204, response_class=Response)
async def post_event(job_id: str, request: Request, event: StatusEvent) -> None:
    """The adapter callback (through the sidecar), accepted only with this launch's credential: it names the
    tenant, the job, the benchmark indices and the attempt the launch runs. Events of an attempt that is no
    longer current, and late events for a finished job, are acknowledged and ignored (EvalHub answered 409,
    which a broker or retrying sidecar would retry forever)."""
    principal = principal_of(request)
    claims = principal.launch if principal is not None else None
    if claims is None:  # the access middleware lets nothing else through; refuse rather than trust
        raise Forbidden("Status events need a launch credential")
    status = event.benchmark_status_event
    attempt = claims.attempt_of(status.benchmark_index)
    if attempt is None:
        raise Forbidden(
            f"This launch does not run benchmark index {status.benchmark_index} of job {job_id}",
            errors=[
                FieldError(
                    "benchmark_status_event.benchmark_index", "forbidden", "not this launch's benchmark"
                )
            ],
        )
    with tracing.span(
        "callback",
        lambda: {
            "assay.evaluation.id": job_id,
            "assay.benchmark.index": status.benchmark_index,
            "assay.benchmark.status": status.status,
        },
        parent=request.headers,
        kind="server",
    ):
        await progress.record_event(lifecycle_of(request), job_id, claims.tenant, status, attempt=attempt)


async def _take_event(request: Request, event: StatusEvent) -> Response:
    await post_event(request.path_params["job_id"], request, event)
    return Response(status_code=204)


def event_routes() -> list[BaseRoute]:
    """The status events' route, served first (:class:`~assay.http.plain.ValidatedBody`): two per evaluation at
    least, each FastAPI's dependency solving, ``json.loads`` and validation of the parsed document."""
    path = f"{router.prefix}/jobs/{{job_id}}/events"
    return [
        PlainRoute(path, ValidatedBody(StatusEvent, _take_event, route_of(router, post_event, path)), "POST")
    ]


__all__ = ["event_routes", "router"]
