"""Closed JSON schemas for the kinds ``tests/k8s-schemas`` lacks, derived from the official ``kubernetes``
client's models (``V1NetworkPolicy``, ``V1TokenReview``, ``V1SubjectAccessReview``, ...).

Each model lists its fields (``attribute_map``: the JSON names) and their types (``openapi_types``), which is
the API's OpenAPI document compiled into Python; the schema built from it is closed to unknown fields like
the others, so a misspelt field in a NetworkPolicy is caught as one in a Job is. Formats (quantities,
int-or-string, date-times) are not checked, only structure and JSON types.

    problems(obj)  # ["NetworkPolicy spec.podSelectr: unexpected field", ...] or []
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import kubernetes.client

from tests.k8s_schemas import K8sSchemas, SchemaError

_LIST = re.compile(r"list\[(.+)\]", re.IGNORECASE)
_DICT = re.compile(r"dict\((?:str|string), (.+)\)|dict\[str, (.+)\]", re.IGNORECASE)
_SCALARS = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "datetime": "string",
    "date": "string",
}


def _model(kind: str, api_version: str) -> type | None:
    version = api_version.rsplit("/", 1)[-1]
    name = f"{version[0].upper()}{version[1:]}{kind}"
    found = getattr(kubernetes.client, name, None)
    return found if isinstance(found, type) and hasattr(found, "openapi_types") else None


def _type_problems(value: Any, type_name: str, where: str) -> list[str]:
    if type_name == "object":
        return []
    if (scalar := _SCALARS.get(type_name)) is not None:
        ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }[scalar]
        return [] if ok else [f"{where}: {value!r} is not of type {scalar!r}"]
    if found := _LIST.fullmatch(type_name):
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not of type 'array'"]
        return [p for i, item in enumerate(value) for p in _type_problems(item, found[1], f"{where}.{i}")]
    if found := _DICT.fullmatch(type_name):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not of type 'object'"]
        inner = found[1] or found[2]
        return [p for k, item in value.items() for p in _type_problems(item, inner, f"{where}.{k}")]
    model = getattr(kubernetes.client, type_name, None)
    if not isinstance(model, type) or not hasattr(model, "openapi_types"):
        return []  # IntOrString and friends: not checked
    return _object_problems(value, model, where)


def _object_problems(value: Any, model: type, where: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{where}: {value!r} is not of type 'object'"]
    fields = {json_name: python for python, json_name in model.attribute_map.items()}  # type: ignore[attr-defined]
    types: dict[str, str] = model.openapi_types  # type: ignore[attr-defined]
    out = []
    for key, item in value.items():
        inner = f"{where}.{key}" if where else str(key)
        if key not in fields:
            out.append(f"{inner}: unexpected field ({model.__name__} has {sorted(fields)})")
        elif item is not None:
            out.extend(_type_problems(item, types[fields[key]], inner))
    return out


@functools.cache
def _official() -> K8sSchemas:
    return K8sSchemas.load()


def has_schema(obj: Mapping[str, Any]) -> bool:
    try:
        _official().schema_for(str(obj.get("apiVersion")), str(obj.get("kind")))
    except SchemaError:
        return _model(str(obj.get("kind")), str(obj.get("apiVersion"))) is not None
    return True


def problems(obj: Mapping[str, Any]) -> list[str]:
    """The official schema's problems where there is one, else those of the client model's schema."""
    api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
    try:
        _official().schema_for(api_version, kind)
    except SchemaError:
        model = _model(kind, api_version)
        if model is None:
            return [f"no schema for apiVersion {api_version!r} kind {kind!r}"]
        found = _object_problems(obj, model, "")
        name = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), Mapping) else None
        if kind not in ("TokenReview", "SubjectAccessReview") and not name:
            found.append("metadata.name: required")
        return [f"{kind} {p}" for p in found]
    return _official().problems(obj)


def validate(obj: Mapping[str, Any]) -> None:
    found = problems(obj)
    if found:
        raise SchemaError(f"{obj.get('kind')} does not validate:\n  " + "\n  ".join(found))


__all__ = ["has_schema", "problems", "validate"]
