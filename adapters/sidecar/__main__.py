"""``python -m adapters.sidecar --config PATH [--host H] [--port P] [--port-file F]``: serve the sidecar with
uvicorn, one worker. Port 0 picks a free port; the bound port is printed and written to ``--port-file``.
SIGTERM stops it gracefully: buffered events are flushed (and in pod mode missing results are reported)."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from adapters.sidecar._app import create_app
from adapters.sidecar._config import ConfigError, SidecarConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.sidecar", description=__doc__)
    parser.add_argument("--config", "-sidecarconfig", default="/meta/sidecar_config.json", type=Path)
    parser.add_argument("--host", default=None, help="default: all interfaces, as EvalHub's sidecar")
    parser.add_argument("--port", default=None, type=int, help="default: the port of base_url (8080)")
    parser.add_argument("--port-file", default=None, type=Path, help="write the bound port here")
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="stop gracefully when stdin closes: a parent that holds the pipe (the local hub) takes the sidecar "
        "with it even when it is killed",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per proxied call is noise
    try:
        config = SidecarConfig.from_file(args.config)
    except ConfigError as exc:
        print(f"sidecar: {exc}", file=sys.stderr)
        return 2
    host = args.host if args.host is not None else "0.0.0.0"
    port = args.port if args.port is not None else (urlsplit(config.base_url).port or 8080)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        print(f"sidecar: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 2
    bound = sock.getsockname()[1]
    print(f"sidecar listening on http://{host}:{bound}", flush=True)
    if args.port_file is not None:
        scratch = args.port_file.with_name(f".{args.port_file.name}.tmp")
        scratch.write_text(f"{bound}\n", encoding="utf-8")
        scratch.replace(args.port_file)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            workers=1,
            log_level=args.log_level,
            access_log=False,
            lifespan="on",
            # In-flight requests get half the shutdown budget; the event flush gets the rest.
            timeout_graceful_shutdown=max(1, int(config.shutdown_timeout / 2)),
        )
    )
    # uvicorn re-raises the stop signal after its graceful shutdown, under the handler that was there before
    # it: a no-op one makes a SIGTERM stop (the normal way a sidecar ends) exit 0 instead of dying of it.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    if args.exit_with_stdin:
        threading.Thread(target=_stop_at_eof, args=(server,), name="stdin-watch", daemon=True).start()
    server.run(sockets=[sock])
    return 0


def _stop_at_eof(server: uvicorn.Server) -> None:
    while sys.stdin.buffer.read(4096):
        pass
    logging.getLogger("adapters.sidecar").info("stdin closed: the parent is gone; stopping")
    server.should_exit = True


if __name__ == "__main__":
    sys.exit(main())
