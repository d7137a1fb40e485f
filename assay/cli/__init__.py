"""The ``assay`` command: run the local hub (``assay up``), the demo (``assay demo``), gate CI on an
evaluation (``assay gate``) and generate the configuration reference."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

from pydantic import AliasChoices

from assay.cli.gate import add_parser as add_gate_parser
from assay.settings import Settings

# pgserver asks platformdirs for a runtime directory; without XDG_RUNTIME_DIR (a root shell, a container)
# platformdirs warns at every start and falls back to /tmp/runtime-$UID, which serves as well.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["port"] = args.port
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.host is not None:
        overrides["host"] = args.host
    if getattr(args, "no_auth", False):
        overrides["auth_mode"] = "none"
    try:
        return Settings(**overrides)
    except ValueError as exc:
        raise SystemExit(f"assay: {exc}") from None


def _demo(args: argparse.Namespace) -> int:
    from assay.cli.demo import run_demo

    return run_demo(_settings(args), exit_when_done=args.exit_when_done)


def _up(args: argparse.Namespace) -> int:
    return serve(_settings(args))


class PortBusy(Exception):
    """The address the hub should listen on is taken."""


def check_port_free(host: str, port: int) -> None:
    """Fail before anything starts (PostgreSQL, sidecars) when ``host:port`` cannot be bound."""
    import socket

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortBusy(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (another hub or program has it? "
                "choose another with --port or ASSAY_PORT)"
            ) from None


def serve(settings: Settings) -> int:
    """Run the hub with ``settings`` in the foreground until SIGINT/SIGTERM (``assay up`` and
    ``assay-evalhub-server``); an embedded PostgreSQL unless ``database_url`` is set."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from assay.store import EmbeddedPostgres  # the standard library only: psycopg is not imported yet

    try:
        check_port_free(settings.host, settings.port)
    except PortBusy as exc:
        print(f"assay: {exc}", file=sys.stderr)
        return 1
    embedded: EmbeddedPostgres | None = None
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the handler
    # that was installed before it; a no-op one lets us stop PostgreSQL and exit 0 afterwards.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    # Off while the hub's imports build the ~90k objects that live as long as the process: collecting as they
    # pile up was about 70 ms of the start. On again once they are frozen, below.
    gc.disable()
    try:  # whatever happens once it started, the embedded PostgreSQL is stopped
        starting: Future[str] | None = None
        if not settings.database_url:
            # PostgreSQL starts first (another process: initdb ~1 s on an empty data dir, or pg_ctl) while this
            # one imports the app (1.5 s): nothing the hub imports comes before it.
            embedded = EmbeddedPostgres(settings.data_dir / "postgres")
            pool = ThreadPoolExecutor(1, thread_name_prefix="assay-postgres-start")
            starting = pool.submit(embedded.start)
            pool.shutdown(wait=False)  # the one task still runs; the thread ends with it
        sidecar = None
        if settings.mode == "local":
            from assay.runtimes.sidecar import local_sidecar

            # Its interpreter (about 0.9 s to answer) starts beside this one's imports too; the hub waits for
            # it before it serves, as it would for one it started itself.
            sidecar = local_sidecar(settings)
            if sidecar is not None:
                sidecar.spawn()
        from assay.telemetry import configure_logging

        configure_logging(settings.log_format, settings.log_level)
        announce_auth(settings)
        import uvicorn

        from assay.exports import build_exporter
        from assay.http import create_app

        if starting is not None:
            settings = settings.model_copy(update={"database_url": starting.result()})
        app = create_app(settings, exporter=build_exporter(settings), sidecar=sidecar)
        # The modules and the app live as long as the process; frozen, they are out of the collector's reach.
        # A full collection then walks only what requests allocate: about 1 ms instead of 60 ms over the 90k
        # objects the import leaves, which every so often landed on one request (the list's p99 spike).
        gc.freeze()
        gc.enable()
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            # Open requests get a third of the stop's budget; the hub's own shutdown is bounded by the rest.
            timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout_seconds / 3)),
        )
        _stopping_server(config, app, settings, embedded).run()
    finally:
        gc.enable()
        if embedded is not None:
            embedded.stop()
    return 0


def _stopping_server(config: Any, app: Any, settings: Settings, embedded: Any) -> Any:
    """uvicorn, telling the hub at the first SIGTERM/SIGINT that shutdown began (nothing more starts from the
    runtime's queue), and with a watchdog: should the graceful stop hang past its deadline, the embedded
    PostgreSQL is stopped and the process exits anyway."""
    import uvicorn

    class StoppingServer(uvicorn.Server):
        def __init__(self, config: Any, app: Any, settings: Settings, embedded: Any) -> None:
            super().__init__(config)
            self._app = app
            self._embedded = embedded
            # The hub's stop, open requests before it, adapters' grace, then PostgreSQL's own stop.
            self._limit = 2 * settings.shutdown_timeout_seconds + settings.stop_grace_seconds + 10.0

        def handle_exit(self, sig: int, frame: Any) -> None:
            if not self.should_exit:
                hub = getattr(self._app.state, "hub", None)
                if hub is not None:
                    hub.begin_shutdown()  # sets a flag: safe in a signal handler
                watchdog = threading.Timer(self._limit, self._hard_stop)
                watchdog.daemon = True
                watchdog.start()
            super().handle_exit(sig, frame)

        def _hard_stop(self) -> None:
            print(
                f"assay: the hub did not stop within {self._limit:g} s; exiting", file=sys.stderr, flush=True
            )
            if self._embedded is not None:
                self._embedded.stop()
            os._exit(1)

    return StoppingServer(config, app, settings, embedded)


