"""The Kubernetes API operations Assay makes, through the official client's ``ApiClient`` by path: the runtime's
(dispatch and sweep), tenant onboarding's and the authenticator's reviews.

The generated API classes (``CoreV1Api``, ``BatchV1Api``, ``CustomObjectsApi``, ...) import their pydantic models
when first used: 0.7 s of a function's first event and 25-40 MiB, for answers Assay reads as raw JSON anyway
(``docs/performance.md``). These classes keep the generated methods' names and arguments, so call sites and the
permission analysis of ``tests/manifests/code_permissions.py`` read the same, and do what the generated methods do
underneath: ``ApiClient.param_serialize`` (the configuration's host, bearer token and TLS) and ``call_api``, with a
non-2xx answer raised as :class:`~kubernetes.client.exceptions.ApiException`. ``_preload_content=False`` returns
the raw HTTP response, as the generated methods do; otherwise its JSON.

Every call waits at most ``timeout`` seconds to connect and for each part of the answer (the generated methods
wait for ever unless given ``_request_timeout``). A call without an answer (timed out, connection failed) is an
``ApiException`` with status 0, as the client reports a TLS failure, whose body is a ``Status`` saying why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import urllib3
from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration
from kubernetes.client.exceptions import ApiException

from assay.settings import Settings

__all__ = [
    "DELETE_IN_BACKGROUND",
    "BatchV1",
    "CoreV1",
    "CustomObjects",
    "Objects",
    "client_configuration",
    "unanswered",
]


def client_configuration(settings: Settings) -> Configuration:
    """The API server ``settings`` name, for every client Assay builds (the runtime, tenant onboarding, the pod-log
    reader, the Kubernetes authenticator): ``k8s_api_url``, else ``k8s_kubeconfig``, else the pod's in-cluster
    service account; at most ``k8s_max_parallel_requests`` connections."""
    configuration = Configuration()
    if settings.k8s_api_url:
        configuration.host = settings.k8s_api_url.rstrip("/")
    else:
        import kubernetes.config  # the package's __init__ has imported it already; named here, where it is used

        if settings.k8s_kubeconfig is not None:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(settings.k8s_kubeconfig), client_configuration=configuration
            )
        else:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = settings.k8s_max_parallel_requests
    return configuration


DELETE_IN_BACKGROUND: Mapping[str, str] = {
    "apiVersion": "v1",
    "kind": "DeleteOptions",
    "propagationPolicy": "Background",
}
"""The delete options the runtime sends: dependents (a Job's pods, ConfigMap, Secret) go in the background."""


class _Resource:
    def __init__(self, client: ApiClient, timeout: float | None = None) -> None:
        self._client = client
        self._timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        preload: bool = True,
        stream: bool = False,
    ) -> Any:
        """``path`` names its ``{params}``, which the client quotes into it (as the generated methods do).

        ``stream``: a 2xx answer comes back unread (urllib3's response: the caller reads it with ``stream()`` and
        gives the connection back with ``release_conn()``); otherwise the body is read before it returns, so
        the connection is back in the pool whatever the caller does."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self._client.param_serialize(
            method=method,
            resource_path=path,
            path_params=dict(params),
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        limit = None if self._timeout is None else (self._timeout, self._timeout)  # (connect, each read)
        try:
            response = self._client.call_api(*request, _request_timeout=limit)
            ok = 200 <= response.status <= 299
            if ok and stream:
                return response.response
            response.read()  # type: ignore[no-untyped-call]  # the client's RESTResponse: the body, kept in .data
        except urllib3.exceptions.HTTPError as exc:
            raise unanswered(exc, self._timeout) from exc
        if not ok:
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        if not preload:
            return response.response
        return json.loads(response.data) if response.data else {}

    def _list(
        self,
        path: str,
        params: Mapping[str, str],
        preload: bool,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Any:
        return self._call(
            "GET", path, params, query=_selectors(label_selector, field_selector), preload=preload
        )

    def _delete(self, path: str, namespace: str, name: str, body: Any, preload: bool) -> Any:
        return self._call("DELETE", path, {"namespace": namespace, "name": name}, body=body, preload=preload)


def unanswered(exc: urllib3.exceptions.HTTPError, timeout: float | None) -> ApiException:
    """A call the API server did not answer (``exc``: urllib3's, also raised while a streamed answer is read) as
    an ``ApiException`` with status 0 and a ``Status`` body: ``Timeout`` or ``Unreachable``, in one clean sentence
    (the exception's own text names hosts and ports)."""
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    # NewConnectionError (refused, no route) is a ConnectTimeoutError to urllib3, for compatibility: not a timeout.
    if isinstance(cause, urllib3.exceptions.TimeoutError) and not isinstance(
        cause, urllib3.exceptions.NewConnectionError
    ):
        reason, message = "Timeout", "no answer" + (f" within {timeout:g} s" if timeout is not None else "")
    else:
        reason, message = "Unreachable", "the connection failed or was cut"
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message}
    return ApiException(status=0, reason=reason, body=json.dumps(status))


def _selectors(label_selector: str | None, field_selector: str | None) -> list[tuple[str, str]]:
    query = []
    if label_selector is not None:
        query.append(("labelSelector", label_selector))
    if field_selector is not None:
        query.append(("fieldSelector", field_selector))
    return query


_NS = "/api/v1/namespaces/{namespace}"
_JOBS = "/apis/batch/v1/namespaces/{namespace}/jobs"
_CUSTOM = "/apis/{group}/{version}/namespaces/{namespace}/{plural}"


class CoreV1(_Resource):
    """``/api/v1``: ConfigMaps, Secrets, Pods (and their logs) and Events in a namespace."""

    def create_namespaced_config_map(
        self, namespace: str, body: Any, *, _preload_content: bool = True
    ) -> Any:
        return self._call(
            "POST", f"{_NS}/configmaps", {"namespace": namespace}, body=body, preload=_preload_content
        )

    def create_namespaced_secret(self, namespace: str, body: Any, *, _preload_content: bool = True) -> Any:
        return self._call(
            "POST", f"{_NS}/secrets", {"namespace": namespace}, body=body, preload=_preload_content
        )

    def read_namespaced_secret(self, name: str, namespace: str, *, _preload_content: bool = True) -> Any:
        params = {"namespace": namespace, "name": name}
        return self._call("GET", f"{_NS}/secrets/{{name}}", params, preload=_preload_content)

    def list_namespaced_config_map(
        self, namespace: str, *, label_selector: str | None = None, _preload_content: bool = True
    ) -> Any:
        return self._list(f"{_NS}/configmaps", {"namespace": namespace}, _preload_content, label_selector)

    def list_namespaced_secret(
        self, namespace: str, *, label_selector: str | None = None, _preload_content: bool = True
    ) -> Any:
        return self._list(f"{_NS}/secrets", {"namespace": namespace}, _preload_content, label_selector)

    def list_namespaced_pod(
        self, namespace: str, *, label_selector: str | None = None, _preload_content: bool = True
    ) -> Any:
        return self._list(f"{_NS}/pods", {"namespace": namespace}, _preload_content, label_selector)

    def read_namespaced_pod_log(
        self,
        name: str,
        namespace: str,
        *,
        container: str,
        timestamps: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
    ) -> Any:
        """A container's log, unread: urllib3's response, to ``stream()`` and then ``release_conn()`` (as the
        generated method returns it with ``_preload_content=False``)."""
        query = [("container", container), ("timestamps", "true" if timestamps else "false")]
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        if since_seconds is not None:
            query.append(("sinceSeconds", str(since_seconds)))
        params = {"namespace": namespace, "name": name}
        return self._call("GET", f"{_NS}/pods/{{name}}/log", params, query=query, stream=True)

    def list_namespaced_event(
        self, namespace: str, *, field_selector: str | None = None, _preload_content: bool = True
    ) -> Any:
        return self._list(f"{_NS}/events", {"namespace": namespace}, _preload_content, None, field_selector)

    def delete_namespaced_config_map(
        self, name: str, namespace: str, *, body: Any = None, _preload_content: bool = True
    ) -> Any:
        return self._delete(f"{_NS}/configmaps/{{name}}", namespace, name, body, _preload_content)

    def delete_namespaced_secret(
        self, name: str, namespace: str, *, body: Any = None, _preload_content: bool = True
    ) -> Any:
        return self._delete(f"{_NS}/secrets/{{name}}", namespace, name, body, _preload_content)


class BatchV1(_Resource):
    """``/apis/batch/v1``: Jobs in a namespace."""

    def create_namespaced_job(self, namespace: str, body: Any, *, _preload_content: bool = True) -> Any:
        return self._call("POST", _JOBS, {"namespace": namespace}, body=body, preload=_preload_content)

    def read_namespaced_job(self, name: str, namespace: str, *, _preload_content: bool = True) -> Any:
        params = {"namespace": namespace, "name": name}
        return self._call("GET", f"{_JOBS}/{{name}}", params, preload=_preload_content)

    def list_namespaced_job(
        self, namespace: str, *, label_selector: str | None = None, _preload_content: bool = True
    ) -> Any:
        return self._list(_JOBS, {"namespace": namespace}, _preload_content, label_selector)

    def delete_namespaced_job(
        self, name: str, namespace: str, *, body: Any = None, _preload_content: bool = True
    ) -> Any:
        return self._delete(f"{_JOBS}/{{name}}", namespace, name, body, _preload_content)


class CustomObjects(_Resource):
    """``/apis/{group}/{version}``: namespaced custom resources (Kueue's, HardwareProfiles)."""

    def get_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        *,
        _preload_content: bool = True,
    ) -> Any:
        params = {"group": group, "version": version, "namespace": namespace, "plural": plural, "name": name}
        return self._call("GET", f"{_CUSTOM}/{{name}}", params, preload=_preload_content)

    def list_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        *,
        label_selector: str | None = None,
        _preload_content: bool = True,
    ) -> Any:
        params = {"group": group, "version": version, "namespace": namespace, "plural": plural}
        return self._list(_CUSTOM, params, _preload_content, label_selector)


class Objects(_Resource):
    """Objects of any kind by their collection's path (``{namespace}`` in it for a namespaced kind): what tenant
    onboarding reads, creates, replaces and deletes. Answers are the API server's JSON."""

    def read(self, collection: str, params: Mapping[str, str], name: str) -> Any:
        return self._call("GET", f"{collection}/{{name}}", {**params, "name": name})

    def create(self, collection: str, params: Mapping[str, str], body: Any) -> Any:
        return self._call("POST", collection, params, body=body)

    def replace(self, collection: str, params: Mapping[str, str], name: str, body: Any) -> Any:
        return self._call("PUT", f"{collection}/{{name}}", {**params, "name": name}, body=body)

    def delete(self, collection: str, params: Mapping[str, str], name: str) -> Any:
        return self._call("DELETE", f"{collection}/{{name}}", {**params, "name": name})

    def list(self, collection: str, params: Mapping[str, str], *, label_selector: str | None = None) -> Any:
        return self._list(collection, params, True, label_selector)
