"""What a watching runtime reports back to the lifecycle about runs it launched, and how it refuses a launch.

A runtime whose runs live outside this process (Kubernetes Jobs) cannot push exits the way the local runtime
does; the sweep asks it to *observe* an evaluation instead, and applies what comes back: a failure with its
own ``message_code``, a notice about where the run waits (a Kueue queue), or the moment it was given
resources (which starts the hub's own deadline). Plain values only: the lifecycle decides what changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from assay.core.states import NOTICE_CODES


@dataclass(frozen=True, slots=True)
class RunNote:
    """A message about one run: ``message_code`` says what happened, ``reason`` is the runtime's own word
    for it (Kueue's or the kubelet's reason), kept apart so a dashboard can key on it."""

    message: str
    message_code: str
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message": self.message,
            "message_code": self.message_code,
            "message_origin": "runtime",
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True, slots=True)
class RunObservation:
    """What the runtime saw of attempt ``attempt`` of benchmark ``index``.

    ``failure``: the run cannot finish (fail it, and stop what is left of it). ``notice``: where it
    stands meanwhile (queued, admitted, evicted and re-queued), shown as the run's ``warning_message``.
    ``runtime_ref`` and ``deadline_at``: it was given resources; the hub's own deadline runs from then.
    """

    index: int
    attempt: int
    failure: RunNote | None = None
    notice: RunNote | None = None
    runtime_ref: str | None = None
    deadline_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SeenLaunch:
    """A launch of the runtime's own that a resource event is about (a Kubernetes Job of Assay's): the runs it
    was created for, at which attempt, and whether it still runs (neither finished nor being deleted)."""

    evaluation_id: str
    attempt: int
    indices: tuple[int, ...]
    runtime_ref: str
    running: bool


class LaunchRefused(Exception):
    """The runtime will not start this launch, for a reason the user can act on (a missing queue). The run
    fails with ``message_code`` and ``reason`` as the runtime's own judgement (``message_origin: runtime``)."""

    def __init__(self, message: str, message_code: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.message_code = message_code
        self.reason = reason

    def note(self) -> RunNote:
        return RunNote(self.message, self.message_code, self.reason)


__all__ = ["NOTICE_CODES", "LaunchRefused", "RunNote", "RunObservation", "SeenLaunch"]
