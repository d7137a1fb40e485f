"""The Inspect AI adapter: one benchmark is one Inspect task run against the job's OpenAI-compatible endpoint
(``python -m adapters.inspect``; parameters in README.md).

Shipped tasks on repo data (``tasks/``), offline: ``assay_qa`` (single-turn short answers, ``includes``),
``assay_graded`` (open questions graded by the model under evaluation with ``model_graded_qa``) and ``assay_tools``
(multi-turn: a ``bash`` tool in Inspect's local sandbox reads a file, the model answers from its output).
"""

from __future__ import annotations

from adapters.inspect.adapter import InspectAdapter

__all__ = ["InspectAdapter"]
