"""One virtual environment per built-in adapter, built once and reused: ``assay-adapter <name>`` runs
``python -m adapters.<name>`` in it.

Frameworks pin conflicting libraries (torch, transformers, datasets), so none of them lives in the hub's
environment. Each adapter's ``adapters/<name>/requirements.txt`` is hashed together with this Python's version;
the environment lands in ``<cache>/<name>-<hash>`` and a changed requirements file builds a new one beside the
old. A first line ``# torch: cpu`` installs the CPU build of torch with pip first (it comes from the machine's
local wheel store, which uv does not search), so the framework's own ``torch`` requirement is already met.

The cache directory is ``ASSAY_ADAPTER_ENVS`` or ``~/.cache/assay/adapter-envs``. A build takes a file lock, so
concurrent launches of the same adapter build it once; a finished build is marked by a ``.ready`` file written
last, so an interrupted build is redone rather than trusted.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["TORCH_CPU_VERSION", "AdapterEnvError", "adapter_names", "cache_dir", "ensure_env", "main"]

ADAPTERS_DIR = Path(__file__).resolve().parent
TORCH_CPU_VERSION = "2.13.0"
_TORCH_MARKER = "# torch: cpu"
_READY = ".ready"


class AdapterEnvError(RuntimeError):
    """An adapter's environment could not be built (unknown adapter, failed install)."""


def cache_dir() -> Path:
    configured = os.environ.get("ASSAY_ADAPTER_ENVS")
    return Path(configured) if configured else Path.home() / ".cache" / "assay" / "adapter-envs"


def adapter_names() -> list[str]:
    """Every built-in adapter: a package under ``adapters/`` with a ``requirements.txt``."""
    return sorted(p.parent.name for p in ADAPTERS_DIR.glob("*/requirements.txt"))


def _requirements(name: str) -> Path:
    if not name.isidentifier() or not (ADAPTERS_DIR / name / "__main__.py").is_file():
        known = ", ".join(adapter_names()) or "none"
        raise AdapterEnvError(f"unknown adapter {name!r} (built-in adapters: {known})")
    path = ADAPTERS_DIR / name / "requirements.txt"
    if not path.is_file():
        raise AdapterEnvError(f"adapter {name!r} has no requirements.txt at {path}")
    return path


def env_dir(name: str, root: Path | None = None) -> Path:
    requirements = _requirements(name).read_bytes()
    digest = hashlib.sha256()
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}\0".encode())
    digest.update(requirements)
    return (root or cache_dir()) / f"{name}-{digest.hexdigest()[:12]}"


def ensure_env(name: str, root: Path | None = None, *, quiet: bool = True) -> Path:
    """The path of the Python interpreter of ``name``'s environment, built first if it is not there."""
    target = env_dir(name, root)
    python = target / "bin" / "python"
    if (target / _READY).is_file():
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / _READY).is_file():
            return python  # built by whoever held the lock before us
        started = time.monotonic()
        shutil.rmtree(target, ignore_errors=True)
        _build(name, target, quiet=quiet)
        (target / _READY).write_text(f"built in {time.monotonic() - started:.1f}s\n")
    return python


def _build(name: str, target: Path, *, quiet: bool) -> None:
    requirements = _requirements(name)
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    flags = ["--quiet"] if quiet else []
    needs_torch = requirements.read_text().startswith(_TORCH_MARKER)
    _run([uv, "venv", *flags, "--python", sys.executable, *(["--seed"] if needs_torch else []), str(target)])
    python = target / "bin" / "python"
    if needs_torch:
        _run([str(python), "-m", "pip", "install", *flags, "--disable-pip-version-check",
              f"torch=={TORCH_CPU_VERSION}"])  # fmt: skip
    _run([uv, "pip", "install", *flags, "--python", str(python), "-r", str(requirements)])
    # The adapters package is made importable by path, not installed: a .pth entry pointing at a folder that
    # holds only a link to it, so the hub's own site-packages never leak into the adapter's environment.
    source = target / "assay-adapters"
    source.mkdir()
    (source / "adapters").symlink_to(ADAPTERS_DIR, target_is_directory=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "assay-adapters.pth").write_text(f"{source}\n")


def _run(command: Sequence[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout)[-4000:]
        raise AdapterEnvError(f"{' '.join(command)} failed with exit code {result.returncode}:\n{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    """``assay-adapter <name> [args...]``: run a built-in adapter in its environment;
    ``assay-adapter --build <name>...``: only build environments (for CI caches and images)."""
    parser = argparse.ArgumentParser(prog="assay-adapter", description=main.__doc__)
    parser.add_argument("--build", action="store_true", help="build the named environments and exit")
    parser.add_argument("names", nargs="+", metavar="name", help=f"one of: {', '.join(adapter_names())}")
    args, rest = parser.parse_known_args(argv)
    try:
        if args.build:
            for name in args.names:
                started = time.monotonic()
                python = ensure_env(name, quiet=False)
                print(f"{name}: {python.parent.parent} ({time.monotonic() - started:.1f}s)", flush=True)
            return 0
        names: list[str] = args.names
        name, extra = names[0], [*names[1:], *rest]
        python = ensure_env(name)
    except AdapterEnvError as exc:
        print(f"assay-adapter: {exc}", file=sys.stderr)
        return 2
    os.execv(python, [str(python), "-m", f"adapters.{name}", *extra])


if __name__ == "__main__":
    raise SystemExit(main())
