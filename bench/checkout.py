"""The checkout a bench measures, compiled to bytecode first, as a user's installation is.

The benches run this checkout's code (their processes' working directory and ``PYTHONPATH`` name it). Python
writes a module's ``.pyc`` when it first imports it, and ``make`` compiles the checkout, but where
``PYTHONDONTWRITEBYTECODE`` is set (this project's machines and CI) a module edited since the last compile is
compiled from source again by every process that imports it: 0.05-0.1 s more on each start a bench times
(``docs/performance.md``). Compiling first makes a figure independent of how many files changed since then.
"""

from __future__ import annotations

import compileall
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("assay", "functions", "adapters")


def compile_checkout(root: Path = REPO) -> None:
    """Compile the packages of the checkout at ``root`` where their ``.pyc`` is missing or older than the source
    (what ``make`` does); up-to-date modules are only looked at."""
    for package in PACKAGES:
        if not compileall.compile_dir(root / package, quiet=1):
            raise SystemExit(f"bench: {root / package} does not compile; see the errors above")
