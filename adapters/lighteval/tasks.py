"""LightEval custom tasks over the small datasets bundled in ``adapters/lighteval/data`` (our own items).

Loaded by the adapter as LightEval's ``custom_tasks`` module (it reads ``TASKS_TABLE``); each task reads a local
JSON Lines folder (``train.jsonl`` for few-shot examples, ``test.jsonl`` to evaluate), so nothing is downloaded.
Both tasks are short-answer generative tasks scored with LightEval's ``em`` (exact match after stripping) and
``f1`` (token overlap), whose per-sample means carry LightEval's standard errors.

This module imports LightEval, so it is only importable inside the adapter's own environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lighteval.metrics.metrics import Metrics  # type: ignore[import-not-found,unused-ignore]
from lighteval.tasks.lighteval_task import LightevalTaskConfig  # type: ignore[import-not-found,unused-ignore]
from lighteval.tasks.requests import Doc  # type: ignore[import-not-found,unused-ignore]

__all__ = ["DATA_DIR", "TASKS_TABLE"]

DATA_DIR = Path(__file__).resolve().parent / "data"
# A completion ends at the first line break. Chat templates of small base models served by llama.cpp may leak
# their end-of-turn marker into the text instead of stopping on it, so those markers stop generation too.
_STOP = ["\n", "<|im_end|>", "<end_of_turn>", "</s>"]


def capitals_prompt(line: dict[str, Any], task_name: str | None = None) -> Any:
    return Doc(
        task_name=task_name,
        query=f"Question: What is the capital of {line['country']}?\nAnswer:",
        choices=[f" {line['answer']}"],
        gold_index=0,
    )


def arithmetic_prompt(line: dict[str, Any], task_name: str | None = None) -> Any:
    return Doc(
        task_name=task_name,
        query=f"Question: What is {line['question']}?\nAnswer:",
        choices=[f" {line['answer']}"],
        gold_index=0,
    )


def _local_task(name: str, folder: str, prompt: Any) -> Any:
    return LightevalTaskConfig(
        name=name,
        prompt_function=prompt,
        # A local folder with train.jsonl / test.jsonl: `datasets` names the splits after the files.
        hf_repo=str(DATA_DIR / folder),
        hf_subset="default",
        hf_avail_splits=["train", "test"],
        evaluation_splits=["test"],
        few_shots_split="train",
        few_shots_select="sequential",
        generation_size=12,
        stop_sequence=_STOP,
        metrics=[Metrics.exact_match, Metrics.f1_score],
        version=0,
    )


TASKS_TABLE = [
    _local_task("assay_capitals", "capitals", capitals_prompt),
    _local_task("assay_arithmetic", "arithmetic", arithmetic_prompt),
]
