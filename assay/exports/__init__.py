"""Exports of finished evaluations: MLflow runs (``assay.tracking``), the evaluation card and each benchmark's
results as OCI artifacts (``assay.artifacts``), recorded per export in Postgres and retried by the sweep.

The lifecycle knows only its ``Exporter`` protocol; the processes allowed the heavy clients (``assay up``,
the aggregate and sweep functions) build :class:`Exports` and hand it in. See ``docs/exports.md``.
"""

from assay.exports._card import CARD_FILE, CARD_MEDIA_TYPE, card_bytes, evaluation_card
from assay.exports._exporter import Exports, benchmark_tag, build_exporter, card_tag, summarize

__all__ = [
    "CARD_FILE",
    "CARD_MEDIA_TYPE",
    "Exports",
    "benchmark_tag",
    "build_exporter",
    "card_bytes",
    "card_tag",
    "evaluation_card",
    "summarize",
]
