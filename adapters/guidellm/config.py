"""Turn a job spec's benchmark id and parameters into one GuideLLM 0.8 run (a ``BenchmarkScenario`` spec).

Pure: no GuideLLM import, no I/O, so the mapping is testable and documented in one place. The parameters
(all optional) are listed in ``adapters/guidellm/README.md`` and in :class:`GuideLLMParameters`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.sdk import ParameterError, openai_base_url, validate_parameters

__all__ = [
    "BUNDLED_PROMPTS",
    "BUNDLED_TOKENIZER",
    "PROFILES",
    "GuideLLMParameters",
    "GuideLLMRun",
    "ParameterError",
    "plan_run",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_TOKENIZER = DATA_DIR / "tokenizer"
BUNDLED_PROMPTS = DATA_DIR / "prompts.jsonl"

Profile = Literal["synchronous", "concurrent", "throughput", "constant", "poisson", "sweep"]
PROFILES: tuple[str, ...] = ("synchronous", "concurrent", "throughput", "constant", "poisson", "sweep")
# The bundled benchmark: a few short prompts from data/prompts.jsonl, one at a time (a smoke test of an
# endpoint's latency that finishes in seconds even on a CPU-served model).
SMOKE_BENCHMARK = "smoke"
_SMOKE_MAX_REQUESTS = 8
_SMOKE_OUTPUT_TOKENS = 32
# Profile benchmarks without any bound would run GuideLLM's defaults (thousands of requests): cap them.
_DEFAULT_MAX_REQUESTS = 100
_DEFAULT_MAX_SECONDS = 120.0
_DEFAULT_PROMPT_TOKENS = 256
_DEFAULT_OUTPUT_TOKENS = 128
_DEFAULT_STREAMS = 2
_DEFAULT_RATE = 1.0
_FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".txt", ".text", ".parquet", ".arrow")


class GuideLLMParameters(BaseModel):
    """``spec.parameters`` understood by the GuideLLM adapter; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    profile: Profile | None = None
    rate: float | list[float] | None = None
    max_requests: int | None = Field(default=None, gt=0)
    max_seconds: float | None = Field(default=None, gt=0)
    data: str | None = None
    prompt_tokens: int | None = Field(default=None, gt=0)
    output_tokens: int | None = Field(default=None, gt=0)
    request_format: Literal["/v1/completions", "/v1/chat/completions", "completions", "chat"] = (
        "/v1/completions"
    )
    tokenizer: str | None = None
    seed: int = 42
    request_timeout: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _rates_positive(self) -> GuideLLMParameters:
        rates = self.rate if isinstance(self.rate, list) else [self.rate] if self.rate is not None else []
        if any(r <= 0 for r in rates):
            raise ValueError("rate: every value must be greater than 0")
        return self


class GuideLLMRun(BaseModel):
    """What the adapter runs: GuideLLM's scenario ``spec`` plus what it needs to report progress."""

    profile: str
    spec: dict[str, Any]
    expected_runs: int
    max_requests: int | None
    max_seconds: float | None
    data_description: str


def normalise_target(url: str) -> str:
    """GuideLLM appends ``/v1/...`` itself: the OpenAI-compatible base URL without its ``/v1``."""
    return openai_base_url(url, framework="GuideLLM").removesuffix("/v1")


