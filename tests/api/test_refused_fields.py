"""Fields Assay would otherwise accept and then ignore, or that MLflow would refuse only at export, are
refused at submission with a 400 naming the field (docs/compatibility.md, "Validation")."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from assay.api.jobs import JobRequest, mlflow_name_problem
from assay.core.plan import build_plan
from assay.errors import InvalidRequest
from tests.core.test_plan import providers

BASE: dict[str, Any] = {
    "name": "j",
    "model": {"url": "http://model.example/v1", "name": "m"},
    "benchmarks": [{"id": "arc_easy", "provider_id": "lm_eval"}],
}
COORDINATES = {"oci_host": "registry.example", "oci_repository": "team/evals"}


def refused_paths(body: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        JobRequest.model_validate(body)
    return [".".join(str(p) for p in e["loc"]) for e in caught.value.errors()]


def test_oci_signing_and_subject_are_refused_not_ignored() -> None:
    signing = {"oci": {"coordinates": COORDINATES, "signing": {"type": "key-pair", "secret_ref": "k"}}}
    assert refused_paths({**BASE, "exports": signing}) == ["exports.oci.signing"]
    subject = {
        "oci": {"coordinates": {**COORDINATES, "oci_subject": "registry.example/m@sha256:" + "0" * 64}}
    }
    assert refused_paths({**BASE, "exports": subject}) == ["exports.oci.coordinates.oci_subject"]
    JobRequest.model_validate(
        {**BASE, "exports": {"oci": {"coordinates": COORDINATES}}}
    )  # plain export: fine


@pytest.mark.parametrize("key", ["bad*key", "a//b", "../up", "/abs", "trailing/", "x" * 251])
def test_experiment_tag_keys_mlflow_refuses_are_refused_at_submit(key: str) -> None:
    body = {**BASE, "experiment": {"name": "e", "tags": [{"key": key, "value": "v"}]}}
    assert refused_paths(body) == ["experiment.tags.0.key"]


@pytest.mark.parametrize("key", ["team", "a/b", "run:1", "with space", "dots.and-dashes_ok"])
def test_experiment_tag_keys_mlflow_accepts_are_accepted(key: str) -> None:
    assert mlflow_name_problem(key) is None
    JobRequest.model_validate({**BASE, "experiment": {"name": "e", "tags": [{"key": key}]}})


def test_benchmark_parameter_names_mlflow_refuses_are_refused_when_the_job_is_tracked() -> None:
    bad = {"id": "arc_easy", "provider_id": "lm_eval", "parameters": {"ok": 1, "no*pe": 2}}
    tracked = JobRequest.model_validate({**BASE, "benchmarks": [bad], "experiment": {"name": "e"}})
    with pytest.raises(InvalidRequest) as caught:
        build_plan(tracked, providers=providers())
    assert [(e.path, e.code) for e in caught.value.errors] == [
        ("benchmarks[0].parameters.no*pe", "mlflow_name_invalid")
    ]
    untracked = JobRequest.model_validate({**BASE, "benchmarks": [bad]})
    build_plan(untracked, providers=providers())  # without MLflow the name is the adapter's business
