"""The Kubernetes API calls each function makes, read from the code (not from a list kept by hand).

``assay/runtimes/kubernetes/runtime.py`` reaches the API through ``self._batch``, ``self._core`` and
``self._custom`` (the official client's BatchV1Api, CoreV1Api and CustomObjectsApi); each method's calls,
followed through the methods it calls, give ``(api group, resource, verb)`` triples. The functions' entry
modules name the lifecycle handler they host, and the handlers (``assay/lifecycle/handlers.py``, followed
through the module's helpers) name the runtime methods they call. The submit function's logs routes
(``assay/http/jobs.py``) use the pod-log reader (``PodLogs`` of ``assay/runtimes/kubernetes/logs.py``): all
of its calls are submit's.
"""

from __future__ import annotations

import ast
import re

from tests.manifests.rendering import REPO

RUNTIME = REPO / "assay" / "runtimes" / "kubernetes" / "runtime.py"
LOGS = REPO / "assay" / "runtimes" / "kubernetes" / "logs.py"
HANDLERS = REPO / "assay" / "lifecycle" / "handlers.py"
ROUTES = REPO / "assay" / "http" / "jobs.py"

Permission = tuple[str, str, str]  # (api group, resource, verb)

_CLIENTS = {"_batch": "batch", "_core": "", "_custom": "kueue.x-k8s.io"}
# Custom objects name their group first: the constant the code passes, else Kueue's.
_GROUPS = {"KUEUE_GROUP": "kueue.x-k8s.io", "HARDWARE_PROFILE_GROUP": "infrastructure.opendatahub.io"}
HARDWARE_PROFILES = "infrastructure.opendatahub.io"
"""Read in ASSAY_K8S_HARDWARE_PROFILES_NAMESPACE, not in tenant namespaces (knative/hardware-profiles)."""
_VERBS = {
    "create": "create",
    "read": "get",
    "get": "get",
    "list": "list",
    "delete": "delete",
    "patch": "patch",
}
_OPERATION = re.compile(r"(create|read|get|list|delete|patch|replace)_namespaced_(\w+)")


def _client_operation(node: ast.AST) -> tuple[str, str] | None:
    """``self._batch.create_namespaced_job`` -> ("_batch", "create_namespaced_job")."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
        and node.value.attr in _CLIENTS
    ):
        return node.value.attr, node.attr
    return None


def _permissions_in_call(call: ast.Call) -> set[Permission]:
    found: set[Permission] = set()
    for position, argument in enumerate([call.func, *call.args]):
        operation = _client_operation(argument)
        if operation is None:
            continue
        client, name = operation
        match = _OPERATION.fullmatch(name)
        assert match, f"unknown client operation {name}"
        verb = _VERBS[match[1] if match[1] != "replace" else "patch"]
        if match[2] == "pod_log":  # a subresource
            found.add(("", "pods/log", verb))
        elif match[2] == "custom_object":
            # The plural is the first string among the arguments after the operation (group, version come first).
            plural = next(
                a.value
                for a in call.args[position:]
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            )
            first = call.args[position] if len(call.args) > position else None
            group = (
                _GROUPS.get(first.id, _CLIENTS[client]) if isinstance(first, ast.Name) else _CLIENTS[client]
            )
            found.add((group, plural, verb))
        else:
            found.add((_CLIENTS[client], match[2].replace("_", "") + "s", verb))
    return found


def runtime_permissions(path: str = "", cls: str = "KubernetesRuntime") -> dict[str, set[Permission]]:
    """For each method of ``cls`` (in ``path``, default the runtime): the API permissions it needs, its
    callees' included."""
    tree = ast.parse((REPO / path if path else RUNTIME).read_text())
    runtime = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    methods = {n.name: n for n in runtime.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    direct: dict[str, set[Permission]] = {}
    calls: dict[str, set[str]] = {}
    for name, method in methods.items():
        direct[name], calls[name] = set(), set()
        for node in ast.walk(method):
            if isinstance(node, ast.Call):
                direct[name] |= _permissions_in_call(node)
            operation = _client_operation(node)
            if operation is not None and not any(
                node in [c.func, *c.args] for c in ast.walk(method) if isinstance(c, ast.Call)
            ):
                raise AssertionError(f"{name} uses {operation} outside a call: extend {__name__}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and node.attr in methods
            ):
                calls[name].add(node.attr)

    def closure(name: str, seen: frozenset[str] = frozenset()) -> set[Permission]:
        out = set(direct[name])
        for callee in calls[name] - seen - {name}:
            out |= closure(callee, seen | {name})
        return out

    return {name: closure(name) for name in methods}


def _handler_of(function: str) -> str:
    """The lifecycle handler the function's entry module hosts (``handlers.<name>``)."""
    tree = ast.parse((REPO / "functions" / function / "main.py").read_text())
    names = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "handlers"
    }
    assert len(names) == 1, f"functions/{function}/main.py hosts {sorted(names)}"
    return names.pop()


def runtime_methods_used(function: str, methods: set[str]) -> set[str]:
    """The runtime methods (among ``methods``) that the handler of ``function`` reaches."""
    tree = ast.parse(HANDLERS.read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    used: set[str] = set()
    todo, seen = [_handler_of(function)], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(functions[name]):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in methods
            ):
                used.add(node.func.attr)
            if isinstance(node, ast.Name) and node.id in functions:
                todo.append(node.id)
    return used


def log_reader_permissions() -> set[Permission]:
    """What the pod-log reader needs, all methods together."""
    return set().union(*runtime_permissions(str(LOGS.relative_to(REPO)), "PodLogs").values())


def function_permissions(function: str) -> set[Permission]:
    if function == "submit":
        # The logs routes read pod logs in a cluster (the one Kubernetes use of the submit function).
        return log_reader_permissions() if "PodLogs" in ROUTES.read_text() else set()
    per_method = runtime_permissions()
    public = {name for name, needs in per_method.items() if needs and not name.startswith("_")}
    return set().union(*(per_method[m] for m in runtime_methods_used(function, public)))
