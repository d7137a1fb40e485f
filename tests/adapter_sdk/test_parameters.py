"""Reading benchmark parameters: single values by name, and a pydantic model whose problems are all named."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel, ConfigDict, Field

from adapters.sdk import ParameterError, float_parameter, int_parameter, validate_parameters


def test_integers_accept_numbers_and_numeric_strings_and_name_the_parameter() -> None:
    assert int_parameter({}, "batch_size", 32, minimum=1) == 32
    assert int_parameter({"batch_size": "8"}, "batch_size", 32, minimum=1) == 8
    with pytest.raises(ParameterError, match="parameter batch_size must be at least 1, got 0"):
        int_parameter({"batch_size": 0}, "batch_size", 32, minimum=1)
    for bad in (True, 2.5, "two", None):
        with pytest.raises(ParameterError, match="parameter seed must be an integer"):
            int_parameter({"seed": bad}, "seed", 0, minimum=0)


def test_numbers_may_be_zero_unless_they_must_be_positive() -> None:
    assert float_parameter({"temperature": 0}, "temperature", 1.0, positive=False) == 0.0
    assert float_parameter({"timeout": "2.5"}, "timeout", 60.0, positive=True) == 2.5
    with pytest.raises(ParameterError, match="parameter timeout must be a positive number, got 0"):
        float_parameter({"timeout": 0}, "timeout", 60.0, positive=True)
    with pytest.raises(ParameterError, match="parameter temperature must be a non-negative number"):
        float_parameter({"temperature": -0.1}, "temperature", 0.0, positive=False)
    for bad in (math.inf, "nan", False, [1]):
        with pytest.raises(ParameterError, match="parameter timeout must be a"):
            float_parameter({"timeout": bad}, "timeout", 60.0, positive=False)
    # Still a ValueError, for callers that catch that.
    assert issubclass(ParameterError, ValueError)


class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    generations: int = Field(default=1, gt=0)
    probes: list[str] | None = None


def test_a_model_lists_every_problem_by_field() -> None:
    assert validate_parameters(Knobs, {"generations": 3}, context="invalid x parameters").generations == 3
    with pytest.raises(ParameterError) as raised:
        validate_parameters(Knobs, {"generations": 0, "probe": "dan"}, context="invalid x parameters")
    message = str(raised.value)
    assert message.startswith("invalid x parameters: generations: ")
    assert "; probe: Extra inputs are not permitted" in message
    with pytest.raises(ParameterError, match=r"^benchmark 'a': parameters\.probes\.0: "):
        validate_parameters(Knobs, {"probes": [1]}, context="benchmark 'a'", field_prefix="parameters.")
