"""Knative Service ``tenants``: tenant onboarding. A namespace labelled ``assay.dev/tenant`` (or EvalHub's
``evalhub.trustyai.opendatahub.io/tenant``) gets what a tenant needs — the functions' RoleBindings, its own
Kueue ClusterQueue in Assay's cohort and the LocalQueue on it, default-deny NetworkPolicies — and loses what
onboarding made when the label goes (``assay/runtimes/kubernetes/tenants.py``, ``docs/cluster.md``).

Triggered by an ApiServerSource on Namespaces (``dev.knative.apiserver.resource.*``, Resource or Reference
mode: that namespace) and a PingSource (any other event: every tenant namespace, which repairs what was
changed by hand or missed). Idempotent: a redelivered event changes nothing. No database. Run it as Knative
does::

    uvicorn functions.tenants.main:app --host 0.0.0.0 --port $PORT --no-access-log

``tenants`` is also a plain functions-framework HTTP function (its default signature type), so
``functions-framework --asgi --source functions/tenants/main.py --target tenants`` serves the same;
the module does not import functions-framework, whose package loads Flask (``docs/performance.md``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from cloudevents.http import CloudEvent
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from assay.core.events import KUBERNETES_RESOURCE_EVENTS
from assay.functionhost.app import HANDLED, event_app
from assay.functionhost.senders import SenderGate
from assay.settings import Settings
from assay.telemetry import configure_logging
from functions import started

if TYPE_CHECKING:
    from assay.runtimes.kubernetes.onboarding import Onboarding

log = logging.getLogger(__name__)


class Host:
    """The process's onboarding client, built on the first event (the kubernetes client stays unloaded
    until then)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings
        self.senders = SenderGate()
        self._onboarding: Onboarding | None = None
        self._lock = asyncio.Lock()

    def settings_now(self) -> Settings:
        """The settings given, or the environment's, read once."""
        if self.settings is None:
            self.settings = Settings(mode="cluster")
        return self.settings

    async def onboarding(self) -> Onboarding:
        async with self._lock:
            if self._onboarding is None:
                from assay.runtimes.kubernetes.onboarding import Onboarding

                settings = self.settings_now()
                configure_logging(settings.log_format, settings.log_level)
                self._onboarding = Onboarding(settings)
            return self._onboarding

    async def close(self) -> None:
        if self._onboarding is not None:
            await self._onboarding.close()
            self._onboarding = None


host = Host()


def _namespace_of(event: CloudEvent) -> str | None:
    data: Any = event.data if isinstance(event.data, dict) else {}
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else data.get("name")
    if not name and isinstance(event.get("subject"), str):
        name = str(event["subject"]).rsplit("/", 1)[-1]
    return str(name) if name else None


async def onboard(event: CloudEvent) -> None:
    """One Namespace event (that namespace) or any other event (every tenant namespace)."""
    from kubernetes.client.exceptions import ApiException

    try:
        onboarding = await host.onboarding()
        if event["type"] in KUBERNETES_RESOURCE_EVENTS:
            namespace = _namespace_of(event)
            if namespace is not None:
                await onboarding.reconcile(namespace, deleted=str(event["type"]).endswith(".delete"))
        else:
            await onboarding.resync()
    except ApiException as exc:
        from assay.runtimes.kubernetes.runtime import api_said

        log.error("tenant onboarding failed on event %s: %s", event["id"], exc)
        # 403: the function's RBAC is wrong, a retry will not help; anything else may pass. The answer says why in
        # one clean sentence (the Status message, or that the API did not answer), never the client's text.
        raise HTTPException(
            422 if exc.status in (401, 403) else 503, detail=f"Tenant onboarding failed: {api_said(exc)[0]}"
        ) from exc


async def tenants(request: Request) -> Response:
    """A CloudEvent from the broker (binary or structured): 200 once onboarding has applied it. Who sent it is
    checked first, as in every event function: this one creates RoleBindings and queues."""
    event = await host.senders.admit(host.settings_now(), request)
    if isinstance(event, Response):
        return event
    await onboard(event)
    return Response(status_code=HANDLED)


app = event_app(tenants, host.close)
started()
