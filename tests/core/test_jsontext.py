"""``assay.core.jsontext``: orjson where it can, the standard library's output where it cannot, and the same JSON
values as ``json.dumps`` either way (read back by ``json.loads``, as every reader of them does)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from assay.core.jsontext import dumps, dumps_text, loads
from assay.store import Database
from tests.store.test_job_list_store import run

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)  # beyond both ends of 64 bits too
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # lone surrogates included
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, min_size=1, max_size=2)
    ),  # the last: keys orjson refuses
    max_leaves=24,
)


@given(_VALUES)
def test_dumps_writes_the_values_the_standard_library_writes(value: Any) -> None:
    expected = json.loads(json.dumps(value))
    assert json.loads(dumps(value)) == expected
    assert json.loads(dumps(value, indent=True)) == expected
    assert json.loads(dumps_text(value)) == expected


def _typed(value: Any) -> Any:
    """``value`` with each number tagged by its type: 1 and 1.0, equal in Python, differ here."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return (type(value).__name__, value)


@given(_VALUES, st.booleans())
def test_loads_reads_what_the_standard_library_reads(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    expected = _typed(json.loads(text))
    assert _typed(loads(text)) == expected
    assert _typed(loads(text.encode("utf-8", "surrogatepass"))) == expected
    assert _typed(loads(memoryview(text.encode("utf-8", "surrogatepass")))) == expected


def test_loads_never_turns_a_wide_integer_into_a_float() -> None:
    for number in (2**63, 2**64, -(2**63) - 1, 10**30, 2**63 - 1, -(2**63)):
        assert _typed(loads(f'{{"n": {number}}}'.encode())) == {"n": ("int", number)}
    for text in ("[NaN]", "[Infinity]", "[1e400]", '["\\ud800"]'):
        assert _typed(loads(text)) == _typed(json.loads(text))
    assert _typed(loads('"' + "1" * 30 + '"')) == ("str", "1" * 30)  # a long run in a string: still exact


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    assert dumps({"n": 2**70}) == b'{"n":1180591620717411303424}'
    assert dumps({1: "a"}) == b'{"1":"a"}'
    assert dumps(["\ud800"]) == b'["\\ud800"]'  # escaped: valid JSON, where raw UTF-8 cannot hold it
    assert dumps({"n": 2**70}, indent=True) == json.dumps({"n": 2**70}, indent=2).encode()
    assert dumps({"s": {1}}, default=sorted) == b'{"s":[1]}'


def test_indented_output_is_the_standard_librarys_layout() -> None:
    document = {"id": "j", "benchmarks": [{"id": "b", "parameters": {"k": 1.5}}], "empty": {}, "none": []}
    assert dumps(document, indent=True).decode() == json.dumps(document, indent=2)


def test_text_beyond_ascii_is_utf8_and_not_a_number_is_null() -> None:
    assert dumps({"name": "café ✓"}) == '{"name":"café ✓"}'.encode()
    # json.dumps would write NaN, which is not JSON: PostgreSQL refuses it and strict clients fail on it.
    assert dumps({"score": math.nan}) == b'{"score":null}'


def test_the_hubs_connections_store_json_exactly(database_url: str) -> None:
    """The pool's connections write JSON parameters with dumps: a 70-bit integer in a job's parameters, text
    beyond ASCII and a key orjson refuses come back from PostgreSQL as they were sent, and a float that is not a
    number is stored as null (psycopg's default, json.dumps, sent NaN, which PostgreSQL refuses)."""
    sent = {
        "custom": {"seed": 2**70, "name": "café ✓", "nested": [1.5, -0.25, 12345678901234567]},
        "by_index": {0: "first"},
    }

    async def scenario(database: Database) -> None:
        async with database.pool.connection() as conn:
            cursor = await conn.execute("SELECT %s::jsonb::text", [Jsonb(sent)])
            row = await cursor.fetchone()
            cursor = await conn.execute("SELECT %s::jsonb::text", [Jsonb({"score": math.nan})])
            assert await cursor.fetchone() == ('{"score": null}',)
            cursor = await conn.execute("SELECT %s::jsonb", [Jsonb(sent)])  # read back by the pool's loads
            back = await cursor.fetchone()
        assert row is not None and back is not None
        assert json.loads(row[0]) == json.loads(json.dumps(sent))
        assert _typed(back[0]) == _typed(json.loads(json.dumps(sent)))  # 2**70 an integer still

    run(database_url, scenario)
