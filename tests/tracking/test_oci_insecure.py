"""EvalHub's OCI_INSECURE is honoured by the hub's own OCI pushes: every registry over plain HTTP, as
ASSAY_OCI_INSECURE_REGISTRIES does for single hosts (docs/configuration.md)."""

from __future__ import annotations

import pytest

from assay.artifacts import OciRegistry
from assay.settings import Settings


@pytest.mark.parametrize("variable", ["OCI_INSECURE", "ASSAY_OCI_INSECURE"])
def test_oci_insecure_from_the_environment(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "true")
    assert Settings().oci_insecure is True
    monkeypatch.setenv(variable, "false")
    assert Settings().oci_insecure is False


def test_every_registry_or_the_named_ones_over_plain_http() -> None:
    everything = OciRegistry(insecure_hosts=("*",))
    assert everything._scheme("registry.example:5000") == "http"
    named = OciRegistry(insecure_hosts=("dev.local:5000",))
    assert named._scheme("dev.local:5000") == "http"
    assert named._scheme("registry.example") == "https"
