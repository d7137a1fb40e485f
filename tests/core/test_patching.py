"""RFC 7396 merge patch and the shared allow-list (property-based where a law exists)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assay.core import apply_patch, merge_patch
from assay.errors import InvalidRequest

scalars = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.floats(allow_nan=False))
documents = st.recursive(
    st.dictionaries(st.text(max_size=3), scalars, max_size=4),
    lambda inner: st.dictionaries(st.text(max_size=3), st.one_of(scalars, inner), max_size=4),
    max_leaves=12,
)
patches = st.recursive(
    st.dictionaries(st.text(max_size=3), st.one_of(scalars, st.none()), max_size=4),
    lambda inner: st.dictionaries(st.text(max_size=3), st.one_of(scalars, st.none(), inner), max_size=4),
    max_leaves=12,
)


def _has_null(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and any(_has_null(v) for v in value.values()))


@given(documents, patches)
def test_merge_patch_is_idempotent(document: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(document, patch)
    assert merge_patch(once, patch) == once


@given(documents)
def test_a_document_patched_with_itself_is_unchanged(document: dict[str, Any]) -> None:
    assert merge_patch(document, document) == document


@given(documents, patches)
def test_merge_patch_never_mutates_its_input(document: dict[str, Any], patch: dict[str, Any]) -> None:
    import copy

    before = copy.deepcopy(document)
    merge_patch(document, patch)
    assert document == before


@given(documents, patches)
def test_no_null_survives_a_merge(document: dict[str, Any], patch: dict[str, Any]) -> None:
    assert not _has_null(merge_patch(document, patch))


def test_rfc7396_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}


def test_allow_list_applies_to_both_forms() -> None:
    doc = {"name": "x", "tags": []}
    assert apply_patch(doc, {"tags": ["a"]}, ["tags"]) == {"name": "x", "tags": ["a"]}
    assert apply_patch(doc, [{"op": "add", "path": "/tags/-", "value": "a"}], ["tags"])["tags"] == ["a"]
    with pytest.raises(InvalidRequest) as refused:
        apply_patch(doc, {"name": "y"}, ["tags"])
    assert refused.value.message_code == "unallowed_patch"
    with pytest.raises(InvalidRequest) as pointer:
        apply_patch(doc, [{"op": "replace", "path": "name", "value": "y"}], ["name"])
    assert pointer.value.message_code == "invalid_patch_operation"
    with pytest.raises(InvalidRequest):
        apply_patch(doc, [], ["name"])
