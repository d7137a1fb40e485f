"""Wire models shared by every resource: resource metadata, scores, pages, errors, test data references."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
RESOURCE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"

Tag = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^,|]+$")]
"""A tag: 1-128 characters, no `,` or `|` (those are the AND / OR separators of list filters)."""

ResourceId = Annotated[str, StringConstraints(pattern=RESOURCE_ID)]
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL)]


def drop_nulls(data: Any) -> Any:
    """A JSON object without its ``null`` members (they mean "not given")."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return data


def benchmark_id_alias(data: Any) -> Any:
    """Accept ``benchmark_id`` for a benchmark reference's ``id`` (EvalHub YAML and SDK spellings)."""
    if isinstance(data, dict) and "benchmark_id" in data and "id" not in data:
        data = dict(data)
        data["id"] = data.pop("benchmark_id")
    return data


class WireModel(BaseModel):
    """Base of request bodies: unknown fields are refused, and ``null`` means "not given".

    eval-hub-sdk's CLI dumps its request models without ``exclude_none``, so ``null`` must be
    accepted wherever a field is optional; dropping it before validation gives every optional
    field one meaning for "absent".
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        return drop_nulls(data)


class Resource(BaseModel):
    id: str
    tenant: str | None = None
    owner: str | None = None
    created_at: datetime
    updated_at: datetime | None = None


class MetricScale(WireModel):
    """The range a metric is normalised from: ``(value - min) / (max - min)``, clamped to [0, 1].

    For an unbounded metric (throughput, latency) ``max`` is a reference value: anything beyond it
    scores as the best (or worst) value.
    """

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> MetricScale:
        if not self.min < self.max:
            raise ValueError("scale.min must be less than scale.max")
        return self


class PrimaryScore(WireModel):
    metric: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    lower_is_better: bool | None = Field(
        None, description="Absent: inherited from the next level (job -> collection -> provider), else false."
    )
    scale: MetricScale | None = None


class PassCriteria(WireModel):
    threshold: float


def check_composite_threshold(pass_criteria: PassCriteria | None) -> None:
    """A job's (or a policy's) own ``pass_criteria`` judges the normalised composite: it must lie in [0, 1]."""
    if pass_criteria is not None and not 0.0 <= pass_criteria.threshold <= 1.0:
        raise ValueError(
            "pass_criteria.threshold is on the normalised composite scale and must lie in [0, 1]"
        )


class ScoreRange(WireModel):
    range: str
    meaning: str


class BenchmarkAgentMetadata(WireModel):
    result_interpretation: str | None = None
    score_ranges: list[ScoreRange] = Field(default_factory=list)


class AgentMetadata(WireModel):
    evaluates: list[str] = Field(default_factory=list)
    recommended_when: list[str] = Field(default_factory=list)
    target_type: Literal["model", "agent", "inference_server"] | None = None
    summary: Annotated[str, StringConstraints(max_length=200)] | None = None
    complements: list[str] = Field(default_factory=list)
    hints: list[str] = Field(default_factory=list)
    result_interpretation: list[str] = Field(default_factory=list)


# --- test data references -------------------------------------------------------------------------

_PRIVATE_SUFFIXES = (".svc", ".local", ".cluster.local", ".internal", "localhost")


def _public_http_url(url: str, *, need_https: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL with a host")
    if need_https and parts.scheme != "https":
        raise ValueError("must use https when secret_ref is set")
    host = parts.hostname.lower().rstrip(".")
    if host.endswith(_PRIVATE_SUFFIXES):
        raise ValueError(f"host {host!r} is cluster-internal")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return url
    if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified:
        raise ValueError(f"host {host!r} is a private, loopback or link-local address")
    return url


class S3TestData(WireModel):
    bucket: Annotated[str, StringConstraints(min_length=1)]
    key: Annotated[str, StringConstraints(min_length=1)]
    secret_ref: Annotated[str, StringConstraints(min_length=1)]


class PVCTestData(WireModel):
    claim_name: DnsLabel
    sub_path: str | None = None


class GitTestData(WireModel):
    url: str
    ref: Annotated[str, StringConstraints(min_length=1)]
    sub_path: str | None = None
    secret_ref: str | None = None

    @model_validator(mode="after")
    def _safe_url(self) -> GitTestData:
        _public_http_url(self.url, need_https=self.secret_ref is not None)
        return self


class HFTestData(WireModel):
    repo_id: Annotated[str, StringConstraints(min_length=1)]
    revision: str | None = None
    sub_path: str | None = None
    secret_ref: str | None = None


class TestDataRef(WireModel):
    """Exactly one source of test data for a benchmark (s3, pvc, git or hf)."""

    __test__ = False  # not a pytest test class

    s3: S3TestData | None = None
    pvc: PVCTestData | None = None
    git: GitTestData | None = None
    hf: HFTestData | None = None
    type: Literal["data_set", "pre_recorded_data"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _resolved_sha_is_server_side(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("resolved_sha") is not None:
            raise ValueError("resolved_sha is filled by the server and cannot be set")
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "resolved_sha"}
        return data

    @model_validator(mode="after")
    def _exactly_one_source(self) -> TestDataRef:
        given = [name for name in ("s3", "pvc", "git", "hf") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"exactly one of s3, pvc, git, hf must be set (got {given or 'none'})")
        return self


# --- pages and errors -----------------------------------------------------------------------------


class Link(BaseModel):
    href: str


class ErrorDetail(BaseModel):
    path: str
    code: str
    message: str


class ErrorBody(BaseModel):
    """EvalHub's error body plus ``detail`` (read by the evalhub CLI) and every invalid field."""

    message_code: str
    message: str
    trace: str
    detail: str
    errors: list[ErrorDetail] = Field(default_factory=list)


class Health(BaseModel):
    status: Literal["healthy", "unhealthy"]
    timestamp: datetime
    version: str
    checks: dict[str, str] = Field(default_factory=dict)


_LOC_INDEX = re.compile(r"\.\[(\d+)\]")


def error_path(loc: tuple[int | str, ...]) -> str:
    """``('benchmarks', 0, 'weight')`` -> ``benchmarks[0].weight``."""
    dotted = ".".join(f"[{part}]" if isinstance(part, int) else str(part) for part in loc)
    return _LOC_INDEX.sub(r"[\1]", dotted)
