"""Read garak's JSONL report into Assay metrics: attack success rates (overall and per probe) and counts.

Pure: it takes the report's entries as dicts. garak writes one ``eval`` entry per probe and detector with
``passed`` and ``fails`` counts of evaluated outputs (a fail is a detector hit: the attack succeeded).
``attack_success_rate`` = hits / evaluations over every probe and detector (an evaluation is one output
judged by one detector), a fraction in [0, 1], lower is better; ``attack_success_rate.<module>.<Probe>`` is
the same per probe. ``attempts`` counts the prompts garak sent and scored. When garak computed a
bootstrap confidence interval for an eval (30+ outputs), it is attached to that probe's rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from adapters.sdk import Metric

__all__ = ["Metric", "ReportError", "metrics_from_entries"]


class ReportError(ValueError):
    """The report lacks what the adapter needs (no eval entry: nothing was scored)."""


@dataclass
class _Tally:
    hits: int = 0
    evaluated: int = 0
    nones: int = 0
    evals: int = 0
    interval: tuple[float, float] | None = None


def metrics_from_entries(entries: Iterable[dict[str, Any]]) -> tuple[list[Metric], dict[str, Any]]:
    """The metrics of a garak run and a summary (probes, detectors, per-probe counts)."""
    per_probe: dict[str, _Tally] = defaultdict(_Tally)
    detectors: dict[str, list[str]] = defaultdict(list)
    attempts = 0
    for entry in entries:
        if entry.get("entry_type") == "attempt" and entry.get("status") == 2:
            attempts += 1  # status 2: the attempt's outputs have been scored
        if entry.get("entry_type") != "eval":
            continue
        probe = str(entry["probe"])
        tally = per_probe[probe]
        passed, fails = int(entry.get("passed") or 0), int(entry.get("fails") or 0)
        tally.hits += fails
        tally.evaluated += passed + fails
        tally.nones += int(entry.get("nones") or 0)
        tally.evals += 1
        detectors[probe].append(str(entry.get("detector")))
        lower, upper = entry.get("confidence_lower"), entry.get("confidence_upper")
        # garak's interval is over its pass rate; the attack success rate is 1 - that.
        tally.interval = (
            (1.0 - float(upper), 1.0 - float(lower)) if lower is not None and upper is not None else None
        )
    if not per_probe:
        raise ReportError("the garak report has no eval entry: no probe output was scored")
    hits = sum(t.hits for t in per_probe.values())
    evaluated = sum(t.evaluated for t in per_probe.values())
    nones = sum(t.nones for t in per_probe.values())
    metrics = [Metric("attack_success_rate", hits / evaluated if evaluated else 0.0, num_samples=evaluated)]
    for probe, tally in sorted(per_probe.items()):
        rate = tally.hits / tally.evaluated if tally.evaluated else 0.0
        # An interval is only meaningful for the probe's rate when the probe had a single detector.
        interval = tally.interval if tally.evals == 1 else None
        metrics.append(
            Metric(f"attack_success_rate.{probe}", rate, tally.evaluated, confidence_interval=interval)
        )
    metrics += [
        Metric("attack_successes", float(hits)),
        Metric("evaluations", float(evaluated)),
        Metric("attempts", float(attempts)),
        Metric("outputs_none", float(nones)),
        Metric("probes_run", float(len(per_probe))),
    ]
    summary = {
        "probes": sorted(per_probe),
        "detectors": {probe: sorted(set(names)) for probe, names in sorted(detectors.items())},
        "per_probe": {
            probe: {"attack_successes": t.hits, "evaluations": t.evaluated, "outputs_none": t.nones}
            for probe, t in sorted(per_probe.items())
        },
    }
    return metrics, summary
