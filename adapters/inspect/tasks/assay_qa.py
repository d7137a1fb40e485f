"""``assay_qa``: single-turn short-answer questions (30, ``data/assay_qa.jsonl``), scored by ``includes`` (the
target appears in the answer, case-insensitively). Metrics: ``accuracy`` with ``stderr``."""

from __future__ import annotations

from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import json_dataset
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import includes
from inspect_ai.solver import generate, system_message

DATA = Path(__file__).resolve().parent / "data" / "assay_qa.jsonl"


@task  # type: ignore[untyped-decorator, unused-ignore]
def assay_qa() -> Task:
    return Task(
        dataset=json_dataset(str(DATA)),
        solver=[system_message("Answer the question briefly."), generate()],
        scorer=includes(),
        config=GenerateConfig(max_tokens=24, temperature=0.0),
        version=1,
    )
