"""Turn pydantic validation failures into Assay's ``FieldError`` list (every invalid field, named)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from assay.api import error_path
from assay.errors import FieldError, InvalidRequest

M = TypeVar("M", bound=BaseModel)

_CODES = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "string_too_short": "min_length",
    "string_too_long": "max_length",
    "too_short": "min_items",
    "too_long": "max_items",
    "greater_than_equal": "min",
    "greater_than": "min",
    "less_than_equal": "max",
    "less_than": "max",
    "string_pattern_mismatch": "pattern",
    "value_error": "invalid",
    "assertion_error": "invalid",
    "literal_error": "enum",
    "enum": "enum",
    "json_invalid": "invalid_json",
}


def field_errors(errors: Iterable[Mapping[str, Any]], *, strip: int = 0) -> list[FieldError]:
    """Map pydantic error dicts (``exc.errors()``) to FieldErrors; ``strip`` drops leading loc parts."""
    out: list[FieldError] = []
    for err in errors:
        loc = tuple(err.get("loc", ()))[strip:]
        kind = str(err.get("type", "invalid"))
        if kind == "extra_forbidden":
            message = f"unknown field {str(loc[-1])!r}" if loc else "unknown field"
        else:
            message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        out.append(FieldError(path=error_path(loc) or "$", code=_CODES.get(kind, kind), message=message))
    return out


def summarise(errors: Iterable[FieldError], lead: str = "The request is invalid") -> str:
    listed = "; ".join(f"{e.path}: {e.message}" for e in errors)
    return f"{lead}: {listed}" if listed else lead


def parse_model(model: type[M], data: object, *, what: str = "request") -> M:
    """Validate ``data`` as ``model``, raising :class:`InvalidRequest` that lists every invalid field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc.errors())
        raise InvalidRequest(summarise(errors, f"The {what} is invalid"), errors=errors) from None
