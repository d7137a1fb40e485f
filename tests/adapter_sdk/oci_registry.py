"""A minimal OCI distribution registry on loopback (blob upload, HEAD, manifest PUT/GET), enough for oras
pushes; it records the Host of every request so a test can see where a push went."""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from tests.support.servers import QuietHandler, serving_http

_BLOB = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
_UPLOADS = re.compile(r"^/v2/(?P<repo>.+)/blobs/uploads/(?P<session>[^/]*)$")
_MANIFEST = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)$")


@dataclass
class Registry:
    url: str = ""
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, tag or digest) -> body
    hosts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(registry: Registry) -> type[QuietHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _route(self) -> None:
            with registry.lock:
                registry.hosts.append(self.headers.get("Host", ""))
            path = urlsplit(self.path).path
            if (m := _BLOB.match(path)) and self.command in ("HEAD", "GET"):
                blob = registry.blobs.get(m["digest"])
                self._answer(200 if blob is not None else 404, blob or b"")
            elif (m := _UPLOADS.match(path)) and self.command == "POST":
                self._body()
                self._answer(202, headers={"Location": f"/v2/{m['repo']}/blobs/uploads/{uuid.uuid4().hex}"})
            elif (m := _UPLOADS.match(path)) and self.command == "PUT":
                data = self._body()
                digest = parse_qs(urlsplit(self.path).query)["digest"][0]
                if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
                    self._answer(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
                    return
                registry.blobs[digest] = data
                self._answer(201, headers={"Docker-Content-Digest": digest})
            elif (m := _MANIFEST.match(path)) and self.command == "PUT":
                data = self._body()
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                registry.manifests[(m["repo"], m["ref"])] = data
                registry.manifests[(m["repo"], digest)] = data
                self._answer(201, headers={"Docker-Content-Digest": digest})
            else:
                self._body()
                self._answer(404)

        do_GET = do_HEAD = do_POST = do_PUT = _route

    return Handler


@contextmanager
def running_registry() -> Iterator[Registry]:
    registry = Registry()
    with serving_http(_handler(registry)) as url:
        registry.url = url
        yield registry
