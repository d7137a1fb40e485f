"""The MLflow and OCI proxies: credentials added by the sidecar (never by the adapter), bodies streamed both
ways, registry auth (htpasswd Basic on a real docker-registry, and the Bearer token-challenge flow), upload
locations rewritten back to the sidecar."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.registry import DockerRegistry
from tests.sidecar.conftest import FakeModel
from tests.support.net import free_port
from tests.support.servers import ThreadedServer

BLOB = os.urandom(3 * 1024 * 1024 + 17)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
REPOSITORY = "assay/results"


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _pod_config(tmp_path: Path, *, oci_host: str | None = None, **sections: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": "podjob",
        "provider_id": "p",
        "benchmark_id": "b0",
        "benchmark_index": 0,
        "model": {"url": "http://localhost:8080/v1", "name": "m"},
        "parameters": {},
        "callback_url": "http://localhost:8080",
    }
    if oci_host:
        spec["exports"] = {"oci": {"coordinates": {"oci_host": oci_host, "oci_repository": REPOSITORY}}}
    (tmp_path / "job.json").write_text(json.dumps(spec))
    return {
        "job_spec_path": str(tmp_path / "job.json"),
        "eval_hub": {"base_url": "http://127.0.0.1:9"},
        "cache": {"enabled": False},
        "shutdown_timeout": "1s",
        **sections,
    }


# -- MLflow --------------------------------------------------------------------------------------------


def _mlflow_app(artifacts: dict[str, bytes]) -> Starlette:
    def authorised(request: Request) -> bool:
        return (
            request.headers.get("authorization") == "Bearer mlflow-token"
            and request.headers.get("x-mlflow-workspace") == "team-a"
        )

    async def api(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error_code": "UNAUTHENTICATED"}, status_code=401)
        return JSONResponse({"path": request.url.path, "query": request.url.query})

    async def artifact(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error_code": "UNAUTHENTICATED"}, status_code=401)
        name = request.path_params["name"]
        if request.method == "PUT":
            received = bytearray()
            async for chunk in request.stream():
                received += chunk
            artifacts[name] = bytes(received)
            return JSONResponse({})
        return StreamingResponse(_chunks(artifacts[name]), media_type="application/octet-stream")

    return Starlette(
        routes=[
            Route("/api/2.0/mlflow/{rest:path}", api, methods=["GET", "POST"]),
            Route("/api/3.0/mlflow/{rest:path}", api, methods=["GET", "POST"]),
            Route("/api/2.0/mlflow-artifacts/artifacts/{name:path}", artifact, methods=["GET", "PUT"]),
        ]
    )


def test_mlflow_calls_get_the_token_and_workspace(tmp_path: Path, start_sidecar) -> None:
    artifacts: dict[str, bytes] = {}
    mlflow = ThreadedServer(_mlflow_app(artifacts), lifespan="on").start()
    try:
        token = tmp_path / "mlflow-token"
        token.write_text("mlflow-token\n")
        mlflow_section = {"tracking_uri": mlflow.url, "token_path": str(token), "workspace": "team-a"}
        sidecar = start_sidecar(_pod_config(tmp_path, mlflow=mlflow_section))
        with httpx.Client(timeout=60) as client:
            direct = client.get(f"{mlflow.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=e")
            found = client.get(f"{sidecar.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=e%201")
            traces = client.post(f"{sidecar.url}/api/3.0/mlflow/traces", json={})
            artifact = f"{sidecar.url}/api/2.0/mlflow-artifacts/artifacts/0/run1/artifacts/samples.bin"
            put = client.put(artifact, content=_chunks(BLOB), headers={"Content-Length": str(len(BLOB))})
            with client.stream("GET", artifact) as answer:
                fetched = b"".join(answer.iter_bytes())
    finally:
        mlflow.stop()
    assert direct.status_code == 401  # the adapter alone has no credentials
    assert found.status_code == 200
    assert found.json() == {
        "path": "/api/2.0/mlflow/experiments/get-by-name",
        "query": "experiment_name=e%201",
    }
    assert traces.status_code == 200
    assert put.status_code == 200
    assert artifacts["0/run1/artifacts/samples.bin"] == BLOB
    assert fetched == BLOB


# -- OCI: a real docker-registry with htpasswd ---------------------------------------------------------


@pytest.fixture()
def registry(tmp_path: Path) -> Iterator[str]:
    """docker-registry on 127.0.0.1 with htpasswd auth for user ``assay`` / ``s3cret``; yields host:port."""
    server = DockerRegistry(tmp_path / "registry").start()
    try:
        yield server.host
    finally:
        server.stop()


def _docker_config(tmp_path: Path, host: str, entry: dict[str, str]) -> Path:
    path = tmp_path / "docker-config.json"
    path.write_text(json.dumps({"auths": {host: entry}}))
    return path


def test_blob_push_and_pull_through_the_sidecar(
    tmp_path: Path, registry: str, model: FakeModel, start_sidecar
) -> None:
    auth = base64.b64encode(b"assay:s3cret").decode()
    docker_config = _docker_config(tmp_path, registry, {"auth": auth})
    config = _pod_config(
        tmp_path,
        oci_host=registry,
        oci={"plain_http": True, "docker_config_path": str(docker_config)},
        model={"url": model.url},
    )
    sidecar = start_sidecar(config)
    with httpx.Client(timeout=60) as client:
        assert client.get(f"http://{registry}/v2/").status_code == 401  # no credentials, no entry
        assert client.get(f"{sidecar.url}/v2/").status_code == 200
        started = client.post(f"{sidecar.url}/v2/{REPOSITORY}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        assert location.startswith(sidecar.url + f"/v2/{REPOSITORY}/blobs/uploads/")
        separator = "&" if "?" in location else "?"
        pushed = client.put(
            f"{location}{separator}digest={DIGEST}",
            content=_chunks(BLOB),
            headers={"Content-Length": str(len(BLOB)), "Content-Type": "application/octet-stream"},
        )
        assert pushed.status_code == 201, pushed.text
        head = client.head(f"{sidecar.url}/v2/{REPOSITORY}/blobs/{DIGEST}")
        with client.stream("GET", f"{sidecar.url}/v2/{REPOSITORY}/blobs/{DIGEST}") as answer:
            pulled = b"".join(answer.iter_bytes())
        # Another /v2/ path (a KServe v2 inference call) is model traffic, not the registry's.
        inference = client.post(f"{sidecar.url}/v2/models/m/infer", json={"inputs": []})
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(BLOB)
    assert pulled == BLOB
    assert inference.status_code == 200
    assert [c.target for c in model.upstream_calls("/v2/")] == ["/v2/models/m/infer"]


# -- OCI: the Bearer token-challenge flow --------------------------------------------------------------


def _token_registry(port: int, issued: list[str]) -> Starlette:
    """A registry front that wants Bearer tokens from its own token endpoint (Basic assay:s3cret)."""
    realm = f"http://127.0.0.1:{port}/token"

    async def token(request: Request) -> Response:
        expected = "Basic " + base64.b64encode(b"assay:s3cret").decode()
        if request.headers.get("authorization") != expected or request.query_params.get("service") != "test":
            return JSONResponse({"errors": [{"code": "UNAUTHORIZED"}]}, status_code=401)
        scope = request.query_params.get("scope", "")
        issued.append(scope)
        return JSONResponse({"token": f"tok:{scope}", "expires_in": 300})

    async def v2(request: Request) -> Response:
        path = request.url.path
        actions = "pull" if request.method in ("GET", "HEAD") else "pull,push"
        scope = f"repository:{REPOSITORY}:{actions}" if path.startswith(f"/v2/{REPOSITORY}/") else ""
        if request.headers.get("authorization") != f"Bearer tok:{scope}":
            challenge = f'Bearer realm="{realm}",service="test"' + (f',scope="{scope}"' if scope else "")
            return JSONResponse({"errors": [{"code": "UNAUTHORIZED"}]}, 401, {"WWW-Authenticate": challenge})
        body = await request.body()
        return JSONResponse({"method": request.method, "bytes": len(body)}, status_code=202 if body else 200)

    return Starlette(
        routes=[
            Route("/token", token, methods=["GET"]),
            Route("/v2/{rest:path}", v2, methods=["GET", "HEAD", "POST", "PUT"]),
        ]
    )


def test_bearer_token_challenge_flow(tmp_path: Path, start_sidecar) -> None:
    issued: list[str] = []
    port = free_port()
    front = ThreadedServer(_token_registry(port, issued), port=port, lifespan="on").start()
    try:
        host = f"127.0.0.1:{port}"
        docker_config = _docker_config(
            tmp_path, f"http://{host}", {"auth": base64.b64encode(b"assay:s3cret").decode()}
        )
        config = _pod_config(
            tmp_path, oci_host=host, oci={"plain_http": True, "docker_config_path": str(docker_config)}
        )
        sidecar = start_sidecar(config)
        with httpx.Client(timeout=30) as client:
            pulled = client.get(f"{sidecar.url}/v2/{REPOSITORY}/manifests/latest")
            again = client.get(f"{sidecar.url}/v2/{REPOSITORY}/manifests/v2")
            pushed = client.put(f"{sidecar.url}/v2/{REPOSITORY}/manifests/latest", content=b"{}" * 100)
    finally:
        front.stop()
    assert pulled.status_code == 200 and again.status_code == 200
    assert pushed.status_code == 202 and pushed.json() == {"method": "PUT", "bytes": 200}
    # One token per scope, reused while valid.
    assert issued == [f"repository:{REPOSITORY}:pull", f"repository:{REPOSITORY}:pull,push"]
