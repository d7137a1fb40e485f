"""Kubernetes authentication and authorisation: TokenReview, then SubjectAccessReview per request, both
cached like kube-rbac-proxy does. Imported only when ``auth_mode=kubernetes`` or event senders are checked,
so the ``kubernetes`` client stays out of every other process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

import kubernetes.client
import kubernetes.config

from assay.auth._cache import TtlCache
from assay.auth._guards import token_digest
from assay.auth._model import Permission, Principal
from assay.errors import TemporaryError, Unauthenticated
from assay.kubeapi import Objects
from assay.settings import Settings

__all__ = ["KubernetesGuard", "SenderCheck"]

log = logging.getLogger(__name__)


def api_client(settings: Settings) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    if settings.k8s_api_url:
        configuration.host = settings.k8s_api_url
    elif settings.k8s_kubeconfig is not None:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            str(settings.k8s_kubeconfig), client_configuration=configuration
        )
    else:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient(configuration)


_TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


class _Reviews:
    def __init__(self, client: kubernetes.client.ApiClient, cache_seconds: float) -> None:
        # By path through the client's ApiClient (assay.kubeapi): the generated AuthenticationV1Api and
        # AuthorizationV1Api would import their models on the first authenticated request.
        self._objects = Objects(client)
        self._tokens: TtlCache[tuple[str, str | None], Principal | None] = TtlCache(cache_seconds)
        self._decisions: TtlCache[tuple[Any, ...], bool] = TtlCache(cache_seconds)

    async def review_token(self, token: str, audience: str | None) -> Principal | None:
        key = (token_digest(token), audience)
        if (cached := self._tokens.get(key)) is not None:
            return cached
        spec: dict[str, Any] = {"token": token}
        if audience:
            spec["audiences"] = [audience]
        body: Any = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        try:
            answer = await asyncio.to_thread(self._objects.create, _TOKEN_REVIEWS, {}, body)
        except kubernetes.client.ApiException as exc:
            log.warning("TokenReview failed with HTTP %s", exc.status)
            raise TemporaryError("The cluster could not review the token now") from None
        except Exception as exc:  # connection errors of urllib3
            log.warning("TokenReview failed: %s", type(exc).__name__)
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
            answer = await asyncio.to_thread(self._objects.create, _ACCESS_REVIEWS, {}, body)
        except Exception as exc:
            log.warning("SubjectAccessReview failed: %s", type(exc).__name__)
            raise TemporaryError("The cluster could not authorise the request now") from None
        decision = bool((answer.get("status") or {}).get("allowed"))
        self._decisions.put(key, decision)
        return decision


class KubernetesGuard:
    """Tokens reviewed by the API server; each request authorised in the tenant's namespace with EvalHub's
    resource/verb table (group ``trustyai.opendatahub.io`` by default), so its Roles keep working."""

    mode = "kubernetes"

    def __init__(self, settings: Settings, client: kubernetes.client.ApiClient | None = None) -> None:
        self._reviews = _Reviews(client or api_client(settings), settings.auth_cache_seconds)
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
        self._reviews = _Reviews(client or api_client(settings), settings.auth_cache_seconds)
        self._audience = settings.event_audience
        self._senders = settings.event_senders

    async def sender(self, token: str) -> Principal | None:
        principal = await self._reviews.review_token(token, self._audience)
        if principal is None or not any(fnmatchcase(principal.subject, p) for p in self._senders):
            return None
        return Principal(subject=principal.subject, kind="sender", groups=principal.groups)
