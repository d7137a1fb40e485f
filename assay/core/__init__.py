"""The pure core of Assay: identity, validation, catalogue rules, patching and scoring. No I/O here."""

from assay.core.catalogue import check_collection
from assay.core.identity import Tenant, parse_user
from assay.core.patching import apply_patch, merge_patch
from assay.core.scoring import ScoreConfig, ScoreLayer, resolve_score_config
from assay.core.validation import field_errors, parse_model, summarise

__all__ = [
    "ScoreConfig",
    "ScoreLayer",
    "Tenant",
    "apply_patch",
    "check_collection",
    "field_errors",
    "merge_patch",
    "parse_model",
    "parse_user",
    "resolve_score_config",
    "summarise",
]
