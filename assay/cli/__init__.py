"""The ``assay`` command: run the local hub (``assay up``), the demo (``assay demo``), gate CI on an
evaluation (``assay gate``) and generate the configuration reference."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from assay.cli.gate import add_parser as add_gate_parser
from assay.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["port"] = args.port
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.host is not None:
        overrides["host"] = args.host
    return Settings(**overrides)


def _demo(args: argparse.Namespace) -> int:
    from assay.cli.demo import run_demo

    return run_demo(_settings(args), exit_when_done=args.exit_when_done)


def _up(args: argparse.Namespace) -> int:
    import uvicorn

    from assay.exports import build_exporter
    from assay.http import create_app
    from assay.store import EmbeddedPostgres
    from assay.telemetry import configure_logging

    settings = _settings(args)
    configure_logging(settings.log_format, settings.log_level)
    embedded: EmbeddedPostgres | None = None
    if not settings.database_url:
        embedded = EmbeddedPostgres(settings.data_dir / "postgres")
        settings = settings.model_copy(update={"database_url": embedded.start()})
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the handler
    # that was installed before it; a no-op one lets us stop PostgreSQL and exit 0 afterwards.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    try:
        uvicorn.run(
            create_app(settings, exporter=build_exporter(settings)),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if embedded is not None:
            embedded.stop()
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
        env = "DATABASE_URL" if name == "database_url" else f"ASSAY_{name.upper()}"
        if field.default_factory is not None:
            default = "(see meaning)"
        elif field.default in (None, ()):
            default = "(unset)"
        else:
            default = f"`{field.default}`"
        lines.append(f"| `{env}` | {default} | {field.description} |")
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
