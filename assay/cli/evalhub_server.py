"""``assay-evalhub-server``: the hub behind EvalHub's server command line.

eval-hub-sdk's ``evalhub server run|start`` and its end-to-end fixtures start
``eval-hub-server -local -configdir DIR`` (the binary overridable with ``EVALHUB_SERVER_BIN``), then
wait for ``GET /api/v1/health`` on the port of ``DIR/config.yaml``. This entry point accepts that
command line, so ``EVALHUB_SERVER_BIN=$(which assay-evalhub-server) evalhub server start`` runs Assay
unchanged::

    assay-evalhub-server [-local|--local] [-configdir DIR|--configdir=DIR] [-port N]

- ``-configdir``: EvalHub's configuration directory. ``config.yaml``'s ``service.port`` (default
  8080, ``PORT`` overrides, as EvalHub's ``env_mappings``) is the port; ``providers/*.yaml`` and
  ``collections/*.yaml`` there, when present, are the system catalogue (else Assay's own). Without the
  flag: ``EVAL_HUB_CONFIG_DIR``, then ``./config`` when it exists (EvalHub's search path).
- ``-local``: EvalHub's local mode. The hub binds loopback only and asks for **no token** (Assay's
  ``auth_mode=none``, which refuses any other address); the default tenant may run provider commands on
  this machine. A loud warning says so at every start.

Data (the embedded PostgreSQL) lives in ``ASSAY_DATA_DIR`` as for ``assay up``, so only the first start
pays for ``initdb``. Everything else is read from ``ASSAY_*`` variables (docs/configuration.md).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assay.settings import Settings

log = logging.getLogger("assay.evalhub_server")

_LOOPBACK = "127.0.0.1"
_DEFAULT_PORT = 8080

LOCAL_WARNING = (
    "\n"
    "  *** EvalHub local mode (-local): NO AUTHENTICATION ***\n"
    "  Every request to http://{host}:{port} is served as an administrator of every tenant, and the\n"
    "  default tenant's providers may run commands on this machine. The hub binds {host} only.\n"
    "  Run `assay up` (token authentication) for anything but a single-user workstation.\n"
)


class UsageError(Exception):
    """The command line could not be understood."""


@dataclass(frozen=True, slots=True)
class ServerArgs:
    local: bool = False
    config_dir: Path | None = None
    port: int | None = None


def parse_args(argv: list[str]) -> ServerArgs:
    """Go's ``flag`` syntax, as eval-hub-server takes it: ``-name``, ``--name``, ``-name=value`` and
    ``-name value``; booleans take no value."""
    local = False
    config_dir: Path | None = None
    port: int | None = None
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("-") or arg in ("-", "--"):
            raise UsageError(f"unexpected argument {arg!r}")
        name, eq, value = arg.lstrip("-").partition("=")
        if name == "local":
            if eq and value.lower() not in ("true", "1", "false", "0"):
                raise UsageError(f"-local takes no value other than true or false, not {value!r}")
            local = not eq or value.lower() in ("true", "1")
        elif name in ("configdir", "port"):
            if not eq:
                if not rest:
                    raise UsageError(f"-{name} needs a value")
                value = rest.pop(0)
            if name == "configdir":
                config_dir = Path(value)
            else:
                try:
                    port = int(value)
                except ValueError:
                    raise UsageError(f"-port needs a number, not {value!r}") from None
        elif name in ("h", "help"):
            raise UsageError("help")
        else:
            raise UsageError(f"flag provided but not defined: -{name}")
    return ServerArgs(local=local, config_dir=config_dir, port=port)


def _config_yaml(config_dir: Path | None) -> dict[str, Any]:
    if config_dir is None:
        return {}
    path = config_dir / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def resolve(args: ServerArgs, environ: dict[str, str]) -> dict[str, Any]:
    """The :class:`Settings` overrides this command line and EvalHub's files ask for."""
    config_dir = args.config_dir
    if config_dir is None and environ.get("EVAL_HUB_CONFIG_DIR"):
        config_dir = Path(environ["EVAL_HUB_CONFIG_DIR"])
    if config_dir is None and Path("config").is_dir():
        config_dir = Path("config")
    if config_dir is not None and not config_dir.is_dir():
        raise UsageError(f"-configdir {config_dir}: no such directory")
    service = _config_yaml(config_dir).get("service")
    port: Any = (service or {}).get("port", _DEFAULT_PORT) if isinstance(service, dict) else _DEFAULT_PORT
    if environ.get("PORT"):
        port = environ["PORT"]
    if args.port is not None:
        port = args.port
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise UsageError(f"service.port must be a number, not {port!r}") from None
    overrides: dict[str, Any] = {"port": port}
    if config_dir is not None and any((config_dir / d).is_dir() for d in ("providers", "collections")):
        overrides["config_dir"] = config_dir.resolve()
    if args.local:
        overrides.update(host=_LOOPBACK, auth_mode="none", mode="local")
    return overrides


def main(argv: list[str] | None = None) -> int:
    import os

    from assay.cli import serve

    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        overrides = resolve(args, dict(os.environ))  # noqa: TID251 - EvalHub's own variables, not Assay's
    except UsageError as exc:
        if str(exc) != "help":
            print(f"assay-evalhub-server: {exc}", file=sys.stderr)
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 0 if str(exc) == "help" else 2
    settings = Settings(**overrides)
    if args.local:
        trusted = (*settings.local_command_tenants, settings.default_tenant)
        settings = settings.model_copy(update={"local_command_tenants": tuple(dict.fromkeys(trusted))})
        print(LOCAL_WARNING.format(host=settings.host, port=settings.port), file=sys.stderr, flush=True)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
