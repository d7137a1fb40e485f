"""Kubernetes authentication and authorisation: TokenReview, then SubjectAccessReview per request, both
cached like kube-rbac-proxy does. Imported only when ``auth_mode=kubernetes`` or event senders are checked,
and the ``kubernetes`` client (0.3 s to import) is built on the first review, in the review's worker thread:
a function that authenticates users this way starts, and answers its probes and the launch-credential
callbacks, without it. A configuration that cannot name an API server is refused at start all the same."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assay.auth._cache import TtlCache
from assay.auth._guards import token_digest
from assay.auth._model import Permission, Principal
from assay.errors import TemporaryError, Unauthenticated
from assay.settings import Settings

if TYPE_CHECKING:
    import kubernetes.client

    from assay.kubeapi import Objects

__all__ = ["KubernetesGuard", "SenderCheck"]

log = logging.getLogger(__name__)


# Where a pod's service account token is mounted (what load_incluster_config reads).
_SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def check_configured(settings: Settings) -> None:
    """Refuse at start a configuration that names no API server (what building the client would refuse on the
    first review): an explicit URL, an existing kubeconfig, or a pod's in-cluster environment."""
    if settings.k8s_api_url:
        return
    if settings.k8s_kubeconfig is not None:
        if not Path(settings.k8s_kubeconfig).is_file():
            raise ValueError(f"k8s_kubeconfig: {settings.k8s_kubeconfig} is not a file")
        return
    platform = os.environ  # noqa: TID251 - the kubelet's variables, what load_incluster_config reads
    if not (platform.get("KUBERNETES_SERVICE_HOST") and platform.get("KUBERNETES_SERVICE_PORT")):
        raise ValueError(
            "Kubernetes authentication needs an API server: run in a pod (KUBERNETES_SERVICE_HOST/PORT), or set "
            "k8s_api_url or k8s_kubeconfig"
        )
    if not _SERVICE_ACCOUNT_TOKEN.is_file():
        raise ValueError(
            f"Kubernetes authentication in a pod needs its service account token ({_SERVICE_ACCOUNT_TOKEN})"
        )


def api_client(settings: Settings) -> kubernetes.client.ApiClient:
    import kubernetes.client

    from assay.kubeapi import client_configuration

    return kubernetes.client.ApiClient(client_configuration(settings))


def _log_failure(review: str, exc: Exception) -> None:
    """A review the cluster did not answer: the API server's HTTP status (an ApiException carries it), else why
    there was no answer (assay.kubeapi's status-0 ApiException: Timeout or Unreachable), else the exception's
    kind. Never the token or the answer's body."""
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    log.warning("%s failed: %s", review, f"HTTP {status}" if status else str(reason or type(exc).__name__))


_TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


