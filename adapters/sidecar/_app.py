"""The sidecar's ASGI app: routes (docs/compatibility.md, first match wins) and the lifecycle of its clients, cache
and event buffer. Pod mode and local mode share this code; they differ in where a model route comes from
and in the ``results_not_delivered`` report at shutdown (pod mode only).

Routes:

- ``GET /health``;
- ``POST /api/v1/evaluations/jobs/{job_id}/events``: events to the hub (:mod:`._events`);
- ``GET /sidecar/v1/jobs/{job_id}/pending-events``: how many of them are still buffered (Assay);
- ``/api/v1/evaluations/...``: other hub calls, passed through with the hub token;
- ``/api/2.0/mlflow[...]``, ``/api/2.0/mlflow-artifacts[...]``, ``/api/3.0/mlflow[...]``: the MLflow server;
- ``/v2/`` and ``/v2/<oci_repository>/...``: the OCI registry, when the job exports to one (:mod:`._registry`);
- local mode: ``/model/{job_id}/{benchmark_index}/<path>``; pod mode: anything else: the model (:mod:`._model`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.sidecar._accounting import Accounting
from adapters.sidecar._cache import ResponseCache
from adapters.sidecar._config import SidecarConfig
from adapters.sidecar._events import EventForwarder
from adapters.sidecar._forwarding import (
    TokenFile,
    error_response,
    forward_streaming,
    request_headers,
    tls_verify,
)
from adapters.sidecar._jobs import JOB_ID, JobInfoMissing, LocalJobs, ModelRoute, PodJob
from adapters.sidecar._model import ModelProxy
from adapters.sidecar._registry import RegistryProxy
from adapters.sidecar._tracing import SidecarTracing, read_trace_file

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_MLFLOW_PATH = re.compile(r"^/api/(2\.0/mlflow|2\.0/mlflow-artifacts|3\.0/mlflow)(/|$)")
_LOCAL_MODEL_PATH = re.compile(r"^/model/(?P<job>[^/]+)/(?P<index>[0-9]{1,9})(?P<rest>/.*)?$")


def _unknown_job(job_id: str) -> Response | None:
    if JOB_ID.fullmatch(job_id):
        return None
    return error_response(
        404, "resource_not_found", "no such job: job ids are letters, digits, '.', '_' and '-'"
    )


_TERMINAL = frozenset({"completed", "failed", "cancelled"})
_EVENT_HEADERS = ("content-type", "x-tenant", "x-global-transaction-id", "traceparent", "tracestate")


def _stamp(event: dict[str, Any], status: object) -> bool:
    """Give an event the times it happened, when the adapter gave none: the hub would otherwise stamp the
    time it *arrived*, and an event buffered across a hub restart would start a run after it completed."""
    if not isinstance(status, str) or status == "pending":
        return False
    now = datetime.now(UTC).isoformat()
    if not event.get("started_at"):
        event["started_at"] = now
    if status in _TERMINAL and not event.get("completed_at"):
        event["completed_at"] = now
    return True


def _path_and_query(request: Request) -> str:
    """The path exactly as the adapter sent it (percent-encoding kept) plus its query."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    text = raw.decode("latin-1")
    return f"{text}?{query.decode('latin-1')}" if query else text