def announce_auth(settings: Settings) -> None:
    """Say how to authenticate to this hub (creating the local token at first start), or, loudly, that
    nobody has to."""
    from assay.auth import local_token

    mode = settings.effective_auth_mode
    if mode == "none":
        print(
            f"\n  *** AUTHENTICATION IS OFF (--no-auth): anyone who can reach {settings.host}:{settings.port} "
            "is an administrator of every tenant ***\n",
            file=sys.stderr,
        )
    elif mode == "token" and settings.mode == "local":
        local_token(settings)
        print(
            f"API token in {settings.local_token_path} (mode 0600). Use it with:\n"
            f'  curl -H "Authorization: Bearer $(assay token)" http://{settings.host}:{settings.port}/api/v1/...\n'
            f"  export EVALHUB_TOKEN=$(assay token)   # the evalhub CLI and eval-hub-sdk",
            file=sys.stderr,
        )


def _token(args: argparse.Namespace) -> int:
    """``assay token``: print the local hub's token (created if missing); ``--hash`` prints the SHA-256 of a
    token read from standard input, for ``ASSAY_AUTH_TOKEN_FILE``."""
    import hashlib

    from assay.auth import local_token

    if args.hash:
        token = sys.stdin.readline().strip()
        if not token:
            print("assay token --hash: give the token on standard input", file=sys.stderr)
            return 2
        print(hashlib.sha256(token.encode("utf-8")).hexdigest())
        return 0
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir is not None else {}))
    print(local_token(settings))
    return 0


def configuration_reference() -> str:
    """The Markdown table of every setting, generated from :class:`Settings`."""
    lines = [
        "# Configuration",
        "",
        "Every setting of Assay, generated from `assay/settings.py` by `assay config-doc` (a test keeps",
        "this file in sync). Each is an environment variable; `assay up --port/--data-dir/--host`",
        "override theirs. Lists are comma-separated.",
        "",
        "| Variable | Default | Meaning |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = (
            [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else [f"ASSAY_{name.upper()}"]
        )
        if field.default_factory is not None:
            default = "(see meaning)"
        elif field.default in (None, ()):
            default = "(unset)"
        else:
            default = f"`{field.default}`"
        env = "` / `".join(names)
        lines.append(f"| `{env}` | {default} | {field.description} |")
    lines += [
        "",
        "## Read by other programs",
        "",
        "| Variable | Read by | Meaning |",
        "| --- | --- | --- |",
        "| `ASSAY_ADAPTER_ENVS` | `assay-adapter`, the local runtime | Where the built-in adapters' environments "
        "are built and cached (default `~/.cache/assay/adapter-envs`; docs/adapters.md). |",
        "| `EVAL_HUB_CONFIG_DIR`, `PORT` | `assay-evalhub-server` | EvalHub's configuration directory when "
        "`-configdir` is not given, and the port over `config.yaml`'s `service.port` (docs/compatibility.md). |",
        "| `EVALHUB_TOKEN` | the `evalhub` CLI, `assay gate` | The bearer token a client sends. |",
        "| `OCI_INSECURE` | adapters (eval-hub-sdk, `adapters/sdk`) | An adapter's own OCI push in local mode goes "
        "over plain HTTP. |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="assay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the local hub (embedded PostgreSQL unless DATABASE_URL is set)")
    demo = sub.add_parser(
        "demo", help="run the local hub and a real evaluation of a bundled local model, then keep the hub up"
    )
    demo.add_argument(
        "--exit-when-done", action="store_true", help="stop once the evaluation finished (for scripts)"
    )
    up.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without authentication (loopback addresses only; every caller is an administrator)",
    )
    token = sub.add_parser("token", help="print the local hub's API token (created at first start)")
    token.add_argument(
        "--data-dir", type=Path, help="the hub's data directory (default ~/.local/share/assay)"
    )
    token.add_argument("--hash", action="store_true", help="print the SHA-256 of a token read from stdin")
    token.set_defaults(run=_token)
    for command in (up, demo):
        command.add_argument("--port", type=int, help="port to listen on (default 8080, or ASSAY_PORT)")
        command.add_argument("--host", help="address to bind (default 127.0.0.1, or ASSAY_HOST)")
        command.add_argument("--data-dir", type=Path, help="where data lives (default ~/.local/share/assay)")
    up.set_defaults(run=_up)
    demo.set_defaults(run=_demo)
    add_gate_parser(sub)
    doc = sub.add_parser("config-doc", help="print the configuration reference (docs/configuration.md)")
    doc.set_defaults(run=lambda _: print(configuration_reference(), end="") or 0)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
