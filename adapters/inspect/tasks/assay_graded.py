"""``assay_graded``: open questions (12, ``data/assay_graded.jsonl``) whose answers are graded by a model with
``model_graded_qa``: by default the model under evaluation itself (the same endpoint, through the sidecar), or the
``grader`` model role when one is given. Metrics: ``accuracy`` with ``stderr``."""

from __future__ import annotations

from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import json_dataset
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import model_graded_qa
from inspect_ai.solver import generate

DATA = Path(__file__).resolve().parent / "data" / "assay_graded.jsonl"


@task  # type: ignore[untyped-decorator, unused-ignore]
def assay_graded() -> Task:
    return Task(
        dataset=json_dataset(str(DATA)),
        solver=generate(),
        scorer=model_graded_qa(),
        # Bounds the answers and the grader's verdicts alike: a small CPU-served model stays fast.
        config=GenerateConfig(max_tokens=48, temperature=0.0),
        version=1,
    )
