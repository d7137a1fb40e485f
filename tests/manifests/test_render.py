"""Every kustomization under knative/ and kueue/ renders with the real kustomize, and every object it renders
validates against its official schema (Kubernetes OpenAPI v3, Knative and Kueue CRDs), closed to unknown
fields as a strict API server is."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.k8s_schemas import K8sSchemas
from tests.kubernetes import client_schemas
from tests.manifests.rendering import KNATIVE, KUEUE, REPO, kustomizations, render

TREES = kustomizations(KNATIVE, KUEUE)


def test_the_trees_the_docs_name_are_all_rendered() -> None:
    rendered = {str(p.relative_to(REPO)) for p in TREES}
    assert {
        "knative",
        "knative/base",
        "knative/overlays/dev",
        "knative/overlays/production",
        "kueue",
        "kueue/base",
        "kueue/tenants/example",
    } <= rendered


@pytest.mark.parametrize("tree", TREES, ids=[str(p.relative_to(REPO)) for p in TREES])
def test_renders_and_every_object_validates(tree: Path) -> None:
    objects = render(tree)
    assert objects, f"{tree} renders nothing"
    # The official schemas; for kinds they lack (NetworkPolicy), the kubernetes client's models, closed too.
    problems = [p for o in objects for p in client_schemas.problems(o)]
    assert not problems, "\n".join(problems)
    identities = Counter(
        (o["apiVersion"].split("/")[0], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
        for o in objects
    )
    assert not [i for i, n in identities.items() if n > 1], "an object is rendered twice"


def test_the_schema_check_is_strict() -> None:
    """The check above would catch a misspelt field: the schemas are closed."""
    service = next(o for o in render(KNATIVE / "base") if o["kind"] == "Service")
    service["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    assert any("imagePulPolicy" in p for p in K8sSchemas.load().problems(service))
