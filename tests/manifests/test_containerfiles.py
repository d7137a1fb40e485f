"""The Containerfiles cannot be built here (no container engine): what can be checked without building —
pinned base images, a non-root user, sources that exist, extras and packages the project defines, entry
points that exist and are the ones the manifests and the Kubernetes runtime run."""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.manifests.rendering import KNATIVE, REPO, of_kind, render

FUNCTIONS_IMAGE = REPO / "functions" / "Containerfile"
SIDECAR_IMAGE = REPO / "adapters" / "sidecar" / "Containerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.argument)
        assert isinstance(value, list), f"{self.keyword} should use the exec (JSON) form"
        return [str(v) for v in value]


def parse(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, argument = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), argument.strip()))
        pending = ""
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    start = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[start:]


CONTAINERFILES = [FUNCTIONS_IMAGE, SIDECAR_IMAGE]
each = pytest.mark.parametrize("path", CONTAINERFILES, ids=["functions", "sidecar"])


@each
def test_base_images_are_pinned(path: Path) -> None:
    for ins in parse(path):
        if ins.keyword == "FROM":
            image = ins.argument.split()[0]
            if "@sha256:" in image:
                continue
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert re.match(r"\d+\.\d+\.\d+", tag), f"{path.name}: {image} is not pinned to a full version"


@each
def test_runs_as_a_non_root_user(path: Path) -> None:
    users = [ins.argument for ins in final_stage(parse(path)) if ins.keyword == "USER"]
    assert users, f"{path.name}: no USER in the final stage"
    user = users[-1].split(":")[0]
    # Numeric, so a pod's runAsNonRoot can be verified by the kubelet.
    assert user.isdigit() and int(user) != 0


@each
def test_copied_sources_exist(path: Path) -> None:
    for ins in parse(path):
        if ins.keyword == "COPY" and not ins.argument.startswith("--from"):
            *sources, _ = shlex.split(ins.argument)
            for source in sources:
                assert (REPO / source).exists(), f"{path.name}: COPY {source} does not exist"


def test_functions_image_installs_extras_the_project_defines() -> None:
    extras_defined = set(PYPROJECT["project"]["optional-dependencies"])
    installs = [
        ins.argument
        for ins in parse(FUNCTIONS_IMAGE)
        if ins.keyword == "RUN" and "pip install" in ins.argument
    ]
    requested = {
        e.strip()
        for run in installs
        for group in re.findall(r'"\.\[([^\]]*)\]"', run)
        for e in group.split(",")
    }
    assert "cluster" in requested, "dispatch and sweep need the kubernetes client"
    assert "tracking" in requested, "aggregate and sweep export to MLflow and OCI"
    assert requested <= extras_defined, f"unknown extras {sorted(requested - extras_defined)}"


def test_functions_image_serves_what_the_knative_services_run() -> None:
    instructions = final_stage(parse(FUNCTIONS_IMAGE))
    copied = [
        shlex.split(i.argument)
        for i in instructions
        if i.keyword == "COPY" and not i.argument.startswith("--")
    ]
    assert ["functions", "functions"] in copied, "uvicorn imports functions.<name>.main from the working dir"
    workdir = [i.argument for i in instructions if i.keyword == "WORKDIR"][-1]
    exposed = {int(i.argument) for i in instructions if i.keyword == "EXPOSE"}
    dependencies = {Requirement(d).name for d in PYPROJECT["project"]["dependencies"]}
    for service in of_kind(render(KNATIVE / "base"), "Service", "serving.knative.dev"):
        container = service["spec"]["template"]["spec"]["containers"][0]
        assert container["command"][0] == "uvicorn"
        assert "uvicorn" in dependencies
        module = container["command"][1].split(":")[0]
        assert (REPO / Path(*module.split("."))).with_suffix(".py").is_file()
        assert workdir == "/app"  # where functions/ is copied: uvicorn imports it from the working directory
        assert {p["containerPort"] for p in container["ports"]} <= exposed
    command = [i for i in instructions if i.keyword == "CMD"][-1].exec_form()
    module = command[1].split(":")[0]
    assert (REPO / Path(*module.split("."))).with_suffix(".py").is_file()


def test_sidecar_image_runs_the_sidecar_module_with_the_pod_config() -> None:
    instructions = final_stage(parse(SIDECAR_IMAGE))
    entrypoint = [i for i in instructions if i.keyword == "ENTRYPOINT"][-1].exec_form()
    command = [i for i in instructions if i.keyword == "CMD"][-1].exec_form()
    assert entrypoint == ["python", "-m", "adapters.sidecar"]
    assert (REPO / "adapters" / "sidecar" / "__main__.py").is_file()
    workdir = [i.argument for i in instructions if i.keyword == "WORKDIR"][-1]
    assert ["adapters/sidecar", "adapters/sidecar"] in [
        shlex.split(i.argument) for i in instructions if i.keyword == "COPY"
    ]
    assert workdir == "/app"  # python -m finds /app/adapters from the working directory
    # The Kubernetes runtime's sidecar container runs the same command (assay/runtimes/kubernetes/objects.py).
    objects = ast.parse((REPO / "assay" / "runtimes" / "kubernetes" / "objects.py").read_text())

    def leading_constants(node: ast.List) -> list[object]:
        out = []
        for element in node.elts:
            if not isinstance(element, ast.Constant):
                break
            out.append(element.value)
        return out

    wanted = [*entrypoint, *command]
    commands = [leading_constants(node) for node in ast.walk(objects) if isinstance(node, ast.List)]
    # The pod adds its own options after the image's (--host 127.0.0.1: loopback only).
    assert any(found[: len(wanted)] == wanted for found in commands)


def _optional_imports(tree: ast.AST) -> set[int]:
    """The nodes inside a ``try`` that handles ImportError: optional libraries, whose absence the code absorbs
    (the sidecar's own OpenTelemetry spans)."""
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            {"ImportError", "ModuleNotFoundError"}
            & {n.id for n in ast.walk(h.type) if isinstance(n, ast.Name)}
            for h in node.handlers
            if h.type is not None
        ):
            optional |= {id(n) for statement in node.body for n in ast.walk(statement)}
    return optional


def _third_party_imports(package: Path) -> set[str]:
    found = set()
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        optional = _optional_imports(tree)
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found |= {n.split(".")[0] for n in names}
    return {n for n in found if n not in sys.stdlib_module_names and n not in ("adapters", "__future__")}


def test_sidecar_image_installs_every_library_the_sidecar_imports_in_versions_the_project_allows() -> None:
    installs = [
        i.argument for i in parse(SIDECAR_IMAGE) if i.keyword == "RUN" and "pip install" in i.argument
    ]
    pins = {
        Requirement(token).name: Requirement(token)
        for run in installs
        for token in shlex.split(run.split("pip install", 1)[1])
        if not token.startswith("-")
    }
    imported = _third_party_imports(REPO / "adapters" / "sidecar")
    assert imported <= set(pins), f"the sidecar imports {sorted(imported - set(pins))}, which its image lacks"
    allowed = {Requirement(d).name: Requirement(d) for d in PYPROJECT["project"]["dependencies"]}
    for name, pin in pins.items():
        (exact,) = [s.version for s in pin.specifier if s.operator == "=="]
        if name in allowed:
            assert allowed[name].specifier.contains(exact), f"{name}=={exact} is outside {allowed[name]}"
