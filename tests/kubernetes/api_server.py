"""A Kubernetes API server for the tests: the endpoints Assay uses, refusing what a real one refuses.

A real HTTP server on loopback (Starlette under uvicorn, in a thread) that the real ``kubernetes`` client talks
to. It stores objects in memory and implements create / get / list (label selectors: ``=``, ``!=``, ``in``,
``notin``, exists; field selectors: ``path=value``, ``path!=value`` on any field, as the API server allows on
a kind's selectable fields such as an Event's ``involvedObject.name`` and ``reason``) / replace (PUT) /
delete for the kinds in :data:`RESOURCES`, pod logs, and the
``TokenReview`` and ``SubjectAccessReview`` create endpoints, with the API server's answers as ``Status``
objects: 201, 401 ``Unauthorized``, 403 ``Forbidden``, 404 ``NotFound``, 409 ``AlreadyExists`` / ``Conflict``,
422 ``Invalid``. uid / creationTimestamp / resourceVersion are filled in, and a garbage collector deletes
what a deleted object owned (and everything in a deleted namespace).

What it refuses, as a real one does:

- **Unauthenticated and unauthorised requests.** Every request needs ``Authorization: Bearer <token>`` of a
  registered token (else 401). The token's user and groups are authorised by **RBAC evaluated from the
  stored Roles, ClusterRoles, RoleBindings and ClusterRoleBindings** (so the rules rendered from ``knative/``
  and the RoleBindings tenant onboarding creates are what decides); a missing verb is 403 ``Forbidden``
  with the real message. The group ``system:masters`` may do anything.
- **Missing namespaces:** creating in a namespace that does not exist is 404 ``namespaces "x" not found``.
- **Large objects:** a ConfigMap or Secret whose data exceeds 1 MiB is 422 ``Too long: may not be more than
  1048576 bytes``; a request body over 3 MiB is 413.
- **Invalid bodies:** every body is validated against the official schemas (``tests/k8s_schemas.py``,
  closed to unknown fields; ``tests/kubernetes/client_schemas.py`` for kinds those lack); 422 ``Invalid``.

The helper API for tests (the "controllers" and the identity provider):

- :meth:`TestApiServer.put`, :meth:`set_status`, :meth:`get`, :meth:`list`, :meth:`delete`: play Kueue, the
  Job controller, the kubelet or an administrator, bypassing authentication (bodies are still validated).
- :meth:`apply`: put many objects (rendered manifests), replacing those that exist.
- :meth:`register_token` (token -> user, groups, uid, audiences), :meth:`service_account_token`
  (a ServiceAccount's token: ``system:serviceaccount:<ns>:<name>`` and its groups), :attr:`admin_token`
  (``system:masters``), :meth:`grant` (a Role or ClusterRole with ``rules`` bound to a user, group or
  ServiceAccount), :meth:`add_namespace`.
- :meth:`set_log`: a container's log lines, served by ``GET .../pods/<name>/log`` with ``tailLines``,
  ``sinceTime``, ``sinceSeconds``, ``timestamps`` and ``limitBytes`` as the kubelet does; a container whose
  status says it is waiting is 400 ``container "x" in pod "y" is waiting to start: <reason>``, as on a
  cluster.

No watch endpoint: the runtime never opens a watch (the watcher is driven by ApiServerSource events and the
sweep).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import re
import secrets
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.kubernetes import client_schemas


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


# plural -> what it is
RESOURCES: dict[str, Kind] = {
    "configmaps": Kind("", "v1", "ConfigMap"),
    "pods": Kind("", "v1", "Pod"),
    "events": Kind("", "v1", "Event"),
    "secrets": Kind("", "v1", "Secret"),
    "serviceaccounts": Kind("", "v1", "ServiceAccount"),
    "namespaces": Kind("", "v1", "Namespace", namespaced=False),
    "jobs": Kind("batch", "v1", "Job"),
    "networkpolicies": Kind("networking.k8s.io", "v1", "NetworkPolicy"),
    "roles": Kind("rbac.authorization.k8s.io", "v1", "Role"),
    "rolebindings": Kind("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    "clusterroles": Kind("rbac.authorization.k8s.io", "v1", "ClusterRole", namespaced=False),
    "clusterrolebindings": Kind("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", namespaced=False),
    "workloads": Kind("kueue.x-k8s.io", "v1beta2", "Workload"),
    "localqueues": Kind("kueue.x-k8s.io", "v1beta2", "LocalQueue"),
    "clusterqueues": Kind("kueue.x-k8s.io", "v1beta2", "ClusterQueue", namespaced=False),
    "cohorts": Kind("kueue.x-k8s.io", "v1beta2", "Cohort", namespaced=False),
    "resourceflavors": Kind("kueue.x-k8s.io", "v1beta2", "ResourceFlavor", namespaced=False),
    "workloadpriorityclasses": Kind("kueue.x-k8s.io", "v1beta2", "WorkloadPriorityClass", namespaced=False),
    "hardwareprofiles": Kind("infrastructure.opendatahub.io", "v1", "HardwareProfile"),
}
MAX_DATA_BYTES = 1024 * 1024
MAX_BODY_BYTES = 3 * 1024 * 1024
MASTERS = "system:masters"


def plural_of(obj: Mapping[str, Any]) -> str:
    return next(
        p for p, k in RESOURCES.items() if k.kind == obj["kind"] and k.api_version == obj["apiVersion"]
    )


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def ago(seconds: float) -> str:
    """A timestamp ``seconds`` in the past, as the API server writes one."""
    return rfc3339(datetime.now(UTC) - timedelta(seconds=seconds))


def _status(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return JSONResponse(body, status_code=code)


_REQUIREMENT = re.compile(
    r"\s*(?P<key>[A-Za-z0-9./_-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9._-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split_selector(selector: str) -> Iterator[str]:
    depth, start = 0, 0
    for i, char in enumerate(selector):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            yield selector[start:i]
            start = i + 1
    yield selector[start:]


def fields_match(selector: str | None, obj: Mapping[str, Any]) -> bool:
    """A field selector (``involvedObject.name=x,reason=FailedMount``, ``=``, ``==`` and ``!=``) against ``obj``."""
    if not selector:
        return True
    for part in selector.split(","):
        found = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if found is None:
            raise ValueError(f"invalid field selector: {part!r}")
        value: Any = obj
        for key in found[1].split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        equal = ("" if value is None else str(value)) == found[3]
        if equal != (found[2] != "!="):
            return False
    return True


def matches(selector: str | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics (equality- and set-based, ``key`` and ``!key``)."""
    if not selector:
        return True
    for part in _split_selector(selector):
        part = part.strip()
        if not part:
            continue
        if part.startswith("!"):
            if part[1:].strip() in labels:
                return False
            continue
        found = _REQUIREMENT.fullmatch(part)
        if found is None:
            raise ValueError(f"unable to parse requirement: {part!r}")
        key = found["key"]
        if found["op"] in ("=", "=="):
            if labels.get(key) != found["value"]:
                return False
        elif found["op"] == "!=":
            if labels.get(key) == found["value"]:
                return False
        elif found["setop"]:
            values = {v.strip() for v in found["values"].split(",") if v.strip()}
            if (found["setop"] == "in") != (labels.get(key) in values):
                return False
        elif key not in labels:
            return False
    return True


