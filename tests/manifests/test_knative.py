"""knative/: what the rendered objects say agrees with the code — the Triggers with the event catalogue, the
Services with the functions' entry points and settings, RBAC with the Kubernetes calls the runtime makes,
the sources with the watcher's labels and the Kueue API version."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from assay.core.events import CATALOGUE, KUBERNETES_RESOURCE_EVENTS, REGISTRY_EVENTS
from assay.http import Role, routers
from assay.http.ops import router as ops_router
from assay.runtimes.kubernetes.objects import LABEL_MANAGED_BY, MANAGER
from assay.runtimes.kubernetes.runtime import KUEUE_GROUP, KUEUE_VERSION
from assay.settings import Settings
from tests.manifests.code_permissions import HARDWARE_PROFILES, function_permissions
from tests.manifests.rendering import KNATIVE, KUEUE, REPO, Obj, named, of_kind, render, selects

FUNCTIONS = ("submit", "callback", "dispatch", "aggregate", "sweep")
SERVICES = (*FUNCTIONS, "tenants")  # tenant onboarding: no database, no events of its own
OVERLAYS = {
    "base": KNATIVE / "base",
    "dev": KNATIVE / "overlays" / "dev",
    "production": KNATIVE / "overlays" / "production",
}
SERVING = "serving.knative.dev"
EVENTING = "eventing.knative.dev"
SOURCES = "sources.knative.dev"

overlays = pytest.mark.parametrize("overlay", list(OVERLAYS))


def objects(overlay: str) -> list[Obj]:
    return render(OVERLAYS[overlay])


def services(overlay: str) -> dict[str, Obj]:
    return {s["metadata"]["name"]: s for s in of_kind(objects(overlay), "Service", SERVING)}


def container(service: Obj) -> dict[str, Any]:
    containers = service["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "a Knative Service serves one container"
    return containers[0]  # type: ignore[no-any-return]


def routes(role: Role) -> set[tuple[str, str]]:
    return routes_of(routers(role))


def routes_of(routers: Any) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }


def refers_to_service(destination: dict[str, Any], name: str) -> bool:
    ref = destination.get("ref") or {}
    return ref == {"apiVersion": f"{SERVING}/v1", "kind": "Service", "name": name}


# -- Triggers -------------------------------------------------------------------------------------------


def expected_routing() -> set[tuple[str, str]]:
    """(CloudEvent type, consuming function) as the code defines it."""
    pairs = {(kind, function) for kind, consumers in CATALOGUE.items() for function in consumers}
    pairs |= {(kind, "sweep") for kind in KUBERNETES_RESOURCE_EVENTS}
    pairs |= {(kind, "callback") for kind in REGISTRY_EVENTS}  # the cluster-local ingress (issue 14)
    return pairs


@overlays
def test_triggers_route_exactly_the_catalogue(overlay: str) -> None:
    rendered = objects(overlay)
    triggers = of_kind(rendered, "Trigger", EVENTING)
    brokers = {b["metadata"]["name"] for b in of_kind(rendered, "Broker", EVENTING)}
    routed = []
    for trigger in triggers:
        spec = trigger["spec"]
        assert spec["broker"] in brokers, f"{trigger['metadata']['name']}: no Broker {spec['broker']!r}"
        # Exactly one exact-match attribute, the type: nothing narrower hides events from a consumer.
        assert spec["filter"] == {"attributes": {"type": spec["filter"]["attributes"]["type"]}}
        ref = spec["subscriber"]["ref"]
        assert (ref["apiVersion"], ref["kind"]) == (f"{SERVING}/v1", "Service")
        assert ref["name"] in services(overlay), f"subscriber {ref['name']} is not a Service here"
        routed.append((spec["filter"]["attributes"]["type"], ref["name"]))
    assert len(routed) == len(set(routed)), "two Triggers deliver the same type to the same function"
    assert set(routed) == expected_routing()


def test_registry_events_go_to_callbacks_ingress_route_and_the_rest_to_the_function_root() -> None:
    # The registry ingress is on the cluster-local callback service, not the public submit one (issue 14).
    callback_routes = routes("callback")
    assert ("POST", "/api/v1/events") not in routes("submit")
    for trigger in of_kind(objects("base"), "Trigger", EVENTING):
        subscriber = trigger["spec"]["subscriber"]
        if "uri" in subscriber:
            assert subscriber["ref"]["name"] == "callback"
            assert ("POST", subscriber["uri"]) in callback_routes
        else:
            assert "uri" not in subscriber  # the event functions take CloudEvents at /


# -- Broker and delivery --------------------------------------------------------------------------------

_ISO_DURATION = re.compile(r"P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")


@overlays
def test_broker_delivery_is_explicit_and_dead_letters_go_to_the_recorder(overlay: str) -> None:
    (broker,) = of_kind(objects(overlay), "Broker", EVENTING)
    delivery = broker["spec"]["delivery"]
    assert isinstance(delivery["retry"], int) and delivery["retry"] >= 1
    assert delivery["backoffPolicy"] in ("linear", "exponential")
    assert _ISO_DURATION.fullmatch(delivery["backoffDelay"])
    assert _ISO_DURATION.fullmatch(delivery["timeout"])
    sink = delivery["deadLetterSink"]
    assert refers_to_service(sink, "callback")
    assert "callback" in services(overlay)
    assert ("POST", sink["uri"]) in routes("callback")
    # The sink subscribes to nothing but the registry's events (its cluster-local ingress): the failures that
    # dead-letter the lifecycle's events do not take it down too.
    for trigger in of_kind(objects(overlay), "Trigger", EVENTING):
        if trigger["spec"]["subscriber"]["ref"]["name"] == "callback":
            assert trigger["spec"]["filter"]["attributes"]["type"] in REGISTRY_EVENTS


def test_dev_uses_the_channel_based_broker_and_production_the_kafka_broker() -> None:
    class_annotation = "eventing.knative.dev/broker.class"
    (dev,) = of_kind(objects("dev"), "Broker", EVENTING)
    assert dev["metadata"]["annotations"][class_annotation] == "MTChannelBasedBroker"
    assert dev["spec"]["config"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "config-br-default-channel",
        "namespace": "knative-eventing",
    }
    production_objects = objects("production")
    (production,) = of_kind(production_objects, "Broker", EVENTING)
    assert production["metadata"]["annotations"][class_annotation] == "Kafka"
    config = production["spec"]["config"]
    kafka = named(production_objects, "ConfigMap", config["name"], "v1")
    assert kafka["metadata"]["namespace"] == config["namespace"] == production["metadata"]["namespace"]
    assert {"bootstrap.servers", "default.topic.partitions", "default.topic.replication.factor"} <= set(
        kafka["data"]
    )
    assert class_annotation not in (
        of_kind(objects("base"), "Broker", EVENTING)[0]["metadata"].get("annotations") or {}
    )


# -- Services ------------------------------------------------------------------------------------------


def _documented_command(function: str) -> list[str]:
    """The command line the docstring of functions/<function>/main.py gives, ``$PORT`` as 8080."""
    source = (REPO / "functions" / function / "main.py").read_text()
    docstring = ast.get_docstring(ast.parse(source)) or ""
    (line,) = [
        line.strip()
        for line in docstring.splitlines()
        if line.strip().startswith(("uvicorn ", "functions-framework "))
    ]
    return shlex.split(line.replace("$PORT", "8080"))


_FLAGS = {"--asgi", "--no-access-log", "--debug"}


def _parse(argv: list[str]) -> tuple[str, list[str], dict[str, str | None]]:
    program, positional, options = argv[0], [], {}
    rest = iter(argv[1:])
    for token in rest:
        if token in _FLAGS:
            options[token] = None
        elif token.startswith("--"):
            options[token] = next(rest)
        else:
            positional.append(token)
    return program, positional, options


@pytest.mark.parametrize("function", SERVICES)
def test_each_service_runs_its_functions_documented_entry_point(function: str) -> None:
    service = services("base")[function]
    main = container(service)
    argv = [*main["command"], *main.get("args", [])]
    program, positional, options = _parse(argv)
    documented_program, documented_positional, documented_options = _parse(_documented_command(function))
    assert (program, positional) == (documented_program, documented_positional)
    assert documented_options.items() <= options.items()
    assert options["--host"] == "0.0.0.0"
    assert [p["containerPort"] for p in main["ports"]] == [int(str(options["--port"]))]
    # One start-up path for the hub's functions: uvicorn serves the module's ASGI app (functions-framework, whose
    # package loads Flask at import, is not on any function's cold start: docs/performance.md).
    assert program == "uvicorn"
    assert options["--no-access-log"] is None
    module, attribute = positional[0].split(":")
    assert module == f"functions.{function}.main"
    tree = ast.parse((REPO / Path(*module.split(".")).with_suffix(".py")).read_text())
    assert any(
        isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == attribute for t in n.targets)
        for n in tree.body
    )
    if function not in ("submit", "callback"):
        # The event functions keep a plain endpoint named after them (one ``request`` argument, no decorator),
        # which ``functions-framework --asgi --target <function>`` serves as an HTTP function.
        target = next(n for n in tree.body if isinstance(n, ast.AsyncFunctionDef) and n.name == function)
        assert [a.arg for a in target.args.args] == ["request"]
        assert target.decorator_list == []


@overlays
def test_one_image_for_all_functions(overlay: str) -> None:
    found = services(overlay)
    assert set(found) == set(SERVICES)
    images = {container(s)["image"] for s in found.values()}
    assert len(images) == 1
    (image,) = images
    assert ":" in image.rsplit("/", 1)[-1], f"{image} has no tag"


_AUTOSCALING = "autoscaling.knative.dev/"
_KNOWN_AUTOSCALING = {
    "class",
    "metric",
    "target",
    "min-scale",
    "max-scale",
    "initial-scale",
    "scale-down-delay",
    "window",
    "target-utilization-percentage",
}


def _scale_problems(service: Obj) -> list[str]:
    template = service["spec"]["template"]
    annotations = template["metadata"].get("annotations") or {}
    spec = template["spec"]
    name = service["metadata"]["name"]
    problems = []
    scaling = {k[len(_AUTOSCALING) :]: v for k, v in annotations.items() if k.startswith(_AUTOSCALING)}
    for key, value in scaling.items():
        if key not in _KNOWN_AUTOSCALING:
            problems.append(f"{name}: unknown annotation {_AUTOSCALING}{key}")
        if not isinstance(value, str):
            problems.append(f"{name}: {key} must be a string")
    autoscaler = scaling.get("class", "kpa.autoscaling.knative.dev")
    if autoscaler not in ("kpa.autoscaling.knative.dev", "hpa.autoscaling.knative.dev"):
        problems.append(f"{name}: class {autoscaler}")
    metrics = ("concurrency", "rps") if autoscaler.startswith("kpa") else ("cpu", "memory")
    if scaling.get("metric", metrics[0]) not in metrics:
        problems.append(f"{name}: metric {scaling['metric']} with {autoscaler}")
    bounds = {}
    for key in ("min-scale", "max-scale", "initial-scale"):
        if key in scaling:
            if not str(scaling[key]).isdigit():
                problems.append(f"{name}: {key} {scaling[key]!r} is not a non-negative integer")
            else:
                bounds[key] = int(scaling[key])
    if bounds.get("max-scale", 0) and bounds.get("min-scale", 0) > bounds["max-scale"]:
        problems.append(f"{name}: min-scale above max-scale")
    concurrency = spec.get("containerConcurrency")
    if not isinstance(concurrency, int) or not 0 < concurrency <= 1000:
        problems.append(f"{name}: containerConcurrency must be set (1..1000)")
    if "target" in scaling:
        try:
            target = float(scaling["target"])
        except ValueError:
            target = -1
        if not 0 < target <= (concurrency or 1000):
            problems.append(f"{name}: target {scaling['target']} outside (0, containerConcurrency]")
    timeout = spec.get("timeoutSeconds")
    if not isinstance(timeout, int) or not 0 < timeout <= 600:  # 600: Knative's default max-revision-timeout
        problems.append(f"{name}: timeoutSeconds must be set (1..600)")
    return problems


@overlays
def test_scale_to_zero_concurrency_and_timeouts_are_set_and_valid(overlay: str) -> None:
    found = services(overlay)
    problems = [p for s in found.values() for p in _scale_problems(s)]
    assert not problems, "\n".join(problems)
    for name, service in found.items():
        minimum = int(service["spec"]["template"]["metadata"]["annotations"][f"{_AUTOSCALING}min-scale"])
        if overlay == "base" and name != "submit":
            assert minimum == 0, f"{name} must scale to zero"
        if name == "submit":
            assert minimum >= 1, "submit keeps a warm pod for users"


def test_the_scale_check_catches_bad_values() -> None:
    service = services("base")["dispatch"]
    annotations = service["spec"]["template"]["metadata"]["annotations"]
    annotations[f"{_AUTOSCALING}min-scale"] = "-1"
    annotations[f"{_AUTOSCALING}target"] = "1000"
    annotations[f"{_AUTOSCALING}minscale"] = "1"
    del service["spec"]["template"]["spec"]["timeoutSeconds"]
    assert len(_scale_problems(service)) == 4


def test_probes_hit_routes_the_apps_serve() -> None:
    served = {path for _, path in routes_of([ops_router])}
    for name, service in services("base").items():
        main = container(service)
        for probe in ("readinessProbe", "livenessProbe"):
            check = main[probe]
            if name in ("submit", "callback"):
                assert check["httpGet"]["path"] in served
            else:
                assert "tcpSocket" in check  # a CloudEvent function answers POST only
        assert main["resources"]["requests"] and main["resources"]["limits"]["memory"]
        assert main["securityContext"]["runAsNonRoot"] is True
        assert main["securityContext"]["allowPrivilegeEscalation"] is False


def _setting_names() -> dict[str, str]:
    """Environment variable -> Settings field, as pydantic-settings reads them."""
    names = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None) if alias is not None else None
        for name in choices or [f"ASSAY_{field.upper()}"]:
            names[str(name)] = field
    return names


def _environment(rendered: list[Obj], service: Obj) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    main = container(service)
    values: dict[str, str] = {}
    for source in main.get("envFrom", []):
        values.update(named(rendered, "ConfigMap", source["configMapRef"]["name"], "v1")["data"])
    secrets = {}
    for variable in main.get("env", []):
        if "value" in variable:
            values[variable["name"]] = variable["value"]
        else:
            secrets[variable["name"]] = variable["valueFrom"]
    return values, secrets


@overlays
@pytest.mark.parametrize("function", FUNCTIONS)
def test_settings_are_named_as_in_assay_settings_and_parse(
    overlay: str, function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = objects(overlay)
    values, secrets = _environment(rendered, services(overlay)[function])
    known = _setting_names()
    unknown = sorted(name for name in [*values, *secrets] if name not in known)
    assert not unknown, f"{function}: no setting reads {unknown} (assay/settings.py)"
    assert secrets["DATABASE_URL"]["secretKeyRef"]["key"] == "url"
    if overlay == "dev":  # the dev overlay brings the Secret; production expects it to exist
        secret = named(rendered, "Secret", secrets["DATABASE_URL"]["secretKeyRef"]["name"], "v1")
        assert "url" in secret.get("data", {}) or "url" in secret.get("stringData", {})
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", "postgresql://assay@db/assay")
    settings = Settings()
    assert settings.mode == "cluster"
    # Every function: submit and policy sync validate providers against the runtime benchmarks run on.
    assert settings.runtime == "kubernetes"
    assert settings.public_url is not None and settings.public_url.startswith("http://callback.")


def test_the_callback_url_adapters_get_is_the_callback_service() -> None:
    rendered = objects("base")
    values, _ = _environment(rendered, services("base")["dispatch"])
    namespace = services("base")["callback"]["metadata"]["namespace"]
    assert values["ASSAY_PUBLIC_URL"] == f"http://callback.{namespace}.svc.cluster.local"
    assert values["ASSAY_K8S_SIDECAR_IMAGE"] == Settings.model_fields["k8s_sidecar_image"].default


# -- Sources -------------------------------------------------------------------------------------------


@overlays
def test_every_function_gets_k_sink_from_the_sinkbinding(overlay: str) -> None:
    rendered = objects(overlay)
    (binding,) = of_kind(rendered, "SinkBinding", SOURCES)
    subject = binding["spec"]["subject"]
    assert (subject["apiVersion"], subject["kind"]) == (f"{SERVING}/v1", "Service")
    bound = {n for n, s in services(overlay).items() if selects(subject["selector"], s["metadata"]["labels"])}
    assert bound == set(FUNCTIONS)  # every function publishes (outbox -> K_SINK)
    sink = binding["spec"]["sink"]["ref"]
    assert sink["kind"] == "Broker" and named(rendered, "Broker", sink["name"], EVENTING)


def test_the_pingsource_ticks_the_sweep() -> None:
    rendered = objects("base")
    ping = named(rendered, "PingSource", "assay-sweep", SOURCES)
    assert len(ping["spec"]["schedule"].split()) == 5
    assert refers_to_service(ping["spec"]["sink"], "sweep")
    repair = named(rendered, "PingSource", "assay-tenants", SOURCES)
    assert refers_to_service(repair["spec"]["sink"], "tenants")


def test_the_apiserversource_watches_what_the_runtime_creates() -> None:
    rendered = objects("base")
    source = named(rendered, "ApiServerSource", "assay-watch", SOURCES)
    spec = source["spec"]
    assert spec["mode"] == "Resource"  # the watcher reads labels and status from the object
    kinds = {(r["apiVersion"], r["kind"]): r.get("selector") for r in spec["resources"]}
    assert set(kinds) == {("batch/v1", "Job"), ("v1", "Pod"), (f"{KUEUE_GROUP}/{KUEUE_VERSION}", "Workload")}
    for kind in (("batch/v1", "Job"), ("v1", "Pod")):
        assert kinds[kind] == {"matchLabels": {LABEL_MANAGED_BY: MANAGER}}
    assert spec["sink"]["ref"]["kind"] == "Broker"
    account = named(rendered, "ServiceAccount", spec["serviceAccountName"], "v1")
    tenant = named(render(KUEUE / "tenants" / "example"), "Namespace", "team-a", "v1")
    assert selects(spec["namespaceSelector"], tenant["metadata"]["labels"])
    assert not selects(spec["namespaceSelector"], {"kubernetes.io/metadata.name": "default"})
    # ...and may watch them there: get/list/watch on each kind, through the tenant's RoleBinding.
    granted = _granted_in_tenant(account["metadata"]["name"], source["metadata"]["namespace"])
    plural = {"Job": ("batch", "jobs"), "Pod": ("", "pods"), "Workload": (KUEUE_GROUP, "workloads")}
    for _, kind in kinds:
        group, resource = plural[kind]
        assert {(group, resource, verb) for verb in ("get", "list", "watch")} <= granted


# -- RBAC ------------------------------------------------------------------------------------------------


def _rules(role: Obj) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _granted_in_tenant(account: str, namespace: str) -> set[tuple[str, str, str]]:
    """What the example tenant's RoleBindings grant ``namespace/account`` in the tenant namespace."""
    cluster_roles = {r["metadata"]["name"]: r for r in of_kind(objects("base"), "ClusterRole")}
    granted: set[tuple[str, str, str]] = set()
    for binding in of_kind(render(KUEUE / "tenants" / "example"), "RoleBinding"):
        subjects = binding["subjects"]
        if {"kind": "ServiceAccount", "name": account, "namespace": namespace} in subjects:
            assert binding["roleRef"]["kind"] == "ClusterRole"
            granted |= _rules(cluster_roles[binding["roleRef"]["name"]])
    return granted