class _Sidecar:
    def __init__(self, config: SidecarConfig) -> None:
        self.config = config
        self.accounting = Accounting()
        self.local_jobs = LocalJobs(config) if config.local_mode else None
        self._pod_job: PodJob | None = None
        self.terminal: set[tuple[str, int]] = set()  # (job id, benchmark index) with a terminal event seen
        self._tenants: dict[str, str] = {}  # job id -> the X-Tenant its adapter sent
        self._registries: dict[str, RegistryProxy] = {}
        self.tracing = SidecarTracing(os.environ)

    # -- lifecycle -------------------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        config = self.config
        hub = config.eval_hub
        self.hub_client = httpx.AsyncClient(
            verify=tls_verify(hub.ca_cert_path, hub.insecure_skip_verify), timeout=hub.http_timeout
        )
        self.hub_token = TokenFile(hub.token_path, hub.token_cache_timeout)
        self.events = EventForwarder(hub, self.hub_client, self.hub_token)
        self.events.resume()
        model = config.model
        # The per-launch cap bounds concurrency, not the pool.
        self.model_client = httpx.AsyncClient(
            verify=tls_verify(model.ca_cert_path, model.insecure_skip_verify),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        cache = ResponseCache(config.cache.dir) if config.cache.enabled and config.cache.dir else None
        self.model = ModelProxy(model, self.model_client, self.accounting, cache)
        mlflow = config.mlflow
        self.mlflow_client = httpx.AsyncClient(
            verify=tls_verify(mlflow.ca_cert_path, mlflow.insecure_skip_verify), timeout=mlflow.http_timeout
        )
        self.mlflow_token = TokenFile(mlflow.token_path, mlflow.token_cache_timeout)
        oci = config.oci
        self.oci_client = httpx.AsyncClient(
            verify=tls_verify(oci.ca_cert_path, oci.insecure_skip_verify), timeout=oci.http_timeout
        )
        if not config.local_mode and self.pod_job() is None:
            logger.warning("pod mode without a readable job spec at %s", config.job_spec_path)
        logger.info(
            "sidecar ready: %s mode, hub %s, cache %s",
            "local" if config.local_mode else "pod",
            hub.base_url or "(none)",
            cache.path if cache else "off",
        )
        try:
            yield
        finally:
            if not config.local_mode and config.report_undelivered:
                self._report_undelivered()
            left = await self.events.flush(config.shutdown_timeout)
            logger.info(
                "sidecar stopped: %d events delivered, %d left undelivered", self.events.delivered, left
            )
            for client in (self.hub_client, self.model_client, self.mlflow_client, self.oci_client):
                await client.aclose()
            if cache is not None:
                cache.close()
            self.tracing.close()

    def pod_job(self) -> PodJob | None:
        if self._pod_job is None:
            try:
                self._pod_job = PodJob.load(self.config.job_spec_path)
            except (OSError, ValueError) as exc:
                logger.debug("job spec unavailable: %s", exc)
        return self._pod_job

    def _report_undelivered(self) -> None:
        """Pod mode: a benchmark of this job with no terminal event gets a ``failed`` one from the sidecar."""
        job = self.pod_job()
        if job is None or not self.config.eval_hub.base_url:
            return
        for benchmark_id, index in job.benchmarks:
            if (job.job_id, index) in self.terminal:
                continue
            logger.error("benchmark %s (index %d) has no results: reporting it failed", benchmark_id, index)
            event = {
                "benchmark_status_event": {
                    "provider_id": job.provider_id,
                    "id": benchmark_id,
                    "benchmark_index": index,
                    "status": "failed",
                    "completed_at": datetime.now(UTC).isoformat(),
                    "error_message": {
                        "message": f"The adapter exited without reporting results for benchmark "
                        f"{benchmark_id!r} (index {index}).",
                        "message_code": "results_not_delivered",
                        "message_origin": "sidecar",
                    },
                }
            }
            headers = {"Content-Type": "application/json"}
            if tenant := self._tenants.get(job.job_id) or self.config.mlflow.workspace:
                headers["X-Tenant"] = tenant
            self.events.enqueue(job.job_id, json.dumps(event).encode(), headers)

    # -- routes ----------------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "mode": "local" if self.config.local_mode else "pod"})

    async def pending(self, request: Request) -> Response:
        """How many of a job's events wait in the buffer: the local hub asks before it judges an adapter's
        exit, so a result still on its way is not mistaken for one never sent."""
        job_id = request.path_params["job_id"]
        return _unknown_job(job_id) or JSONResponse({"pending": self.events.pending(job_id)})

    async def event(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if (unknown := _unknown_job(job_id)) is not None:
            return unknown
        body = await request.body()
        try:
            parsed: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            parsed = None  # the hub answers for a malformed body
        event = parsed.get("benchmark_status_event") if isinstance(parsed, dict) else None
        launch_token: str | None = None
        index = 0
        if isinstance(event, dict):
            index = event.get("benchmark_index", 0)
            index = index if isinstance(index, int) and not isinstance(index, bool) else 0
            if self.local_jobs is not None:
                launch_token = self.local_jobs.hub_token(job_id, index)
            status = event.get("status")
            if status in _TERMINAL:
                self.terminal.add((job_id, index))
            if status == "completed":
                own = event.get("usage")
                event["usage"] = {
                    **(own if isinstance(own, dict) else {}),
                    **self.accounting.report(job_id, index),
                }
            if _stamp(event, status):
                body = json.dumps(parsed).encode()
        headers = {k: v for k, v in request.headers.items() if k.lower() in _EVENT_HEADERS}
        headers.setdefault("content-type", "application/json")
        if launch_token is not None:
            headers["Authorization"] = f"Bearer {launch_token}"  # the local hub's credential for this launch
        elif self.config.eval_hub.token_path is None and (
            authorization := request.headers.get("authorization")
        ):
            headers["Authorization"] = authorization  # no token of its own: keep the adapter's
        if tenant := request.headers.get("x-tenant"):
            self._tenants[job_id] = tenant
        if not self.config.eval_hub.base_url:
            return error_response(503, "hub_not_configured", "eval_hub.base_url is not configured")
        with self.tracing.forwarding(
            self._trace_of(job_id, index, headers), {"assay.job.id": job_id}
        ) as trace:
            headers.update(trace)
            return await self.events.submit(job_id, body, headers)

    def _trace_of(self, job_id: str, index: int, headers: dict[str, str]) -> dict[str, str]:
        """The trace an event belongs to: the adapter's own, else its launch's (local: the file the hub wrote
        beside the credential; pod: this container's TRACEPARENT)."""
        if headers.get("traceparent"):
            return {k: v for k, v in headers.items() if k in ("traceparent", "tracestate")}
        if self.local_jobs is not None:
            return self.local_jobs.trace_headers(job_id, index, read_trace_file)
        return self.tracing.pod_context

    async def hub_passthrough(self, request: Request) -> Response:
        if not self.config.eval_hub.base_url:
            return error_response(503, "hub_not_configured", "eval_hub.base_url is not configured")
        headers = request_headers(request)
        if token := self.hub_token.get():
            headers["Authorization"] = f"Bearer {token}"
        url = self.config.eval_hub.base_url.rstrip("/") + _path_and_query(request)
        return await forward_streaming(self.hub_client, request, url, headers)

    async def other(self, request: Request) -> Response:
        path = request.url.path
        path_and_query = _path_and_query(request)
        if self.local_jobs is not None and path.startswith("/model/"):
            raw_path, _, query = path_and_query.partition("?")
            match = _LOCAL_MODEL_PATH.match(raw_path)
            if match is None:
                return error_response(
                    404, "resource_not_found", "model paths are /model/<job_id>/<index>/<path>"
                )
            if (unknown := _unknown_job(match.group("job"))) is not None:
                return unknown
            try:
                local_route = self.local_jobs.route(match.group("job"), int(match.group("index")))
            except JobInfoMissing as exc:
                return error_response(404, "resource_not_found", str(exc))
            # The job info's URL is the upstream's origin; the rest is the adapter's original path and query.
            rest = (match.group("rest") or "") + (f"?{query}" if query else "")
            return await self.model.handle(request, local_route, rest)
        if _MLFLOW_PATH.match(path):
            return await self._mlflow(request, path_and_query)
        if (registry := self._registry_for(path)) is not None:
            return await registry.handle(request, path_and_query)
        if self.local_jobs is not None:
            return error_response(
                404,
                "resource_not_found",
                f"{path}: local mode serves models at /model/<job_id>/<index>/<path>",
            )
        route = self._pod_route()
        if route is None:
            return error_response(502, "model_not_configured", "model.url is not configured")
        return await self.model.handle(request, route, path_and_query)

    def _pod_route(self) -> ModelRoute | None:
        if not self.config.model.url:
            return None
        job = self.pod_job()
        if job is not None:
            return job.route(self.config)
        fallback = PodJob(
            job_id="",
            provider_id="",
            benchmarks=(("", 0),),
            model_name="",
            oci_host=None,
            oci_repository=None,
        )
        return fallback.route(self.config)

    async def _mlflow(self, request: Request, path_and_query: str) -> Response:
        mlflow = self.config.mlflow
        if not mlflow.tracking_uri:
            return error_response(404, "mlflow_not_configured", "mlflow.tracking_uri is not configured")
        token = self.mlflow_token.get()
        # The sidecar's own token and workspace win over what the adapter sent; without them its are kept.
        drop = {"authorization"} if token else set()
        if mlflow.workspace:
            drop.add("x-mlflow-workspace")
        headers = request_headers(request, drop=drop)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if mlflow.workspace:
            headers["X-MLFLOW-WORKSPACE"] = mlflow.workspace
        url = mlflow.tracking_uri.rstrip("/") + path_and_query
        return await forward_streaming(self.mlflow_client, request, url, headers)

    def _registry_for(self, path: str) -> RegistryProxy | None:
        if path != "/v2" and not path.startswith("/v2/"):
            return None
        job = None if self.config.local_mode else self.pod_job()
        host = self.config.oci.host or (job.oci_host if job is not None else None)
        if not host:
            return None
        repository = job.oci_repository if job is not None and not self.config.oci.host else None
        if repository and path not in ("/v2", "/v2/") and not path.startswith(f"/v2/{repository}/"):
            return None  # e.g. a KServe v2 inference path: model traffic
        registry = self._registries.get(host)
        if registry is None:
            registry = self._registries[host] = RegistryProxy(self.config.oci, host, self.oci_client)
        return registry


def create_app(config: SidecarConfig) -> Starlette:
    """The sidecar as an ASGI app; serve it with one worker (its buffer and counters live in memory)."""
    sidecar = _Sidecar(config)
    routes = [
        Route("/health", sidecar.health, methods=["GET"]),
        Route("/api/v1/evaluations/jobs/{job_id}/events", sidecar.event, methods=["POST"]),
        Route("/sidecar/v1/jobs/{job_id}/pending-events", sidecar.pending, methods=["GET"]),
        Route("/api/v1/evaluations/{rest:path}", sidecar.hub_passthrough, methods=_METHODS),
        Route("/{rest:path}", sidecar.other, methods=_METHODS),
    ]
    app = Starlette(routes=routes, lifespan=sidecar.lifespan)
    app.state.sidecar = sidecar
    return app
