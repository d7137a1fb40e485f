"""PATCH for providers and collections: an RFC 6902 JSON Patch array or an RFC 7396 merge-patch object.

eval-hub-sdk and the ``evalhub`` CLI send objects, EvalHub 1.0.2 only took arrays; both are
accepted. Either way the same allow-list of top-level fields applies, and the caller re-validates
the patched document with the same rules as create.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from assay.errors import FieldError, InvalidRequest

_OPS = {"add", "remove", "replace", "test"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _top_field(path: object, index: int) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise InvalidRequest(
            f"patch[{index}].path must be a JSON pointer below the document root, got {path!r}",
            message_code="invalid_patch_operation",
            errors=[FieldError(f"patch[{index}].path", "invalid", "not a JSON pointer to a field")],
        )
    return path[1:].split("/", 1)[0].replace("~1", "/").replace("~0", "~")


def apply_patch(document: dict[str, Any], patch: object, patchable: Iterable[str]) -> dict[str, Any]:
    """Apply ``patch`` to ``document`` touching only ``patchable`` top-level fields."""
    allowed = frozenset(patchable)
    if isinstance(patch, dict):
        refused = sorted(k for k in patch if k not in allowed)
        if refused:
            raise InvalidRequest(
                f"These fields cannot be patched: {', '.join(refused)}",
                message_code="unallowed_patch",
                errors=[FieldError(k, "unallowed_patch", f"{k!r} cannot be patched") for k in refused],
            )
        patched = merge_patch(document, patch)
        assert isinstance(patched, dict)
        return patched
    if not isinstance(patch, list) or not patch:
        raise InvalidRequest(
            "A PATCH body is a JSON merge-patch object or a non-empty JSON Patch array",
            message_code="invalid_json_request",
        )
    errors: list[FieldError] = []
    refused_fields: list[str] = []
    for index, op in enumerate(patch):
        if not isinstance(op, dict) or op.get("op") not in _OPS:
            kind = op.get("op") if isinstance(op, dict) else op
            raise InvalidRequest(
                f"patch[{index}]: op {kind!r} is not one of add, remove, replace, test",
                message_code="invalid_patch_operation",
                errors=[FieldError(f"patch[{index}].op", "enum", "must be add, remove, replace or test")],
            )
        field = _top_field(op.get("path"), index)
        if field not in allowed:
            refused_fields.append(field)
            errors.append(
                FieldError(f"patch[{index}].path", "unallowed_patch", f"{field!r} cannot be patched")
            )
    if errors:
        raise InvalidRequest(
            f"These fields cannot be patched: {', '.join(refused_fields)}",
            message_code="unallowed_patch",
            errors=errors,
        )
    import jsonpatch  # only PATCH requests need it; keeps it off the cold-start path

    try:
        patched = jsonpatch.apply_patch(document, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise InvalidRequest(
            f"The patch does not apply: {exc}",
            message_code="invalid_patch_operation",
            errors=[FieldError("patch", "invalid_patch_operation", str(exc))],
        ) from None
    if not isinstance(patched, dict):
        raise InvalidRequest("The patch must leave an object", message_code="invalid_patch_operation")
    return patched


__all__ = ["apply_patch", "merge_patch"]
