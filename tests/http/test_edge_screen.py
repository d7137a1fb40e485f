"""The JSON policy looks at a body's bytes before it parses it (``may_break_policy``): a body it lets through
unparsed must be one the full screen (parse and walk) finds nothing in. Checked on generated documents written
every way a client may write them, and on the cases at each threshold."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.errors import AssayError
from assay.http.edge import may_break_policy, screen_body, screen_parsed

EVENTS = "/api/v1/evaluations/jobs/j/events"
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.sampled_from([1e308, 1.7976931348623157e308, -1e300, 5e-324]),
)
documents = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=24,
)


def written(document: Any, how: int) -> bytes:
    """``document`` as a client might send it: ASCII-escaped or not, UTF-8 (surrogates passed) or UTF-16."""
    raw = json.dumps(document, ensure_ascii=how % 2 == 0, allow_nan=True)
    if how == 2:
        return raw.encode("utf-16")
    return raw.encode("utf-8", "surrogatepass")


def outcome(screened: tuple[bytes, AssayError | None]) -> tuple[bytes, Any]:
    body, refusal = screened
    if refusal is None:
        return body, None
    return body, (type(refusal), str(refusal), [(e.path, e.code) for e in refusal.errors])


def assert_consistent(body: bytes) -> None:
    for path in ("/api/v1/evaluations/jobs", EVENTS):
        full = outcome(screen_parsed(path, body))
        if not may_break_policy(body):
            assert full == (body, None), body[:200]
        assert outcome(screen_body(path, body)) == full


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents, how=st.integers(0, 2))
def test_a_body_let_through_unparsed_holds_nothing_the_screen_refuses(document: Any, how: int) -> None:
    assert_consistent(written(document, how))


@given(document=documents)
@settings(max_examples=100, deadline=None)
def test_a_status_event_with_metrics_is_screened_alike(document: Any) -> None:
    event = {"benchmark_status_event": {"status": "completed", "metrics": {"m": document}}}
    assert_consistent(written(event, 1))


def test_the_thresholds() -> None:
    overflow = b'{"a": 1' + b"0" * 250 + b"e99}"  # 1e349: two exponent digits, 251 integer digits
    assert math.isinf(float(overflow[6:-1])) and may_break_policy(overflow)
    assert screen_parsed("/x", overflow)[1] is not None
    for deep in (b"[" * 66 + b"1" + b"]" * 66, b'{"a":' * 66 + b"1" + b"}" * 66):
        assert may_break_policy(deep) and screen_parsed("/x", deep)[1] is not None
    quiet = b'{"name": "caf\\u00e9", "n": 1.5e10, "tags": ["a"], "big": 123456789012345678901234567890}'
    assert not may_break_policy(quiet) and screen_parsed("/x", quiet) == (quiet, None)
    for body in (
        b'{"a": 1e999}',
        b'{"a": -1E+400}',
        b'{"a": NaN}',
        b'{"a": "\\u0000"}',
        b'{"a": "\\uDFFF"}',
        '{"a": "\ud800"}'.encode("utf-8", "surrogatepass"),
    ):
        assert may_break_policy(body) and screen_parsed("/x", body)[1] is not None
