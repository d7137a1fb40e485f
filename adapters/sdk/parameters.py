"""Reading an adapter's benchmark parameters (``spec.parameters``) with errors that name the parameter.

Two styles, both raising :class:`~adapters.sdk.errors.ParameterError`: single values read one by one
(:func:`int_parameter`, :func:`float_parameter`; strings such as ``"3"`` are accepted, as a form or a YAML file
may send them), or a whole pydantic model (:func:`validate_parameters`), whose every problem is listed as
``<parameter>: <message>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from adapters.sdk.errors import ParameterError

__all__ = ["float_parameter", "int_parameter", "validate_parameters"]

_Model = TypeVar("_Model", bound=BaseModel)


def int_parameter(params: Mapping[str, Any], name: str, default: int, *, minimum: int) -> int:
    """``params[name]`` (or ``default``) as an integer of at least ``minimum``; booleans are refused."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ParameterError(f"parameter {name} must be an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ParameterError(f"parameter {name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ParameterError(f"parameter {name} must be at least {minimum}, got {number}")
    return number


def float_parameter(params: Mapping[str, Any], name: str, default: float, *, positive: bool) -> float:
    """``params[name]`` (or ``default``) as a finite number: greater than 0 when ``positive`` (a timeout),
    else at least 0 (a temperature); booleans are refused."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ParameterError(f"parameter {name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ParameterError(f"parameter {name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ParameterError(f"parameter {name} must be {kind} number, got {value!r}")
    return number


def validate_parameters(
    model: type[_Model], params: Mapping[str, Any], *, context: str, field_prefix: str = ""
) -> _Model:
    """``params`` validated as ``model``; on failure a ParameterError ``<context>: <field>: <msg>; ...``,
    each field named as ``field_prefix`` + its location (a problem of the whole object as ``parameters``)."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{field_prefix + '.'.join(str(p) for p in err['loc']) if err['loc'] else 'parameters'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ParameterError(f"{context}: {problems}") from None
