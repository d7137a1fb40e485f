"""Build the ASGI app of a function (submit, callback) or of the whole local hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from assay import __version__
from assay import triggers as trigger_steps
from assay.auth import Access, build_access
from assay.http import openapi, ops
from assay.http.auth import AccessMiddleware
from assay.http.errors import install_error_handlers
from assay.http.middleware import JsonPolicyMiddleware, RequestMiddleware
from assay.lifecycle import Exporter, open_hub
from assay.settings import Settings
from assay.store import Database, default_config_dir, sync_system_catalogue, watch_system_catalogue
from assay.telemetry import Metrics
from assay.ui.session import SessionCookies

if TYPE_CHECKING:
    from assay.runtimes.sidecar import LocalSidecar

log = logging.getLogger(__name__)

Role = Literal["submit", "callback", "hub"]


def routers(role: Role) -> list[APIRouter]:
    """What an app of ``role`` serves besides the operations surface. The routers' modules are imported here, so
    a function builds only its own routes: the callback function none of the REST API's."""
    from assay.http import callbacks, deadletters, triggers

    if role == "callback":
        # The broker's dead-letter sink too (assay/http/deadletters.py says why), and the registries' events.
        return [callbacks.router, deadletters.router, triggers.registry_router]
    from assay import ui
    from assay.http import catalogue, jobs, policies

    api = [jobs.router, catalogue.router, policies.router, triggers.ingress_router]
    if role == "submit":
        return [*api, ui.router]  # the dashboard at /ui (docs/dashboard.md)
    return [callbacks.router, deadletters.router, *api, triggers.registry_router, ui.router]


def _lifespan(
    settings: Settings,
    kind: Literal["local", "function"],
    *,
    load_catalogue: bool,
    metrics: Metrics,
    exporter: Exporter | None,
    access: Access,
    sidecar: LocalSidecar | None = None,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Start: the hub (:func:`~assay.lifecycle.open_hub`), after loading the system catalogue and policies
    and watching their files when ``load_catalogue``. Stop: the watcher, then the hub and its pool."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        watcher: asyncio.Task[None] | None = None

        async def load(database: Database) -> None:
            nonlocal watcher
            app.state.database = database
            if not load_catalogue:
                return
            root = settings.config_dir or default_config_dir()
            await sync_system_catalogue(database.system_catalogue, root)

            async def sync_policies() -> None:
                await trigger_steps.sync_policy_files(database, root, settings.runtime)

            await sync_policies()
            if settings.config_reload and root.is_dir():
                watcher = asyncio.create_task(
                    watch_system_catalogue(database.system_catalogue, root, stop, then=sync_policies)
                )

        hub = await open_hub(
            settings,
            kind,
            prepare=load,
            # Only the local hub sweeps in process; in a cluster the sweep function runs these steps.
            sweep_steps=trigger_steps.sweep_steps(settings) if kind == "local" else (),
            metrics=metrics,
            exporter=exporter,
            signer=access.signer,
            sidecar=sidecar,
        )
        app.state.hub = hub
        try:
            yield
        finally:
            stop.set()  # the catalogue watcher first: it writes through the pool the hub closes
            if watcher is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(watcher, timeout=5)
            await hub.close()
            # The cluster's pod-log reader (http/jobs.py), if a logs route opened one.
            pod_logs = getattr(app.state, "pod_logs", None)
            if pod_logs is not None:
                await pod_logs.close()

    return lifespan


def create_app(
    settings: Settings,
    role: Role = "hub",
    *,
    load_catalogue: bool = True,
    lifecycle: Literal["local", "function"] | None = None,
    exporter: Exporter | None = None,
    access: Access | None = None,
    sidecar: LocalSidecar | None = None,
) -> FastAPI:
    """An app serving what ``role`` does (:func:`routers`) plus the operations surface over the database in
    ``settings``.

    On start it migrates the schema, starts the lifecycle (``local``: the whole hub in this process
    with its in-process broker, runtime and sweep; ``function``: one Knative function that publishes
    to ``K_SINK``; default by ``settings.mode``) and, with ``load_catalogue``, loads the system
    catalogue and watches its files. On stop it stops the runtime, then closes the pool. ``exporter``
    (built by a caller allowed mlflow and oras: ``assay up``, tests) exports finished jobs. ``sidecar``: the
    local hub's, when the caller spawned it already (``assay up``, before importing the app).
    """
    kind = lifecycle or ("local" if settings.mode == "local" else "function")
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url (assay up starts an embedded server)")
    metrics = Metrics()
    access = access or build_access(settings)
    if access.session is None:  # the dashboard's signed-in people reach the API with their session cookie
        access.session = SessionCookies(settings)

    lifespan = _lifespan(
        settings,
        kind,
        load_catalogue=load_catalogue,
        metrics=metrics,
        exporter=exporter,
        access=access,
        sidecar=sidecar,
    )
    app = FastAPI(
        title="Assay",
        version=__version__,
        summary="Evaluation hub for AI models: the EvalHub REST API v1, event-driven.",
        lifespan=lifespan,
        # Assay traces its own spans (assay.telemetry.tracing, exported with OTLP when configured); FastAPI's
        # native telemetry would add a second HTTP span per request under a global provider, and without one
        # still asked the OpenTelemetry API for three providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.access = access
    install_error_handlers(app)
    # The routers' routes as they are (each router names its prefix and tags, and nothing else an inclusion
    # would add): FastAPI 0.165 wraps an included router and builds each of its routes a second time on the
    # first request that walks it, about 20 ms of a function's first request, for the same routes.
    for router in (ops.router, *routers(role)):
        app.router.routes.extend(router.routes)
    # The requests every evaluation makes several times are matched before anything else (assay/http/plain.py).
    first: list[BaseRoute] = []
    if role != "callback":
        from assay.http import jobs

        first += [*jobs.polled_routes(), *jobs.submit_routes()]
    if role != "submit":
        from assay.http import callbacks

        first += callbacks.event_routes()
    app.router.routes[0:0] = first
    openapi.describe(app)  # /openapi.json as the API behaves (assay/http/openapi.py)
    app.add_middleware(JsonPolicyMiddleware)  # inside authentication: added first, it runs after it
    app.add_middleware(AccessMiddleware, access=access, settings=settings)
    if settings.cors_origins:  # none by default: a page on another origin cannot drive the API
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", "Authorization", "X-Global-Transaction-Id", "X-Tenant", "X-User"],
            max_age=3600,
        )
    app.add_middleware(RequestMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app
