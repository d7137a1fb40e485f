"""A real OCI registry for the tests: Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1, plain HTTP,
with htpasswd auth for ``assay`` / ``s3cret``. It can be stopped and started again on the same port and
storage (the registry-down tests)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.support.net import free_port
from tests.support.waiting import wait_for_server

USER, PASSWORD = "assay", "s3cret"


class DockerRegistry:
    """``host`` is ``127.0.0.1:<port>``; :meth:`docker_config` writes a docker config with its credentials."""

    def __init__(self, root: Path) -> None:
        binary, htpasswd = shutil.which("docker-registry"), shutil.which("htpasswd")
        if binary is None or htpasswd is None:
            why = "needs the Debian packages docker-registry and apache2-utils (.ci/run installs them)"
            if os.environ.get("CI"):
                pytest.fail(why)  # CI installs them: a missing registry there is a broken CI, not a skip
            pytest.skip(why)
        self._binary = binary
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        users = subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True)
        (root / "htpasswd").write_text(users.stdout)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.config = root / "config.yml"
        self.config.write_text(
            "version: 0.1\n"
            "log: {level: error}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '{self.host}'}}\n"
            f"auth: {{htpasswd: {{realm: assay-test, path: {root / 'htpasswd'}}}}}\n"
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 20.0) -> DockerRegistry:
        self._log = (self.root / "registry.log").open("ab")
        self._process = subprocess.Popen(
            [self._binary, "serve", str(self.config)], stdout=self._log, stderr=subprocess.STDOUT
        )
        with httpx.Client(timeout=2) as client:
            wait_for_server(
                self._process,
                lambda: client.get(f"http://{self.host}/v2/").status_code == 401,
                f"docker-registry (its log: {self.root / 'registry.log'})",
                timeout=timeout,
                interval=0.05,
            )
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def docker_config(self, path: Path) -> Path:
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        path.write_text(json.dumps({"auths": {self.host: {"auth": auth}}}))
        return path


__all__ = ["PASSWORD", "USER", "DockerRegistry"]


@pytest.fixture()
def registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    server = DockerRegistry(tmp_path / "registry").start()
    try:
        yield server
    finally:
        server.stop()
