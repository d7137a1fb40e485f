"""The submit function's import path stays light (cold start matters under scale-to-zero)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_submit_imports_no_heavy_integrations() -> None:
    probe = (
        "import sys, json, functions.submit.main; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'mlflow', 'kubernetes', 'oras', 'torch', 'jsonpatch', 'yaml', 'watchfiles', 'pgserver'})))"
    )
    env = {**os.environ, "DATABASE_URL": "postgresql://unused/unused"}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