@dataclass(frozen=True)
class UserInfo:
    """Who a token is: what a TokenReview answers and what RBAC authorises."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    audiences: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attributes:
    """One request as RBAC sees it."""

    verb: str
    group: str
    resource: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""

    def describe(self, user: str) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        group = f' in API group "{self.group}"'
        scope = f' in the namespace "{self.namespace}"' if self.namespace else " at the cluster scope"
        subject = f"{self.resource}.{self.group}" if self.group else self.resource
        name = f' "{self.name}"' if self.name else ""
        return (
            f'{subject}{name} is forbidden: User "{user}" cannot {self.verb} resource "{what}"{group}{scope}'
        )


def _rule_allows(rule: Mapping[str, Any], attributes: Attributes) -> bool:
    def has(values: Iterable[str], value: str) -> bool:
        values = list(values or [])
        return "*" in values or value in values

    resource = (
        f"{attributes.resource}/{attributes.subresource}" if attributes.subresource else attributes.resource
    )
    if not has(rule.get("verbs") or [], attributes.verb):
        return False
    if not has(rule.get("apiGroups") or [], attributes.group):
        return False
    resources = rule.get("resources") or []
    if not (
        has(resources, resource) or (attributes.subresource and f"*/{attributes.subresource}" in resources)
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or attributes.name in names


@dataclass
class _Log:
    lines: list[tuple[datetime, str]] = field(default_factory=list)


class TestApiServer:
    """The store and the ASGI app; thread-safe, so tests read and change it while the hub calls it."""

    __test__ = False

    def __init__(self, create_delay: float = 0.0, *, namespaces: Sequence[str] = ()) -> None:
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._versions = itertools.count(1)
        self._tokens: dict[str, UserInfo] = {}
        self._logs: dict[tuple[str, str, str], _Log] = {}
        self.created: list[dict[str, Any]] = []  # every body created through HTTP, as received
        self.deleted: list[tuple[str, str, str]] = []  # (plural, namespace, name), GC included
        self.rejected: list[str] = []  # schema problems of refused bodies
        self.forbidden: list[str] = []  # RBAC refusals, as their messages
        self.create_delay = create_delay
        self.fail_creates: dict[
            str, list[int]
        ] = {}  # plural -> statuses its next creates are answered (5xx, 429)
        self.fail_after_create: dict[str, list[int]] = {}  # the same, answered once the object is stored
        self._in_flight = 0
        self.max_in_flight = 0
        self.admin_token = self.register_token(
            "admin-" + secrets.token_hex(8), "kubernetes-admin", groups=(MASTERS, "system:authenticated")
        )
        for namespace in namespaces:
            self.add_namespace(namespace)
        self.app = Starlette(
            routes=[
                Route("/api/v1/namespaces/{namespace}/pods/{name}/log", self._log, methods=["GET"]),
                Route("/api/v1/namespaces/{namespace}/{plural}", self._collection, methods=["GET", "POST"]),
                Route(
                    "/api/v1/namespaces/{namespace}/{plural}/{name}",
                    self._item,
                    methods=["GET", "PUT", "DELETE"],
                ),
                Route(
                    "/apis/{group}/{version}/namespaces/{namespace}/{plural}",
                    self._collection,
                    methods=["GET", "POST"],
                ),
                Route(
                    "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
                    self._item,
                    methods=["GET", "PUT", "DELETE"],
                ),
                Route("/api/v1/{plural}", self._collection, methods=["GET", "POST"]),
                Route("/api/v1/{plural}/{name}", self._item, methods=["GET", "PUT", "DELETE"]),
                Route("/apis/authentication.k8s.io/v1/tokenreviews", self._token_review, methods=["POST"]),
                Route(
                    "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                    self._access_review,
                    methods=["POST"],
                ),
                Route("/apis/{group}/{version}/{plural}", self._collection, methods=["GET", "POST"]),
                Route(
                    "/apis/{group}/{version}/{plural}/{name}", self._item, methods=["GET", "PUT", "DELETE"]
                ),
            ]
        )

    # -- identities and grants (what the tests use) -----------------------------------------------------

    def register_token(
        self,
        token: str,
        username: str,
        groups: Iterable[str] = (),
        *,
        uid: str | None = None,
        audiences: Iterable[str] = (),
    ) -> str:
        """Make ``token`` authenticate as ``username`` in ``groups``; returns the token."""
        with self._lock:
            self._tokens[token] = UserInfo(
                username, tuple(groups), uid or str(uuid.uuid4()), tuple(audiences)
            )
        return token

    def service_account_token(self, namespace: str, name: str) -> str:
        """A token of the ServiceAccount ``namespace/name`` (as a projected token would be)."""
        return self.register_token(
            f"sa-{namespace}-{name}-{secrets.token_hex(8)}",
            f"system:serviceaccount:{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        )

    def user(self, token: str) -> UserInfo | None:
        with self._lock:
            return self._tokens.get(token)

    def grant(
        self,
        subject: str | Mapping[str, str],
        rules: Sequence[Mapping[str, Any]],
        *,
        namespace: str | None = None,
        name: str | None = None,
    ) -> None:
        """Give ``subject`` the RBAC ``rules``: a Role and RoleBinding in ``namespace``, else a ClusterRole and
        ClusterRoleBinding. ``subject``: a user name, or ``{"kind": "Group"|"User"|"ServiceAccount",
        "name": ..., "namespace": ...}``."""
        name = name or f"grant-{uuid.uuid4().hex[:10]}"
        if isinstance(subject, str):
            subject = {"kind": "User", "name": subject}
        subject = dict(subject)
        if subject["kind"] in ("User", "Group"):
            subject.setdefault("apiGroup", "rbac.authorization.k8s.io")
        role_kind = "Role" if namespace else "ClusterRole"
        meta = {"name": name, **({"namespace": namespace} if namespace else {})}
        self.apply(
            [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": role_kind,
                    "metadata": meta,
                    "rules": [dict(r) for r in rules],
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": f"{role_kind}Binding",
                    "metadata": meta,
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
                    "subjects": [subject],
                },
            ]
        )

    def add_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self.put(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": dict(labels or {})},
            }
        )

    def authorized(self, user: UserInfo, attributes: Attributes) -> bool:
        """RBAC as the API server evaluates it, over the stored roles and bindings."""
        if MASTERS in user.groups:
            return True
        with self._lock:
            bindings = [
                b
                for (plural, ns, _), b in self._objects.items()
                if plural == "clusterrolebindings"
                or (plural == "rolebindings" and attributes.namespace and ns == attributes.namespace)
            ]
            for binding in bindings:
                if not any(self._is_subject(s, user) for s in binding.get("subjects") or []):
                    continue
                ref = binding.get("roleRef") or {}
                if ref.get("kind") == "ClusterRole":
                    role = self._objects.get(("clusterroles", "", str(ref.get("name"))))
                else:
                    role = self._objects.get(
                        ("roles", binding["metadata"]["namespace"], str(ref.get("name")))
                    )
                if role and any(_rule_allows(r, attributes) for r in role.get("rules") or []):
                    return True
        return False

    @staticmethod
    def _is_subject(subject: Mapping[str, Any], user: UserInfo) -> bool:
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "User":
            return bool(name == user.username)
        if kind == "Group":
            return name in user.groups
        if kind == "ServiceAccount":
            return user.username == f"system:serviceaccount:{subject.get('namespace')}:{name}"
        return False

    # -- objects (what the tests use: controllers and administrators) -----------------------------------

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``obj`` as a controller would (validated like any other body); returns the stored copy."""
        plural = plural_of(obj)
        namespace = (obj["metadata"].get("namespace") or "") if RESOURCES[plural].namespaced else ""
        stored, problem = self._create(plural, namespace, obj)
        if stored is None:
            raise AssertionError(problem)
        return stored

    def apply(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Create each object, replacing one that exists (rendered manifests, grants)."""
        for obj in objects:
            plural = plural_of(obj)
            namespace = (obj["metadata"].get("namespace") or "") if RESOURCES[plural].namespaced else ""
            if self.get(plural, namespace, obj["metadata"]["name"]) is None:
                self.put(obj)
            else:
                stored, problem = self._replace(plural, namespace, obj["metadata"]["name"], obj, check=False)
                if stored is None:
                    raise AssertionError(problem)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._objects.get((plural, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def list(
        self,
        plural: str,
        namespace: str | None = None,
        selector: str | None = None,
        fields: str | None = None,
    ) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(obj)
                for (kind, ns, _), obj in sorted(self._objects.items())
                if kind == plural
                and (namespace is None or ns == namespace)
                and matches(selector, obj["metadata"].get("labels") or {})
                and fields_match(fields, obj)
            ]

    def delete(self, plural: str, namespace: str, name: str) -> None:
        with self._lock:
            self._delete_locked(plural, namespace, name)

    def set_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Replace an object's status (what a controller or the kubelet reports), validated."""
        with self._lock:
            obj = self._objects[(plural, namespace, name)]
            candidate = {**obj, "status": copy.deepcopy(dict(status))}
            client_schemas.validate(candidate)
            obj["status"] = candidate["status"]
            obj["metadata"]["resourceVersion"] = str(next(self._versions))

    def update(self, plural: str, namespace: str, name: str, **metadata: Any) -> None:
        with self._lock:
            self._objects[(plural, namespace, name)]["metadata"].update(metadata)

    def set_log(
        self, namespace: str, pod: str, container: str, lines: Iterable[tuple[datetime, str] | str]
    ) -> None:
        """What ``container`` of ``pod`` wrote (lines without a time are stamped now)."""
        now = datetime.now(UTC)
        with self._lock:
            self._logs[(namespace, pod, container)] = _Log(
                [(now, line) if isinstance(line, str) else line for line in lines]
            )

    # -- HTTP -------------------------------------------------------------------------------------------

    def _who(self, request: Request) -> UserInfo | Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        user = self.user(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            return _status(401, "Unauthorized", "Unauthorized")
        return user

    def _check(self, request: Request, attributes: Attributes) -> Response | None:
        """401 without a known token, 403 when RBAC does not allow ``attributes``; None when allowed."""
        user = self._who(request)
        if isinstance(user, Response):
            return user
        if self.authorized(user, attributes):
            return None
        message = attributes.describe(user.username)
        with self._lock:
            self.forbidden.append(message)
        return _status(
            403,
            "Forbidden",
            message,
            {"name": attributes.name, "group": attributes.group, "kind": attributes.resource},
        )

    def _resource(self, request: Request) -> str | None:
        plural = request.path_params["plural"]
        group, version = request.path_params.get("group", ""), request.path_params.get("version", "v1")
        expected = RESOURCES.get(plural)
        if expected is None or (expected.group, expected.version) != (group, version):
            return None
        if expected.namespaced != ("namespace" in request.path_params):
            return None
        return str(plural)

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return _status(
                413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY_BYTES}"
            )
        try:
            body = json.loads(raw)
        except ValueError:
            return _status(400, "BadRequest", "the body is not JSON")
        return body if isinstance(body, dict) else _status(400, "BadRequest", "the body is not an object")

    async def _collection(self, request: Request) -> Response:
        plural = self._resource(request)
        namespace = request.path_params.get("namespace", "")
        if plural is None:
            return _status(
                404, "NotFound", f"the server could not find the requested resource ({request.url.path})"
            )
        kind = RESOURCES[plural]
        verb = "list" if request.method == "GET" else "create"
        denied = self._check(request, Attributes(verb, kind.group, plural, namespace))
        if denied is not None:
            return denied
        if request.method == "GET":
            try:
                items = self.list(
                    plural,
                    namespace if kind.namespaced else None,
                    request.query_params.get("labelSelector"),
                    request.query_params.get("fieldSelector"),
                )
            except ValueError as exc:
                return _status(400, "BadRequest", str(exc))
            return JSONResponse(
                {
                    "apiVersion": kind.api_version,
                    "kind": f"{kind.kind}List",
                    "metadata": {"resourceVersion": "1"},
                    "items": items,
                }
            )
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.create_delay:
                await asyncio.sleep(self.create_delay)
            if body.get("kind") != kind.kind or body.get("apiVersion") != kind.api_version:
                return _status(
                    400,
                    "BadRequest",
                    f"the body is a {body.get('apiVersion')} {body.get('kind')}, not a {kind.kind}",
                )
            if kind.namespaced and body.get("metadata", {}).get("namespace", namespace) != namespace:
                return _status(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            with self._lock:
                failures = self.fail_creates.get(plural) or [None]
                failure = failures.pop(0)
            if failure is not None:
                return _status(failure, "InternalError", f"injected: creating {plural} failed")
            with self._lock:
                self.created.append(copy.deepcopy(body))
            stored, problem = self._create(plural, namespace, body)
            if stored is None:
                assert problem is not None
                return _status(*problem)
            with self._lock:
                late = (self.fail_after_create.get(plural) or [None]).pop(0)
            if late is not None:
                return _status(late, "InternalError", f"injected: creating {plural} failed after the write")
            return JSONResponse(stored, status_code=201)
        finally:
            self._in_flight -= 1

    async def _item(self, request: Request) -> Response:
        plural = self._resource(request)
        namespace, name = request.path_params.get("namespace", ""), request.path_params["name"]
        if plural is None:
            return _status(
                404, "NotFound", f"the server could not find the requested resource ({request.url.path})"
            )
        kind = RESOURCES[plural]
        verb = {"GET": "get", "PUT": "update", "DELETE": "delete"}[request.method]
        denied = self._check(request, Attributes(verb, kind.group, plural, namespace, name))
        if denied is not None:
            return denied
        qualified = f"{plural}.{kind.group}" if kind.group else plural
        if request.method == "GET":
            found = self.get(plural, namespace, name)
            if found is None:
                return _status(404, "NotFound", f'{qualified} "{name}" not found')
            return JSONResponse(found)
        if request.method == "PUT":
            body = await self._body(request)
            if isinstance(body, Response):
                return body
            if body.get("metadata", {}).get("name") != name:
                return _status(400, "BadRequest", "the name of the object does not match the name on the URL")
            stored, problem = self._replace(plural, namespace, name, body, check=True)
            if stored is None:
                return _status(*problem)
            return JSONResponse(stored)
        with self._lock:
            found = self._objects.get((plural, namespace, name))
            if found is None:
                return _status(404, "NotFound", f'{qualified} "{name}" not found')
            self._delete_locked(plural, namespace, name)
        return JSONResponse(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": plural, "uid": found["metadata"]["uid"]},
            }
        )

    async def _log(self, request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        denied = self._check(request, Attributes("get", "", "pods", namespace, name, "log"))
        if denied is not None:
            return denied
        pod = self.get("pods", namespace, name)
        if pod is None:
            return _status(404, "NotFound", f'pods "{name}" not found')
        spec = pod.get("spec") or {}
        containers = [
            c["name"] for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        ]
        query = request.query_params
        container = query.get("container")
        if container is None:
            if len(spec.get("containers") or []) != 1:
                return _status(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: {containers}",
                )
            container = spec["containers"][0]["name"]
        if container not in containers:
            return _status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        status = pod.get("status") or {}
        for known in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            # The kubelet serves a restarting container's last run; one that never ran has no log yet.
            waiting = (known.get("state") or {}).get("waiting")
            ran = (known.get("lastState") or {}).get("terminated")
            if known.get("name") == container and waiting is not None and not ran:
                return _status(
                    400,
                    "BadRequest",
                    f'container "{container}" in pod "{name}" is waiting to start: {waiting.get("reason", "")}',
                )
        with self._lock:
            lines = list(self._logs.get((namespace, name, container), _Log()).lines)
        since: datetime | None = None
        if query.get("sinceTime"):
            since = datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
        elif query.get("sinceSeconds"):
            since = datetime.now(UTC) - timedelta(seconds=int(query["sinceSeconds"]))
        if since is not None:
            lines = [(t, line) for t, line in lines if t >= since]
        if query.get("tailLines"):
            tail = int(query["tailLines"])
            lines = lines[-tail:] if tail > 0 else []
        stamp = query.get("timestamps") == "true"
        text = "".join(
            (t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z ") if stamp else "") + line + "\n"
            for t, line in lines
        )
        if query.get("limitBytes"):
            text = text.encode()[: int(query["limitBytes"])].decode("utf-8", "ignore")
        return PlainTextResponse(text)

    async def _token_review(self, request: Request) -> Response:
        denied = self._check(request, Attributes("create", "authentication.k8s.io", "tokenreviews"))
        if denied is not None:
            return denied
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        # The API server takes the kind from the URL when the body leaves it out (the typed client does).
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", **body}
        problems = client_schemas.problems(body)
        if problems:
            return _status(422, "Invalid", "; ".join(problems))
        spec = body.get("spec") or {}
        user = self.user(str(spec.get("token") or ""))
        wanted = list(spec.get("audiences") or [])
        status: dict[str, Any] = {"authenticated": False, "user": {}}
        if user is not None:
            audiences = list(user.audiences) or ["https://kubernetes.default.svc"]
            granted = [a for a in wanted if a in audiences] if wanted else audiences
            if not wanted or granted:
                status = {
                    "authenticated": True,
                    "user": {"username": user.username, "uid": user.uid, "groups": list(user.groups)},
                    "audiences": granted,
                }
            else:
                status["error"] = "token audiences do not match the requested audiences"
        elif spec.get("token"):
            status["error"] = "invalid bearer token"
        return JSONResponse({**body, "status": status}, status_code=201)

    async def _access_review(self, request: Request) -> Response:
        denied = self._check(request, Attributes("create", "authorization.k8s.io", "subjectaccessreviews"))
        if denied is not None:
            return denied
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", **body}
        problems = client_schemas.problems(body)
        if problems:
            return _status(422, "Invalid", "; ".join(problems))
        spec = body.get("spec") or {}
        attributes = spec.get("resourceAttributes")
        if not spec.get("user") and not spec.get("groups"):
            return _status(
                422, "Invalid", "SubjectAccessReview spec: at least one of user or group must be specified"
            )
        if not isinstance(attributes, Mapping):
            status: dict[str, Any] = {
                "allowed": False,
                "reason": "only resourceAttributes are supported here",
            }
        else:
            asked = Attributes(
                verb=str(attributes.get("verb") or ""),
                group=str(attributes.get("group") or ""),
                resource=str(attributes.get("resource") or ""),
                namespace=str(attributes.get("namespace") or ""),
                name=str(attributes.get("name") or ""),
                subresource=str(attributes.get("subresource") or ""),
            )
            subject = UserInfo(str(spec.get("user") or ""), tuple(spec.get("groups") or ()))
            allowed = self.authorized(subject, asked)
            status = {"allowed": allowed}
            status["reason"] = "allowed by RBAC" if allowed else asked.describe(subject.username)
        return JSONResponse({**body, "status": status}, status_code=201)

    # -- storage ----------------------------------------------------------------------------------------

    def _refusal(self, plural: str, namespace: str, body: Mapping[str, Any]) -> tuple[int, str, str] | None:
        problems = client_schemas.problems(body)
        if problems:
            with self._lock:
                self.rejected.extend(problems)
            return 422, "Invalid", "; ".join(problems)
        kind = RESOURCES[plural]
        name = body["metadata"]["name"]
        if kind.kind in ("ConfigMap", "Secret"):
            size = sum(
                len(str(k).encode()) + len(str(v).encode())
                for section in ("data", "binaryData", "stringData")
                for k, v in (body.get(section) or {}).items()
            )
            if kind.kind == "Secret":  # data is base64: the limit counts the decoded bytes
                size = sum(
                    len(str(k).encode()) + len(base64.b64decode(str(v)))
                    for k, v in (body.get("data") or {}).items()
                )
                size += sum(
                    len(str(k).encode()) + len(str(v).encode())
                    for k, v in (body.get("stringData") or {}).items()
                )
            if size > MAX_DATA_BYTES:
                message = f'{kind.kind} "{name}" is invalid: []: Too long: may not be more than {MAX_DATA_BYTES} bytes'
                with self._lock:
                    self.rejected.append(message)
                return 422, "Invalid", message
        if kind.namespaced and ("namespaces", "", namespace) not in self._objects:
            return 404, "NotFound", f'namespaces "{namespace}" not found'
        return None

    def _create(
        self, plural: str, namespace: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, Any]:
        refusal = self._refusal(plural, namespace, body)
        if refusal is not None:
            return None, refusal
        obj = copy.deepcopy(dict(body))
        metadata = obj.setdefault("metadata", {})
        name = metadata["name"]
        with self._lock:
            if (plural, namespace, name) in self._objects:
                return None, (409, "AlreadyExists", f'{plural} "{name}" already exists')
            if RESOURCES[plural].namespaced:
                metadata["namespace"] = namespace
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", rfc3339(datetime.now(UTC)))
            metadata["resourceVersion"] = str(next(self._versions))
            metadata.setdefault("generation", 1)
            if plural in ("jobs", "pods", "workloads"):
                obj.setdefault("status", {})
            if plural == "namespaces":
                obj["status"] = {"phase": "Active"}
            self._objects[(plural, namespace, name)] = obj
            return copy.deepcopy(obj), None

    def _replace(
        self, plural: str, namespace: str, name: str, body: Mapping[str, Any], *, check: bool
    ) -> tuple[dict[str, Any] | None, Any]:
        refusal = self._refusal(plural, namespace, body)
        if refusal is not None:
            return None, refusal
        with self._lock:
            current = self._objects.get((plural, namespace, name))
            if current is None:
                return None, (404, "NotFound", f'{plural} "{name}" not found')
            sent = str((body.get("metadata") or {}).get("resourceVersion") or "")
            if check and sent and sent != current["metadata"]["resourceVersion"]:
                return None, (
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                )
            obj = copy.deepcopy(dict(body))
            metadata = obj.setdefault("metadata", {})
            for kept in ("uid", "creationTimestamp", "namespace"):
                if kept in current["metadata"]:
                    metadata[kept] = current["metadata"][kept]
            metadata["resourceVersion"] = str(next(self._versions))
            if "status" in current:
                obj["status"] = current["status"]
            self._objects[(plural, namespace, name)] = obj
            return copy.deepcopy(obj), None

    def _delete_locked(self, plural: str, namespace: str, name: str) -> None:
        obj = self._objects.pop((plural, namespace, name))
        self.deleted.append((plural, namespace, name))
        uid = obj["metadata"]["uid"]
        if plural == "namespaces":  # the namespace controller: everything in it goes
            for key in [k for k in self._objects if k[1] == name and RESOURCES[k[0]].namespaced]:
                if key in self._objects:
                    self._delete_locked(*key)
        # The garbage collector: whatever this object owned goes too (background propagation).
        for key, other in list(self._objects.items()):
            owners = other["metadata"].get("ownerReferences") or []
            if key in self._objects and any(o.get("uid") == uid for o in owners):
                self._delete_locked(*key)


__all__ = [
    "RESOURCES",
    "Attributes",
    "TestApiServer",
    "UserInfo",
    "ago",
    "matches",
    "plural_of",
    "rfc3339",
]
