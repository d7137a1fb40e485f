"""What every ingress turns its input into: one :class:`ModelVersionEvent` per model version it names,
and the order of versions (natural version order, not arrival order). Pure: no I/O."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assay.api.policies import TriggerSource

_CHUNKS = re.compile(r"\d+|\D+")
_WIDTH = 20


def version_order(version: str) -> str:
    """A text key whose byte order is the natural order of versions: digit runs compare as numbers
    (``v1.9`` < ``v1.10``, ``9`` < ``10``), everything else as text."""
    parts = []
    for chunk in _CHUNKS.findall(version):
        if chunk.isdigit():
            digits = chunk.lstrip("0") or "0"
            # A run longer than the padding keeps its length as a prefix so it still sorts after shorter ones.
            parts.append(
                digits.rjust(_WIDTH, "0") if len(digits) <= _WIDTH else f"~{len(digits):04d}{digits}"
            )
        else:
            parts.append(chunk)
    return "".join(parts)


class ModelVersionEvent(BaseModel):
    """A model version as one event describes it (metadata may be partial: MLflow sends tags and aliases
    in separate events; the triggers merge them over all events about the version)."""

    model_config = ConfigDict(frozen=True)

    source: TriggerSource
    registry: str = Field(description="Which registry or forge: its URL or name.")
    delivery_id: str = Field(description="The delivery's id: the dedupe key together with the source.")
    event: str = Field(description="What happened: model_version.created, push, pull_request, ...")
    name: str = Field(description="The model name (for CI events: the repository path).")
    version: str = Field(description="The model version (for CI events: the commit, tag or input version).")
    order: str | None = Field(None, description="Sort key among versions; default the natural version order.")
    endpoint: str | None = Field(None, description="The serving endpoint, when the event names it.")
    uri: str | None = Field(None, description="Where the weights are (MLflow source, artifact URI).")
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    exclusive_aliases: bool = Field(
        False, description="An alias names one version at a time (MLflow aliases, CI branches)."
    )
    stage: str | None = None
    registry_updated: str | None = None
    kind: Literal["created", "updated"] = "created"

    @property
    def sort_key(self) -> str:
        return self.order if self.order is not None else version_order(self.version)

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "registry": self.registry, "model": self.name, "version": self.version}


__all__ = ["ModelVersionEvent", "version_order"]
