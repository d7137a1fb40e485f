"""Hosting a lifecycle handler as a Knative CloudEvent function (an ASGI app that uvicorn serves).

Each event function's module builds its ``app`` with :meth:`CloudEventHost.app` and Knative runs it as it runs
submit: ``uvicorn functions.<name>.main:app``. The module's endpoint (``async def dispatch(request)``) is also
a plain functions-framework HTTP function, so ``functions-framework --asgi --target dispatch`` serves it too.
The process opens its pool on the first event, keeps it while Knative keeps the pod and closes it when uvicorn
shuts down (the app's lifespan). Outcomes map
to Knative's retry rules: 2xx done (also for duplicates), 503 retry (transient), 422 dead-letter
without retries (poison). Never 404 or 409, which Knative would retry to exhaustion. Nothing here imports
FastAPI or :mod:`assay.http`: an event function's cold start loads the lifecycle, not the REST app.

:meth:`CloudEventHost.deliver` takes the HTTP request, so the sender is checked before the event is read:
with ``ASSAY_EVENT_SENDERS`` set (when Knative Eventing's OIDC sender tokens are on; the base manifests leave
it unset, and NetworkPolicies keep others away: docs/security.md), only the broker's OIDC identity or a hub
administrator's token is accepted (401/403 otherwise); without it, events are accepted from whoever can reach
the function, with a warning at the first one (docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from cloudevents.http import CloudEvent
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from assay.errors import RequestError, TemporaryError
from assay.functionhost.app import HANDLED, Endpoint, event_app
from assay.functionhost.senders import SenderGate
from assay.lifecycle import Exporter, Hub, Lifecycle, open_hub
from assay.lifecycle.hub import RuntimeFactory
from assay.settings import Settings
from assay.telemetry import configure_logging, tracing

if TYPE_CHECKING:
    from assay.lifecycle.ports import SweepStep

log = logging.getLogger(__name__)

Handler = Callable[[Lifecycle, CloudEvent], Awaitable[object]]


class CloudEventHost:
    """Owns one process's hub for a CloudEvent function; ``await host(handler, event)`` runs a handler."""

    def __init__(
        self,
        *,
        with_runtime: bool,
        settings: Settings | None = None,
        runtime: RuntimeFactory | None = None,
        exporter: Callable[[Settings], Exporter] | None = None,
        sweep_steps: Callable[[Settings], Sequence[SweepStep]] | None = None,
    ) -> None:
        """``runtime``, ``exporter`` and ``sweep_steps`` are factories called when the hub opens (the first
        event), so what they import is paid by the function that uses it, on its first event: the kubernetes
        client by dispatch and sweep, the exports by aggregate and sweep, the triggers by the sweep."""
        self._with_runtime = with_runtime
        self._exporter = exporter
        self._runtime = runtime
        self._sweep_steps = sweep_steps
        self._settings = settings
        self._hub: Hub | None = None
        self._lock = asyncio.Lock()
        self._senders = SenderGate()

    async def hub(self) -> Hub:
        async with self._lock:
            if self._hub is None:
                settings = self.settings()
                configure_logging(settings.log_format, settings.log_level)
                if not settings.database_url:
                    raise TemporaryError("DATABASE_URL is not set")
                self._hub = await open_hub(
                    settings,
                    "function",
                    sweep_steps=self._sweep_steps(settings) if self._sweep_steps is not None else (),
                    with_runtime=self._with_runtime,
                    runtime=self._runtime,
                    exporter=self._exporter(settings) if self._exporter is not None else None,
                )
            return self._hub

    def settings(self) -> Settings:
        """The settings given, or the environment's, read once (not at every delivery)."""
        if self._settings is None:
            self._settings = Settings(mode="cluster")
        return self._settings

    def app(self, endpoint: Endpoint) -> Starlette:
        """The function's ASGI app (what ``uvicorn functions.<name>.main:app`` serves): ``endpoint`` answers
        every delivery, and the hub is closed when the server shuts down."""
        return event_app(endpoint, self.close)

    async def deliver(self, request: Request, handler: Handler) -> Response:
        """An HTTP delivery from the broker: the sender checked, the CloudEvent read, the handler run."""
        event = await self._senders.admit(self.settings(), request)
        if isinstance(event, Response):
            return event
        await self(handler, event)
        return Response(status_code=HANDLED)

    async def __call__(self, handler: Handler, event: CloudEvent) -> None:
        try:
            hub = await self.hub()
            with tracing.consuming(getattr(handler, "__name__", "handler"), event):
                await handler(hub.lifecycle, event)
        except TemporaryError as exc:
            log.warning("event %s will be retried: %s", event["id"], exc.message)
            raise HTTPException(503, detail=exc.message, headers={"Retry-After": "5"}) from exc
        except (
            RequestError
        ) as exc:  # can never apply (malformed, unknown evaluation): dead-letter, no retries
            log.error("poison event %s (%s): %s", event["id"], event["type"], exc.message)
            raise HTTPException(422, detail=exc.message) from exc
        except Exception as exc:
            log.exception("handling event %s (%s) failed", event["id"], event["type"])
            raise HTTPException(
                503, detail="internal error; redeliver", headers={"Retry-After": "5"}
            ) from exc

    async def close(self) -> None:
        if self._hub is not None:
            await self._hub.close()
            self._hub = None


__all__ = ["CloudEventHost", "Endpoint", "Handler", "event_app"]
