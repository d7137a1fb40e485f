"""A Kubernetes API server for the tests: the few endpoints the runtime uses, strict like the real one.

A real HTTP server on loopback (Starlette under uvicorn, in a thread) that the real ``kubernetes`` client talks
to. It stores objects in memory and implements create / get / list (label selectors: ``=``, ``!=``, ``in``,
``notin``, exists) / delete for ConfigMaps, Pods, Secrets, batch/v1 Jobs and Kueue v1beta2 Workloads and
LocalQueues, with the API server's answers: 201, 404 ``NotFound`` and 409 ``AlreadyExists`` as ``Status``
objects, uid / creationTimestamp / resourceVersion filled in, and a garbage collector that deletes what a
deleted object owned. Every body created through HTTP or by a test is validated against the official schemas
(``tests/k8s_schemas.py``, closed to unknown fields); an invalid one gets 422 ``Invalid`` like a strict server.

Tests play the controllers with :meth:`TestApiServer.put` and :meth:`TestApiServer.set_status`: Kueue creating
and admitting a Workload, the Job controller starting a pod, the kubelet reporting OOMKilled. No watch
endpoint: the runtime never opens a watch (the watcher is driven by ApiServerSource events and the sweep).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.k8s_schemas import K8sSchemas

# plural -> (group, version, kind)
RESOURCES: dict[str, tuple[str, str, str]] = {
    "configmaps": ("", "v1", "ConfigMap"),
    "pods": ("", "v1", "Pod"),
    "secrets": ("", "v1", "Secret"),
    "jobs": ("batch", "v1", "Job"),
    "workloads": ("kueue.x-k8s.io", "v1beta2", "Workload"),
    "localqueues": ("kueue.x-k8s.io", "v1beta2", "LocalQueue"),
}


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def ago(seconds: float) -> str:
    """A timestamp ``seconds`` in the past, as the API server writes one."""
    return rfc3339(datetime.now(UTC) - timedelta(seconds=seconds))


def _status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status_code=code,
    )


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


class TestApiServer:
    """The store and the ASGI app; thread-safe, so tests read and change it while the hub calls it."""

    __test__ = False

    def __init__(self, create_delay: float = 0.0) -> None:
        self.schemas = K8sSchemas.load()
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._versions = itertools.count(1)
        self.created: list[dict[str, Any]] = []  # every body created through HTTP, as received
        self.deleted: list[tuple[str, str, str]] = []  # (plural, namespace, name), GC included
        self.rejected: list[str] = []  # schema problems of refused bodies
        self.create_delay = create_delay
        self.fail_creates: dict[str, int] = {}  # plural -> the status its next create is answered (a 5xx)
        self._in_flight = 0
        self.max_in_flight = 0
        self.app = Starlette(
            routes=[
                Route("/api/v1/namespaces/{namespace}/{plural}", self._collection, methods=["GET", "POST"]),
                Route(
                    "/api/v1/namespaces/{namespace}/{plural}/{name}", self._item, methods=["GET", "DELETE"]
                ),
                Route(
                    "/apis/{group}/{version}/namespaces/{namespace}/{plural}",
                    self._collection,
                    methods=["GET", "POST"],
                ),
                Route(
                    "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
                    self._item,
                    methods=["GET", "DELETE"],
                ),
            ]
        )

    # -- what the tests use -----------------------------------------------------------------------------

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``obj`` as a controller would (validated like any other body); returns the stored copy."""
        plural = next(p for p, (_, _, kind) in RESOURCES.items() if kind == obj["kind"])
        stored, problem = self._create(plural, obj["metadata"]["namespace"], obj)
        if stored is None:
            raise AssertionError(problem)
        return stored

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._objects.get((plural, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def list(
        self, plural: str, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(obj)
                for (kind, ns, _), obj in sorted(self._objects.items())
                if kind == plural
                and (namespace is None or ns == namespace)
                and matches(selector, obj["metadata"].get("labels") or {})
            ]

    def set_status(self, plural: str, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Replace an object's status (what a controller or the kubelet reports), validated."""
        with self._lock:
            obj = self._objects[(plural, namespace, name)]
            candidate = {**obj, "status": copy.deepcopy(dict(status))}
            self.schemas.validate(candidate)
            obj["status"] = candidate["status"]
            obj["metadata"]["resourceVersion"] = str(next(self._versions))

    def update(self, plural: str, namespace: str, name: str, **metadata: Any) -> None:
        with self._lock:
            self._objects[(plural, namespace, name)]["metadata"].update(metadata)

    # -- HTTP -------------------------------------------------------------------------------------------

    def _resource(self, request: Request) -> str | None:
        plural = request.path_params["plural"]
        group, version = request.path_params.get("group", ""), request.path_params.get("version", "v1")
        expected = RESOURCES.get(plural)
        if expected is None or expected[:2] != (group, version):
            return None
        return str(plural)

    async def _collection(self, request: Request) -> Response:
        plural = self._resource(request)
        namespace = request.path_params["namespace"]
        if plural is None:
            return _status(
                404, "NotFound", f"the server could not find the requested resource ({request.url.path})"
            )
        if request.method == "GET":
            try:
                items = self.list(plural, namespace, request.query_params.get("labelSelector"))
            except ValueError as exc:
                return _status(400, "BadRequest", str(exc))
            group, version, kind = RESOURCES[plural]
            api_version = f"{group}/{version}" if group else version
            return JSONResponse(
                {
                    "apiVersion": api_version,
                    "kind": f"{kind}List",
                    "metadata": {"resourceVersion": "1"},
                    "items": items,
                }
            )
        body = await request.json()
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.create_delay:
                await asyncio.sleep(self.create_delay)
            group, version, kind = RESOURCES[plural]
            api_version = f"{group}/{version}" if group else version
            if body.get("kind") != kind or body.get("apiVersion") != api_version:
                return _status(
                    400,
                    "BadRequest",
                    f"the body is a {body.get('apiVersion')} {body.get('kind')}, not a {kind}",
                )
            if body.get("metadata", {}).get("namespace", namespace) != namespace:
                return _status(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            with self._lock:
                failure = self.fail_creates.pop(plural, None)
            if failure is not None:
                return _status(failure, "InternalError", f"injected: creating {plural} failed")
            with self._lock:
                self.created.append(copy.deepcopy(body))
            stored, problem = self._create(plural, namespace, body)
            if stored is None:
                assert problem is not None
                code, reason, message = problem
                return _status(code, reason, message)
            return JSONResponse(stored, status_code=201)
        finally:
            self._in_flight -= 1

    async def _item(self, request: Request) -> Response:
        plural = self._resource(request)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        if plural is None:
            return _status(
                404, "NotFound", f"the server could not find the requested resource ({request.url.path})"
            )
        kind = RESOURCES[plural][2]
        if request.method == "GET":
            found = self.get(plural, namespace, name)
            if found is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            return JSONResponse(found)
        with self._lock:
            found = self._objects.get((plural, namespace, name))
            if found is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            self._delete_locked(plural, namespace, name)
        return JSONResponse(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": kind, "uid": found["metadata"]["uid"]},
            }
        )

    # -- storage ----------------------------------------------------------------------------------------

    def _create(
        self, plural: str, namespace: str, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, Any]:
        problems = self.schemas.problems(body)
        if problems:
            self.rejected.extend(problems)
            return None, (422, "Invalid", "; ".join(problems))
        obj = copy.deepcopy(dict(body))
        metadata = obj.setdefault("metadata", {})
        name = metadata["name"]
        with self._lock:
            if (plural, namespace, name) in self._objects:
                return None, (409, "AlreadyExists", f'{plural} "{name}" already exists')
            metadata["namespace"] = namespace
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", rfc3339(datetime.now(UTC)))
            metadata["resourceVersion"] = str(next(self._versions))
            metadata.setdefault("generation", 1)
            if plural in ("jobs", "pods", "workloads"):
                obj.setdefault("status", {})
            self._objects[(plural, namespace, name)] = obj
            return copy.deepcopy(obj), None

    def _delete_locked(self, plural: str, namespace: str, name: str) -> None:
        obj = self._objects.pop((plural, namespace, name))
        self.deleted.append((plural, namespace, name))
        uid = obj["metadata"]["uid"]
        # The garbage collector: whatever this object owned goes too (background propagation).
        for key, other in list(self._objects.items()):
            owners = other["metadata"].get("ownerReferences") or []
            if key in self._objects and any(o.get("uid") == uid for o in owners):
                self._delete_locked(*key)


__all__ = ["RESOURCES", "TestApiServer", "ago", "matches", "rfc3339"]
