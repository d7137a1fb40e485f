"""Turn a job spec's benchmark id and parameters into one garak 0.17 run: its ``--spec`` selection and the
``--config`` file (target, generations, prompt cap, report location).

Pure: no garak import and no I/O. The parameters are listed in ``adapters/garak/README.md`` and in
:class:`GarakParameters`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.sdk import ParameterError, openai_base_url, validate_parameters

__all__ = ["QUICK_PROBES", "GarakParameters", "GarakRun", "ParameterError", "plan_run"]

# The bundled benchmark ``quick``: three real probes with pure-Python detectors (no classifier model to
# download) and 8 prompts in all: JSON-only output under threat, a hallucinated biography, quack medicine.
QUICK_BENCHMARK = "quick"
QUICK_PROBES: tuple[str, ...] = ("goodside.ThreatenJSON", "goodside.WhoIsRiley", "lmrc.QuackMedicine")
# garak's own default is 5 generations per prompt; the quick scan keeps 1 so it stays within minutes on CPU.
_GARAK_DEFAULT_GENERATIONS = 5
_QUICK_GENERATIONS = 1
REPORT_PREFIX = "garak"
_SELECTOR = re.compile(
    r"^-?(?:tag:[\w:.\-/]+|tier:\w+|(?:probes\.|buffs\.)?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)$"
)


class GarakParameters(BaseModel):
    """``spec.parameters`` understood by the garak adapter; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    probes: list[str] | None = None
    generations: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0)
    seed: int | None = None
    parallel_attempts: int | None = Field(default=None, gt=0)
    eval_threshold: float | None = Field(default=None, gt=0, le=1)
    system_prompt: str | None = None

    @field_validator("probes", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value


class GarakRun(BaseModel):
    """What the adapter runs: the ``--spec`` string, the config file's content, and where reports land."""

    spec: str
    config: dict[str, Any]
    report_dir: Path
    generations: int

    @property
    def report_jsonl(self) -> Path:
        return self.report_dir / f"{REPORT_PREFIX}.report.jsonl"

    @property
    def report_html(self) -> Path:
        return self.report_dir / f"{REPORT_PREFIX}.report.html"

    @property
    def hitlog_jsonl(self) -> Path:
        return self.report_dir / f"{REPORT_PREFIX}.hitlog.jsonl"


def selection(probes: list[str]) -> str:
    """garak's unified ``--spec`` from probe names: ``dan`` and ``dan.DanInTheWild`` become
    ``probes.dan`` and ``probes.dan.DanInTheWild``; ``tag:``/``tier:``/``-`` selectors pass through."""
    items: list[str] = []
    for probe in probes:
        if not _SELECTOR.match(probe):
            raise ParameterError(f"probes: {probe!r} is not a garak probe name (module or module.Class)")
        negate, name = ("-", probe[1:]) if probe.startswith("-") else ("", probe)
        if not name.startswith(("probes.", "buffs.", "tag:", "tier:")):
            name = f"probes.{name}"
        items.append(negate + name)
    if not any(not item.startswith("-") for item in items):
        raise ParameterError("probes: select at least one probe (only exclusions were given)")
    return ",".join(items)


def plan_run(
    *,
    benchmark_id: str,
    parameters: dict[str, Any],
    num_examples: int | None,
    model_url: str,
    model_name: str,
    api_key: str,
    report_dir: Path,
) -> GarakRun:
    """The garak run for one benchmark: raises :class:`ParameterError` naming a bad parameter."""
    params = validate_parameters(GarakParameters, parameters, context="invalid garak parameters")
    quick = benchmark_id == QUICK_BENCHMARK
    probes = params.probes or (list(QUICK_PROBES) if quick else [benchmark_id])
    if not probes:
        raise ParameterError("probes: the list is empty")
    generations = params.generations or (_QUICK_GENERATIONS if quick else _GARAK_DEFAULT_GENERATIONS)
    generator: dict[str, Any] = {"uri": openai_base_url(model_url, framework="garak"), "api_key": api_key}
    if params.max_tokens is not None:
        generator["max_tokens"] = params.max_tokens
    if params.temperature is not None:
        generator["temperature"] = params.temperature
    run: dict[str, Any] = {"generations": generations}
    if num_examples is not None:
        if num_examples < 1:
            raise ParameterError(f"num_examples: must be at least 1, got {num_examples}")
        run["soft_probe_prompt_cap"] = num_examples
    if params.seed is not None:
        run["seed"] = params.seed
    if params.eval_threshold is not None:
        run["eval_threshold"] = params.eval_threshold
    if params.system_prompt is not None:
        run["system_prompt"] = params.system_prompt
    config: dict[str, Any] = {
        "system": {
            "parallel_attempts": params.parallel_attempts if (params.parallel_attempts or 1) > 1 else False,
            "narrow_output": True,
            "show_z": False,
        },
        "run": run,
        "plugins": {
            "target_type": "openai.OpenAICompatible",
            "target_name": model_name,
            "generators": {"openai": {"OpenAICompatible": generator}},
        },
        "reporting": {"report_prefix": REPORT_PREFIX, "report_dir": str(report_dir)},
    }
    return GarakRun(spec=selection(probes), config=config, report_dir=report_dir, generations=generations)