def _synthetic(prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {"kind": "synthetic_text", "prompt_tokens": prompt_tokens, "output_tokens": output_tokens}


def _data_source(params: GuideLLMParameters, benchmark_id: str) -> tuple[dict[str, Any], str]:
    if params.data is not None and params.data.strip().lower().endswith(_FILE_SUFFIXES):
        path = Path(params.data).expanduser()
        if not path.is_file():
            raise ParameterError(f"data: no such file {params.data!r}")
        kind = {".jsonl": "json_file", ".txt": "text_file", ".text": "text_file"}.get(
            path.suffix.lower(), f"{path.suffix.lower().lstrip('.')}_file"
        )
        return {"kind": kind, "path": str(path)}, f"file {path}"
    if params.data is not None:
        # GuideLLM's own synthetic spec, e.g. "prompt_tokens=256,output_tokens=128".
        fields: dict[str, Any] = {}
        for item in params.data.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ParameterError(
                    f"data: expected a data file path or 'key=value,...' (e.g. 'prompt_tokens=256,"
                    f"output_tokens=128'), got {params.data!r}"
                )
            text = value.strip()
            fields[key.strip()] = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else text
        fields.setdefault("prompt_tokens", params.prompt_tokens or _DEFAULT_PROMPT_TOKENS)
        fields.setdefault("output_tokens", params.output_tokens or _DEFAULT_OUTPUT_TOKENS)
        return {"kind": "synthetic_text", **fields}, f"synthetic {params.data}"
    if benchmark_id == SMOKE_BENCHMARK and params.prompt_tokens is None:
        return {"kind": "json_file", "path": str(BUNDLED_PROMPTS)}, f"bundled prompts {BUNDLED_PROMPTS.name}"
    prompt = params.prompt_tokens or _DEFAULT_PROMPT_TOKENS
    output = params.output_tokens or _DEFAULT_OUTPUT_TOKENS
    return _synthetic(prompt, output), f"synthetic prompt_tokens={prompt},output_tokens={output}"


def _profile(profile: str, rate: float | list[float] | None) -> tuple[dict[str, Any], int]:
    rates = rate if isinstance(rate, list) else [rate] if rate is not None else []
    if profile == "synchronous":
        if rates:
            raise ParameterError(
                "rate: the synchronous profile sends one request at a time and takes no rate"
            )
        return {"kind": "synchronous"}, 1
    if profile == "throughput":
        if len(rates) > 1:
            raise ParameterError("rate: the throughput profile takes one value (its maximum concurrency)")
        return (
            {"kind": "throughput", "max_concurrency": int(rates[0])} if rates else {"kind": "throughput"}
        ), 1
    if profile == "concurrent":
        streams = [int(r) for r in rates] or [_DEFAULT_STREAMS]
        if any(s != r for s, r in zip(streams, rates, strict=False)):
            raise ParameterError(f"rate: the concurrent profile takes whole numbers of streams, got {rate}")
        return {"kind": "concurrent", "streams": streams}, len(streams)
    if profile in ("constant", "poisson"):
        values = [float(r) for r in rates] or [_DEFAULT_RATE]
        return {"kind": profile, "rate": values}, len(values)
    # sweep: rate is the number of runs (synchronous, throughput and evenly spaced rates between).
    if len(rates) > 1 or (rates and (rates[0] < 2 or int(rates[0]) != rates[0])):
        raise ParameterError(
            f"rate: the sweep profile takes one whole number >= 2 (how many runs), got {rate}"
        )
    size = int(rates[0]) if rates else 10
    return {"kind": "sweep", "sweep_size": size}, size


def plan_run(
    *,
    benchmark_id: str,
    parameters: dict[str, Any],
    num_examples: int | None,
    model_url: str,
    model_name: str,
    output_dir: Path,
) -> GuideLLMRun:
    """The GuideLLM run for one benchmark: raises :class:`ParameterError` naming a bad parameter."""
    params = validate_parameters(GuideLLMParameters, parameters, context="invalid GuideLLM parameters")
    profile = params.profile or (benchmark_id if benchmark_id in PROFILES else None)
    if profile is None:
        if benchmark_id != SMOKE_BENCHMARK:
            raise ParameterError(
                f"benchmark_id {benchmark_id!r} is not a GuideLLM profile ({', '.join(PROFILES)}) nor "
                f"{SMOKE_BENCHMARK!r}; set parameters.profile"
            )
        profile = "synchronous"
    profile_spec, expected_runs = _profile(profile, params.rate)
    data, data_description = _data_source(params, benchmark_id)

    caps = [n for n in (params.max_requests, num_examples) if n is not None]
    max_requests = min(caps) if caps else None
    max_seconds = params.max_seconds
    if max_requests is None and max_seconds is None:
        if benchmark_id == SMOKE_BENCHMARK:
            max_requests = _SMOKE_MAX_REQUESTS
        else:
            max_requests, max_seconds = _DEFAULT_MAX_REQUESTS, _DEFAULT_MAX_SECONDS
    constraints: list[dict[str, Any]] = []
    if max_requests is not None:
        constraints.append({"kind": "max_requests", "count": max_requests})
    if max_seconds is not None:
        constraints.append({"kind": "max_duration", "seconds": max_seconds})

    request_format = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}.get(
        params.request_format, params.request_format
    )
    backend: dict[str, Any] = {
        "kind": "openai_http",
        "target": normalise_target(model_url),
        "model": model_name,
        "request_format": request_format,
        # llama.cpp and other small servers lack the endpoints GuideLLM probes at start-up.
        "validate_backend": False,
    }
    if params.request_timeout is not None:
        backend["timeout"] = params.request_timeout
    if data["kind"] != "synthetic_text":
        # A data file's rows carry no output length: the request's max_tokens bounds each answer instead.
        output_tokens = params.output_tokens or (
            _SMOKE_OUTPUT_TOKENS if benchmark_id == SMOKE_BENCHMARK else None
        )
        if output_tokens is not None:
            backend["max_tokens"] = output_tokens
    tokenizer = params.tokenizer or str(BUNDLED_TOKENIZER)
    spec: dict[str, Any] = {
        "backend": backend,
        "profile": profile_spec,
        "constraints": constraints,
        "tokenizer": {"kind": "huggingface_auto", "model": tokenizer},
        "data": [data],
        "seed": {"kind": "static", "value": params.seed},
        "outputs": [
            {"kind": "json", "path": str(output_dir / "benchmarks.json")},
            {"kind": "csv", "path": str(output_dir / "benchmarks.csv")},
            {"kind": "html", "path": str(output_dir / "benchmarks.html")},
        ],
    }
    return GuideLLMRun(
        profile=profile,
        spec=spec,
        expected_runs=expected_runs,
        max_requests=max_requests,
        max_seconds=max_seconds,
        data_description=data_description,
    )
