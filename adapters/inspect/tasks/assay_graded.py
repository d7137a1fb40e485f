"""``assay_graded``: open questions (12, ``data/assay_graded.jsonl``) whose answers a model grades against a
reference answer: the ``grader`` model role when one is bound, else the model under evaluation itself (the same
endpoint, through the sidecar). Metrics: ``accuracy`` with ``stderr``.

The grader is asked a yes/no question and its verdict is the first ``yes``/``no``/``correct``/``incorrect`` it
writes. Inspect's ``model_graded_qa`` wants a reasoned ``GRADE: C`` line, which a small base model never writes (every
sample would end unscored); here a grader that gives no verdict counts as ``incorrect``, and the verdict (or its
absence) is kept in each score's metadata and explanation, so the log shows how every answer was graded.
"""

from __future__ import annotations

import re
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import json_dataset
from inspect_ai.model import GenerateConfig, get_model
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Scorer, Target, accuracy, scorer, stderr
from inspect_ai.solver import TaskState, generate

DATA = Path(__file__).resolve().parent / "data" / "assay_graded.jsonl"

TEMPLATE = """Grade an answer to a question against the reference answer.

Question: {question}
Reference answer: {reference}
Submitted answer: {answer}

Does the submitted answer say the same as the reference answer? Reply with one word: yes or no."""

_VERDICT = re.compile(r"\b(incorrect|correct|yes|no)\b", re.IGNORECASE)


@scorer(metrics=[accuracy(), stderr()])  # type: ignore[untyped-decorator, unused-ignore]
def graded_by_model(max_tokens: int = 8) -> Scorer:
    """Model-graded: the ``grader`` role's model, or the model under evaluation, says whether the answer matches."""

    async def score(state: TaskState, target: Target) -> Score:
        grader = get_model(role="grader")
        prompt = TEMPLATE.format(
            question=state.input_text, reference=target.text, answer=state.output.completion.strip()
        )
        verdict_text = (
            await grader.generate(prompt, config=GenerateConfig(max_tokens=max_tokens))
        ).completion
        found = _VERDICT.search(verdict_text)
        verdict = found.group(1).lower() if found else None
        value = CORRECT if verdict in ("yes", "correct") else INCORRECT
        return Score(
            value=value,
            answer=state.output.completion,
            explanation=f"grader ({grader}) said: {verdict_text.strip()!r}",
            metadata={"verdict": verdict, "grader": str(grader)},
        )

    return score


@task  # type: ignore[untyped-decorator, unused-ignore]
def assay_graded() -> Task:
    return Task(
        dataset=json_dataset(str(DATA)),
        solver=generate(),
        scorer=graded_by_model(),
        config=GenerateConfig(max_tokens=32, temperature=0.0),
        version=1,
    )
