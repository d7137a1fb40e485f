"""Render the kustomize trees of the repository with the real kustomize (``kubectl kustomize``, or a standalone
``kustomize build``), and small helpers over the rendered objects."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KNATIVE = REPO / "knative"
KUEUE = REPO / "kueue"

Obj = dict[str, Any]


def _command() -> list[str]:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    pytest.fail(
        "neither kubectl nor kustomize is on PATH: the manifests are rendered with the real kustomize "
        "(the machine image ships kubectl; elsewhere install kubectl or kustomize)"
    )


@functools.cache
def _render(directory: Path) -> tuple[Obj, ...]:
    done = subprocess.run(
        [*_command(), str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"kustomize failed on {directory.relative_to(REPO)}:\n{done.stderr}")
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def render(directory: Path) -> list[Obj]:
    """The objects ``kubectl kustomize <directory>`` renders (fresh copies: tests may change them)."""
    return yaml.safe_load(yaml.safe_dump(list(_render(directory.resolve()))))  # type: ignore[no-any-return]


def kustomizations(*roots: Path) -> list[Path]:
    """Every directory under ``roots`` whose kustomization renders on its own (Components only as parts)."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("kustomization.yaml")):
            if yaml.safe_load(path.read_text()).get("kind", "Kustomization") == "Kustomization":
                found.append(path.parent)
    return found


def of_kind(objects: Iterable[Obj], kind: str, api_group: str | None = None) -> list[Obj]:
    return [
        o
        for o in objects
        if o["kind"] == kind
        and (
            api_group is None
            or o["apiVersion"].rsplit("/", 1)[0] == api_group
            or o["apiVersion"] == api_group
        )
    ]


def named(objects: Iterable[Obj], kind: str, name: str, api_group: str | None = None) -> Obj:
    matches = [o for o in of_kind(objects, kind, api_group) if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions) selects ``labels``."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
        if operator == "In" and (not present or labels[key] not in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
    return True