@pytest.mark.parametrize("function", FUNCTIONS)
def test_rbac_grants_exactly_the_kubernetes_calls_the_code_makes(function: str) -> None:
    service = services("base")[function]
    spec = service["spec"]["template"]["spec"]
    account = named(objects("base"), "ServiceAccount", spec["serviceAccountName"], "v1")
    needed = function_permissions(function) if function in ("dispatch", "sweep", "submit") else set()
    granted = _granted_in_tenant(account["metadata"]["name"], account["metadata"]["namespace"])
    in_tenant = {p for p in needed if p[0] != HARDWARE_PROFILES}  # those are read where the profiles live
    assert granted == in_tenant, f"{function}: granted {sorted(granted)}, the code needs {sorted(in_tenant)}"
    reviews = function in ("submit", "callback")  # TokenReview + SubjectAccessReview of callers
    if not needed and not reviews:
        assert spec.get("automountServiceAccountToken") is False
        assert account.get("automountServiceAccountToken") is False


def test_the_rbac_check_would_notice_a_missing_verb() -> None:
    needed = function_permissions("dispatch")
    assert ("batch", "jobs", "create") in needed and ("kueue.x-k8s.io", "localqueues", "get") in needed
    # Dispatch reads a Secret a job names (its labels) and creates the launch's credential; sweep reads none.
    assert ("", "secrets", "get") in needed and ("", "secrets", "create") in needed
    assert ("", "secrets", "get") not in function_permissions("sweep")
    # Submit reads pod logs in a cluster: it finds the pod and reads its log, and may do nothing else.
    assert function_permissions("submit") == {("", "pods", "list"), ("", "pods/log", "get")}


