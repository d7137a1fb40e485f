"""The access rule of every route, derived from its method and path (a template or a request's own path: ids
are single path segments, so both classify alike), so no route goes unguarded.

EvalHub's kube-rbac-proxy table (resource ``evaluations`` / ``collections`` / ``providers``, verb from the HTTP
method, ``list`` for a collection GET) is kept so existing Roles work; Assay adds ``policies``, ``deadletters``
and ``metrics``. A route this module cannot place raises :class:`NoRule`: the app refuses to serve it and the
authorisation matrix test fails, so a new route cannot be forgotten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from assay.auth._model import Permission

__all__ = ["NoRule", "Rule", "rule_of"]

RuleKind = Literal[
    "public", "authenticated", "permission", "launch", "sender", "ingress", "signed", "session"
]


class NoRule(LookupError):
    """A route with no access rule: a programming error, refused rather than served."""


@dataclass(frozen=True, slots=True)
class Rule:
    """``public``: no credential (liveness, readiness); ``authenticated``: any valid caller (API docs);
    ``permission``: ``permission`` in the request's tenant; ``launch``: a launch credential (callbacks);
    ``sender``: the broker's identity (dead-letter sink); ``ingress``: the broker, an HMAC signature or an
    editor of the tenant (registry CloudEvents); ``signed``: the forge's own signature, checked by the route
    (webhooks); ``session``: the dashboard's pages, which sign people in themselves."""

    kind: RuleKind
    permission: Permission | None = None


PUBLIC = Rule("public")
_PUBLIC_PATHS = frozenset({"/api/v1/health", "/health", "/healthz", "/readyz"})
_DOC_PATHS = frozenset({"/openapi.json", "/openapi.yaml", "/docs", "/docs/oauth2-redirect", "/redoc"})
_RESOURCES = {
    "jobs": "evaluations",
    "providers": "providers",
    "collections": "collections",
    "policies": "policies",
}
_ITEM_VERBS = {"GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_EVENTS = re.compile(r"^/api/v1/evaluations/jobs/[^/]+/events$")
_EVALUATIONS = re.compile(
    r"^/api/v1/evaluations(?:/(?P<kind>jobs|providers|collections|policies))?"
    r"(?P<item>/[^/]+)?(?P<rest>/.*)?$"
)


def _permission(resource: str, verb: str) -> Rule:
    return Rule("permission", Permission(resource, verb))


def rule_of(method: str, path: str) -> Rule:
    """The rule of ``method`` on the route whose path template is ``path``."""
    method = method.upper()
    if path in _PUBLIC_PATHS:
        return PUBLIC
    if path in _DOC_PATHS:
        return Rule("authenticated")
    if path == "/metrics":
        return Rule("permission", Permission("metrics", "get", cluster=True))
    if path.startswith("/api/v1/webhooks/"):
        return Rule("signed")
    if path == "/api/v1/events":
        return Rule("ingress", Permission("evaluations", "create"))
    if path == "/api/v1/dead-letters":
        return Rule("sender") if method == "POST" else _permission("deadletters", "list")
    if path == "/ui" or path.startswith("/ui/"):
        return Rule("session")
    if _EVENTS.match(path):
        return Rule("launch")
    match = _EVALUATIONS.match(path)
    if match is None or (match["kind"] is None and (match["item"] or match["rest"])):
        raise NoRule(f"no access rule for {method} {path}")
    resource = _RESOURCES[match["kind"] or "jobs"]  # POST /api/v1/evaluations submits a job
    if match["item"] is None:
        if match["rest"] is not None:
            raise NoRule(f"no access rule for {method} {path}")
        if method in ("GET", "HEAD"):
            return _permission(resource, "list")
        if method == "POST":
            return _permission(resource, "create")
        raise NoRule(f"no access rule for {method} {path}")
    if match["rest"] is None:
        if method in _ITEM_VERBS:
            return _permission(resource, _ITEM_VERBS[method])
        raise NoRule(f"no access rule for {method} {path}")
    # Sub-resources of one item: reading them is ``get``; cancelling is ``delete`` (EvalHub cancels with
    # DELETE); any other action (retry) changes the item: ``update``.
    if method in ("GET", "HEAD"):
        return _permission(resource, "get")
    if method == "DELETE" or match["rest"] == "/cancel":
        return _permission(resource, "delete")
    return _permission(resource, "update")
