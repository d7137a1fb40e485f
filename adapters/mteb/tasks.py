"""MTEB tasks over the small datasets bundled in ``adapters/mteb/data`` (our own sentences, documents and labels).

``AssaySTS`` (30 English sentence pairs rated 0-5; main score ``cosine_spearman``) and ``AssayRetrieval``
(12 questions over 20 short encyclopaedia-style passages with graded relevance; main score ``ndcg_at_10``) are
ordinary MTEB ``AbsTaskSTS`` / ``AbsTaskRetrieval`` tasks whose ``load_data`` reads local JSON Lines files, so
MTEB computes its own metrics on them and nothing is downloaded. ``limit`` keeps the first N pairs or queries
(a retrieval corpus is always kept whole, so nDCG stays comparable).

This module imports MTEB, so it is only importable inside the adapter's own environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict  # type: ignore[import-not-found,unused-ignore]
from mteb.abstasks.retrieval import AbsTaskRetrieval  # type: ignore[import-not-found,unused-ignore]
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData  # type: ignore[import-not-found,unused-ignore]
from mteb.abstasks.sts import AbsTaskSTS  # type: ignore[import-not-found,unused-ignore]
from mteb.abstasks.task_metadata import TaskMetadata  # type: ignore[import-not-found,unused-ignore]

__all__ = ["BUNDLED_TASKS", "DATA_DIR", "AssayRetrieval", "AssaySTS", "bundled_task"]

DATA_DIR = Path(__file__).resolve().parent / "data"

_COMMON: dict[str, Any] = {
    "reference": "https://github.com/assay-evals/assay",
    # Never fetched: load_data below reads the bundled files (MTEB only records these in its results).
    "dataset": {"path": "assay/bundled", "revision": "1"},
    "category": "t2t",
    "eval_splits": ["test"],
    "eval_langs": ["eng-Latn"],
    "date": ("2026-01-01", "2026-01-01"),
    "dialect": ["Written"],
    "domains": ["Written"],
    "task_subtypes": [],
    "license": "apache-2.0",
    "annotations_creators": "expert-annotated",
    "modalities": ["text"],
    "sample_creation": "created",
    "bibtex_citation": "",
}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class AssaySTS(AbsTaskSTS):  # type: ignore[misc,unused-ignore]
    """Semantic similarity of 30 English sentence pairs, gold scores 0-5."""

    metadata = TaskMetadata(
        name="AssaySTS",
        description="30 English sentence pairs written for Assay, rated 0 (unrelated) to 5 (same meaning).",
        type="STS",
        main_score="cosine_spearman",
        **_COMMON,
    )
    min_score = 0
    max_score = 5

    def __init__(self, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        rows = _read_jsonl(DATA_DIR / "sts" / "test.jsonl")[: self.limit]
        self.dataset = DatasetDict({"test": Dataset.from_list(rows)})
        self.data_loaded = True

    def examples(self) -> int:
        """Sentence pairs evaluated."""
        return len(_read_jsonl(DATA_DIR / "sts" / "test.jsonl")[: self.limit])

    def texts_to_embed(self) -> int:
        return 2 * self.examples()


class AssayRetrieval(AbsTaskRetrieval):  # type: ignore[misc,unused-ignore]
    """12 questions over 20 passages; a query's relevant passages are graded 1."""

    metadata = TaskMetadata(
        name="AssayRetrieval",
        description="12 English questions over 20 short passages written for Assay, with relevance judgements.",
        type="Retrieval",
        main_score="ndcg_at_10",
        **_COMMON,
    )

    def __init__(self, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    def _queries(self) -> list[dict[str, Any]]:
        return _read_jsonl(DATA_DIR / "retrieval" / "queries.jsonl")[: self.limit]

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        folder = DATA_DIR / "retrieval"
        queries = self._queries()
        wanted = {q["id"] for q in queries}
        relevant: dict[str, dict[str, int]] = {}
        for qrel in _read_jsonl(folder / "qrels.jsonl"):
            if qrel["query_id"] in wanted:
                relevant.setdefault(qrel["query_id"], {})[qrel["corpus_id"]] = int(qrel["score"])
        split = RetrievalSplitData(
            queries=Dataset.from_list(queries),
            corpus=Dataset.from_list(_read_jsonl(folder / "corpus.jsonl")),
            relevant_docs=relevant,
            top_ranked=None,
        )
        self.dataset = {"default": {"test": split}}
        self.data_loaded = True

    def examples(self) -> int:
        """Queries evaluated."""
        return len(self._queries())

    def texts_to_embed(self) -> int:
        return len(self._queries()) + len(_read_jsonl(DATA_DIR / "retrieval" / "corpus.jsonl"))


BUNDLED_TASKS: dict[str, type[AssaySTS] | type[AssayRetrieval]] = {
    "AssaySTS": AssaySTS,
    "AssayRetrieval": AssayRetrieval,
}


def bundled_task(name: str, limit: int | None) -> AssaySTS | AssayRetrieval | None:
    """A bundled task by name, limited to ``limit`` pairs/queries; None if ``name`` is not bundled."""
    cls = BUNDLED_TASKS.get(name)
    return cls(limit=limit) if cls is not None else None