def test_no_function_is_granted_anything_cluster_wide() -> None:
    rendered = objects("base")
    for binding in of_kind(rendered, "ClusterRoleBinding"):
        role = named(rendered, "ClusterRole", binding["roleRef"]["name"])
        if binding["metadata"]["name"] == "assay-tenants":
            # Onboarding writes in namespaces that do not exist yet: exactly these, no Secrets, no Jobs, no pods
            # (tests/kubernetes/test_onboarding.py runs it with these rules on the RBAC-checking API server).
            assert _rules(role) == {
                ("", "namespaces", "get"),
                ("", "namespaces", "list"),
                ("rbac.authorization.k8s.io", "clusterroles", "bind"),
                *{
                    (group, resource, verb)
                    for group, resource in (
                        ("rbac.authorization.k8s.io", "rolebindings"),
                        ("networking.k8s.io", "networkpolicies"),
                        ("", "configmaps"),
                        ("kueue.x-k8s.io", "localqueues"),
                        ("kueue.x-k8s.io", "clusterqueues"),
                    )
                    for verb in ("create", "delete", "get", "update")
                },
                ("kueue.x-k8s.io", "clusterqueues", "list"),
            }
            assert [s["name"] for s in binding["subjects"]] == ["assay-tenants"]
            continue
        if binding["metadata"]["name"] == "assay-reviewer":
            # Reviews of callers' tokens and access: create-only, no object read, for the two HTTP functions.
            assert _rules(role) == {
                ("authentication.k8s.io", "tokenreviews", "create"),
                ("authorization.k8s.io", "subjectaccessreviews", "create"),
            }
            assert [s["name"] for s in binding["subjects"]] == ["assay-submit", "assay-callback"]
            continue
        # Only the ApiServerSource may list namespaces (its namespaceSelector); nothing else is cluster-wide.
        assert _rules(role) <= {("", "namespaces", verb) for verb in ("get", "list", "watch")}
        assert [s["name"] for s in binding["subjects"]] == ["assay-apiserversource"]


def test_dispatch_may_read_hardware_profiles_only_where_they_live() -> None:
    """knative/hardware-profiles binds exactly what the code reads of HardwareProfiles, for dispatch alone, in
    the profiles' namespace (ASSAY_K8S_HARDWARE_PROFILES_NAMESPACE); nothing in a tenant namespace."""
    needed = {p for p in function_permissions("dispatch") if p[0] == HARDWARE_PROFILES}
    assert needed == {(HARDWARE_PROFILES, "hardwareprofiles", "get")}
    for other in ("sweep", "submit"):
        assert not {p for p in function_permissions(other) if p[0] == HARDWARE_PROFILES}
    (binding,) = of_kind(render(KNATIVE / "hardware-profiles"), "RoleBinding")
    assert binding["metadata"]["namespace"] == "opendatahub"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "assay-dispatch", "namespace": "assay"}]
    role = named(objects("base"), "ClusterRole", binding["roleRef"]["name"])
    assert _rules(role) == needed
    assert not {r for r in _granted_in_tenant("assay-dispatch", "assay") if r[0] == HARDWARE_PROFILES}
