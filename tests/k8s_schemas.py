"""Validate Kubernetes, Kueue and Knative objects against their official schemas, offline.

The schemas are vendored in ``tests/k8s-schemas`` (its README says where each comes from;
``ASSAY_K8S_SCHEMAS`` overrides the path): the OpenAPI v3 documents kube-apiserver 1.36 serves for
core/batch/apps/rbac/coordination and Kueue (v1beta1 and v1beta2), and the CRDs' ``openAPIV3Schema``
for Knative Serving and Eventing. A real API server with ``fieldValidation=Strict`` refuses unknown fields; the published
schemas do not say so, so every object schema that lists ``properties`` is closed here unless it
declares ``additionalProperties`` or ``x-kubernetes-preserve-unknown-fields``.

    validator = K8sSchemas.load()
    validator.validate(job_dict)            # raises SchemaError naming the path of each problem
    problems = validator.problems(job_dict) # or a list of "path: message" strings
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = Path(os.environ.get("ASSAY_K8S_SCHEMAS", REPO / "tests" / "k8s-schemas"))


class SchemaError(AssertionError):
    """An object does not validate; the message lists every problem with its JSON path."""


def _close(schema: Any) -> Any:
    """A copy of ``schema`` where object schemas with ``properties`` refuse unknown fields, and
    Kubernetes' int-or-string extension is spelled in JSON Schema."""
    if isinstance(schema, list):
        return [_close(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _close(v) for k, v in schema.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        out.pop("type", None)
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
        and not any(k in out for k in ("allOf", "anyOf", "oneOf"))
    ):
        out["additionalProperties"] = False
    return out


def _gvk_key(api_version: str, kind: str) -> tuple[str, str]:
    return api_version, kind


class K8sSchemas:
    """Schemas by ``(apiVersion, kind)``: OpenAPI v3 components and CRD versions."""

    def __init__(self, root: Path = SCHEMAS) -> None:
        if not root.is_dir():
            raise FileNotFoundError(f"the Kubernetes schemas are not at {root} (set ASSAY_K8S_SCHEMAS)")
        self.root = root
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self._registry: Registry[Any] = Registry()
        self._load_openapi()
        self._load_crds()

    @classmethod
    @functools.cache
    def load(cls) -> K8sSchemas:
        return cls()

    def _load_openapi(self) -> None:
        for path in sorted((self.root / "openapi-v3").glob("*.json")):
            document = json.loads(path.read_text())
            components = document.get("components", {}).get("schemas", {})
            closed = {name: _close(schema) for name, schema in components.items()}
            uri = f"urn:k8s:{path.stem}"
            wrapper = {"components": {"schemas": closed}}
            self._registry = self._registry.with_resource(uri, Resource(wrapper, specification=DRAFT202012))
            for name, schema in closed.items():
                for gvk in schema.get("x-kubernetes-group-version-kind", []):
                    group, version, kind = gvk.get("group", ""), gvk["version"], gvk["kind"]
                    api_version = f"{group}/{version}" if group else version
                    key = _gvk_key(api_version, kind)
                    # The same type appears in several documents (e.g. meta types): keep the first.
                    self._schemas.setdefault(key, {"$ref": f"{uri}#/components/schemas/{name}"})

    def _load_crds(self) -> None:
        for path in sorted((self.root / "crds").rglob("*.yaml")):
            for crd in yaml.safe_load_all(path.read_text()):
                if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    schema = version.get("schema", {}).get("openAPIV3Schema")
                    if not schema:
                        continue
                    closed = _close(schema)
                    # metadata is validated by the API server's ObjectMeta, not by the CRD schema.
                    closed.setdefault("properties", {})["metadata"] = {"type": "object"}
                    for field in ("apiVersion", "kind"):
                        closed["properties"].setdefault(field, {"type": "string"})
                    key = _gvk_key(f"{group}/{version['name']}", kind)
                    # An OpenAPI document for the same group (Kueue) wins; CRDs fill the rest.
                    self._schemas.setdefault(key, closed)

    def kinds(self) -> list[tuple[str, str]]:
        return sorted(self._schemas)

    def schema_for(self, api_version: str, kind: str) -> dict[str, Any]:
        try:
            return self._schemas[_gvk_key(api_version, kind)]
        except KeyError:
            raise SchemaError(f"no schema for apiVersion {api_version!r} kind {kind!r}") from None

    def problems(self, obj: Mapping[str, Any]) -> list[str]:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            return ["apiVersion and kind are required"]
        schema = self.schema_for(api_version, kind)
        validator = jsonschema.Draft202012Validator(schema, registry=self._registry)
        out = []
        for error in sorted(validator.iter_errors(copy.deepcopy(dict(obj))), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            out.append(f"{kind} {where}: {error.message}")
        out.extend(_metadata_problems(obj))
        return out

    def validate(self, obj: Mapping[str, Any]) -> None:
        problems = self.problems(obj)
        if problems:
            name = obj.get("metadata", {}).get("name", "?") if isinstance(obj.get("metadata"), dict) else "?"
            raise SchemaError(f"{obj.get('kind')}/{name} does not validate:\n  " + "\n  ".join(problems))

    def validate_all(self, objects: Iterator[Mapping[str, Any]] | list[Mapping[str, Any]]) -> int:
        count = 0
        for obj in objects:
            self.validate(obj)
            count += 1
        return count


def _metadata_problems(obj: Mapping[str, Any]) -> list[str]:
    """What the API server checks of every object's metadata beyond the schema: a DNS-1123 name."""
    import re

    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return [f"{obj.get('kind')} metadata: required"]
    name = metadata.get("name") or metadata.get("generateName")
    if not isinstance(name, str) or not name:
        return [f"{obj.get('kind')} metadata.name: required"]
    if len(name) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
        return [f"{obj.get('kind')} metadata.name: {name!r} is not a DNS-1123 subdomain"]
    problems = []
    for field in ("labels", "annotations"):
        values = metadata.get(field) or {}
        for key, value in values.items():
            if not isinstance(value, str):
                problems.append(f"{obj.get('kind')} metadata.{field}.{key}: values must be strings")
            elif field == "labels" and (
                len(value) > 63
                or (value and not re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", value))
            ):
                problems.append(
                    f"{obj.get('kind')} metadata.labels.{key}: {value!r} is not a valid label value"
                )
    return problems


__all__ = ["SCHEMAS", "K8sSchemas", "SchemaError"]
