"""Load a bundled task's splits from JSON Lines files next to its YAML, so the tasks run offline and from any
working directory (a ``data_files`` path in a task YAML would be resolved against the current directory).

lm-eval calls this as ``custom_dataset`` with the task's ``dataset_kwargs`` and metadata as keyword arguments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["load"]

_HERE = Path(__file__).resolve().parent


def load(data_dir: str, **_metadata: Any) -> Any:
    """``{split: Dataset}`` for every ``<split>.jsonl`` in ``data_dir`` (relative to this directory)."""
    import datasets  # type: ignore[import-not-found, unused-ignore]

    folder = _HERE / data_dir
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"data_dir {folder} has no <split>.jsonl files")
    splits = {}
    for path in files:
        with path.open(encoding="utf-8") as lines:
            rows = [json.loads(line) for line in lines if line.strip()]
        splits[path.stem] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(splits)