class _Reviews:
    def __init__(self, settings: Settings, client: kubernetes.client.ApiClient | None) -> None:
        if client is None:
            check_configured(settings)
        self._settings = settings
        self._client = client
        self._objects: Objects | None = None
        self._building = threading.Lock()
        cache_seconds = settings.auth_cache_seconds
        self._tokens: TtlCache[tuple[str, str | None], Principal | None] = TtlCache(cache_seconds)
        self._decisions: TtlCache[tuple[Any, ...], bool] = TtlCache(cache_seconds)

    def api(self) -> Objects:
        """The API by path through the client's ApiClient (assay.kubeapi: the generated AuthenticationV1Api and
        AuthorizationV1Api would import their models too), built on first use."""
        with self._building:
            if self._objects is None:
                from assay.kubeapi import Objects

                client = self._client or api_client(self._settings)
                self._objects = Objects(client, self._settings.k8s_request_timeout_seconds)
            return self._objects

    def _create(self, path: str, body: Any) -> Any:
        """POST a review; called in a worker thread, where the first one builds the client."""
        return self.api().create(path, {}, body)

    async def review_token(self, token: str, audience: str | None) -> Principal | None:
        key = (token_digest(token), audience)
        if (cached := self._tokens.get(key)) is not None:
            return cached
        spec: dict[str, Any] = {"token": token}
        if audience:
            spec["audiences"] = [audience]
        body: Any = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        try:
            answer = await asyncio.to_thread(self._create, _TOKEN_REVIEWS, body)
        except Exception as exc:
            _log_failure("TokenReview", exc)
            raise TemporaryError("The cluster could not review the token now") from None
        status = answer.get("status") or {}
        principal: Principal | None = None
        if status.get("authenticated") and status.get("user"):
            user = status["user"]
            principal = Principal(
                subject=str(user.get("username")),
                groups=tuple(user.get("groups") or ()),
                uid=user.get("uid"),
                extra={k: tuple(v) for k, v in (user.get("extra") or {}).items()},
            )
        self._tokens.put(key, principal)
        return principal

    async def allowed(self, principal: Principal, attributes: dict[str, Any]) -> bool:
        key = (principal.subject, principal.groups, tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if (cached := self._decisions.get(key)) is not None:
            return cached
        spec: dict[str, Any] = {"user": principal.subject, "groups": list(principal.groups)}
        if principal.uid:
            spec["uid"] = principal.uid
        if principal.extra:
            spec["extra"] = {k: list(v) for k, v in principal.extra.items()}
        if "path" in attributes:
            spec["nonResourceAttributes"] = attributes
        else:
            spec["resourceAttributes"] = attributes
        body: Any = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        try:
            answer = await asyncio.to_thread(self._create, _ACCESS_REVIEWS, body)
        except Exception as exc:
            _log_failure("SubjectAccessReview", exc)
            raise TemporaryError("The cluster could not authorise the request now") from None
        decision = bool((answer.get("status") or {}).get("allowed"))
        self._decisions.put(key, decision)
        return decision


class KubernetesGuard:
    """Tokens reviewed by the API server; each request authorised in the tenant's namespace with EvalHub's
    resource/verb table (group ``trustyai.opendatahub.io`` by default), so its Roles keep working."""

    mode = "kubernetes"

    def __init__(self, settings: Settings, client: kubernetes.client.ApiClient | None = None) -> None:
        self._reviews = _Reviews(settings, client)
        self._group = settings.auth_api_group
        self._namespace = settings.k8s_namespace_template

    async def authenticate(self, token: str | None, headers: Mapping[str, str]) -> Principal:
        if not token:
            raise Unauthenticated("A bearer token is required (Authorization: Bearer <token>)")
        principal = await self._reviews.review_token(token, None)
        if principal is None:
            raise Unauthenticated("The bearer token is not valid")
        return principal

    async def authorize(self, principal: Principal, tenant: str, permission: Permission) -> bool:
        if permission.cluster:
            return await self._reviews.allowed(principal, {"path": f"/{permission.resource}", "verb": "get"})
        namespace = self._namespace.replace("{tenant}", tenant)
        checks = [(self._group, permission.resource, permission.verb)]
        if permission.resource == "evaluations" and permission.verb == "create":
            # EvalHub's proxy also asks for MLflow experiments: a Role written for EvalHub grants both.
            checks += [
                ("mlflow.kubeflow.org", "experiments", "create"),
                ("mlflow.kubeflow.org", "experiments", "get"),
            ]
        for group, resource, verb in checks:
            attributes = {"namespace": namespace, "group": group, "resource": resource, "verb": verb}
            if not await self._reviews.allowed(principal, attributes):
                return False
        return True


class SenderCheck:
    """The identity of a CloudEvent sender (Knative Eventing's OIDC token): reviewed with the broker's audience,
    its username matched against ``event_senders`` globs."""

    def __init__(self, settings: Settings, client: kubernetes.client.ApiClient | None = None) -> None:
        self._reviews = _Reviews(settings, client)
        self._audience = settings.event_audience
        self._senders = settings.event_senders

    async def sender(self, token: str) -> Principal | None:
        principal = await self._reviews.review_token(token, self._audience)
        if principal is None or not any(fnmatchcase(principal.subject, p) for p in self._senders):
            return None
        return Principal(subject=principal.subject, kind="sender", groups=principal.groups)
