"""Wire-model rules that are not visible through a single endpoint."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from assay.api import TestDataRef
from assay.core import Tenant
from assay.errors import InvalidIdentity


@pytest.mark.parametrize(
    "ref",
    [
        {"s3": {"bucket": "b", "key": "k", "secret_ref": "s"}},
        {"pvc": {"claim_name": "data"}},
        {"git": {"url": "https://github.com/org/repo", "ref": "main"}},
        {"hf": {"repo_id": "org/data"}, "type": "data_set"},
    ],
)
def test_one_source_is_accepted(ref: dict[str, object]) -> None:
    TestDataRef.model_validate(ref)


@pytest.mark.parametrize(
    "ref, fragment",
    [
        ({}, "exactly one"),
        ({"pvc": {"claim_name": "a"}, "hf": {"repo_id": "x"}}, "exactly one"),
        ({"git": {"url": "http://10.0.0.5/repo", "ref": "main"}}, "private"),
        ({"git": {"url": "https://gitea.ns.svc/repo", "ref": "main"}}, "cluster-internal"),
        ({"git": {"url": "http://127.0.0.1/repo", "ref": "main"}}, "loopback"),
        ({"git": {"url": "http://github.com/o/r", "ref": "main", "secret_ref": "s"}}, "https"),
        ({"git": {"url": "file:///etc/passwd", "ref": "main"}}, "http(s)"),
        ({"pvc": {"claim_name": "a"}, "resolved_sha": "abc"}, "resolved_sha"),
    ],
)
def test_bad_test_data_refs(ref: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        TestDataRef.model_validate(ref)


def test_tenant_names_are_dns_labels() -> None:
    assert str(Tenant("team-a")) == "team-a"
    for bad in ("", "Team", "-a", "a" * 64, "a_b", "a.b"):
        with pytest.raises(InvalidIdentity):
            Tenant(bad)
