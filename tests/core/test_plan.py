"""Expanding a job request into its frozen plan, and the request rules checked before that.

The EvalHub 1.0.2 defects these guard against are in docs/compatibility.md:
override parameters leaking to every benchmark of a provider, override weight/score/threshold ignored,
duplicated benchmarks sharing one configuration. (A job for a provider that cannot run is accepted and
failed at once, as in EvalHub.)
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.api import CollectionSpec, MetricScale, ProviderSpec
from assay.api.jobs import JobRequest
from assay.core import parse_model
from assay.core.plan import DEFAULT_COMPOSITE_THRESHOLD, Plan, build_plan
from assay.errors import FieldError, InvalidRequest, NotFound

UNIT = {"min": 0.0, "max": 1.0}
MODEL = {"url": "http://vllm.example:8000/v1", "name": "granite-3b"}
PRE_RECORDED = {
    "s3": {"bucket": "b", "key": "answers.jsonl", "secret_ref": "s3"},
    "type": "pre_recorded_data",
}

LM_EVAL = {
    "id": "lm_eval",
    "name": "lm-evaluation-harness",
    "runtime": {
        "local": {"command": "python -m lm_eval_adapter", "env": [{"name": "HF_HOME", "value": "/c"}]}
    },
    "benchmarks": [
        {
            "id": "arc_easy",
            "name": "ARC easy",
            "category": "reasoning",
            "metrics": ["acc", "acc_norm"],
            "primary_score": {"metric": "acc", "scale": UNIT},
            "pass_criteria": {"threshold": 0.5},
        },
        {
            "id": "mmlu",
            "name": "MMLU",
            "category": "knowledge",
            "metrics": ["acc"],
            "primary_score": {"metric": "acc", "scale": UNIT},
            "pass_criteria": {"threshold": 0.6},
        },
        {"id": "gsm8k", "name": "GSM8K", "category": "math", "metrics": ["exact_match"]},
    ],
}
GARAK = {
    "id": "garak",
    "name": "garak",
    "runtime": {"local": {"command": "python -m garak_adapter"}},
    "benchmarks": [
        {
            "id": "dan",
            "name": "DAN",
            "category": "safety",
            "metrics": ["attack_success_rate", "attempts"],
            "primary_score": {"metric": "attack_success_rate", "lower_is_better": True, "scale": UNIT},
            "pass_criteria": {"threshold": 0.1},
        }
    ],
}
K8S_ONLY = {
    "id": "k8s_only",
    "name": "cluster only",
    "runtime": {"k8s": {"image": "quay.io/example/adapter:1"}},
    "benchmarks": [{"id": "probe", "name": "Probe", "category": "misc"}],
}


def providers(*specs: dict[str, Any]) -> dict[str, ProviderSpec]:
    specs = specs or (LM_EVAL, GARAK, K8S_ONLY)
    return {s["id"]: ProviderSpec.model_validate(copy.deepcopy(s)) for s in specs}


def job(**fields: Any) -> JobRequest:
    body: dict[str, Any] = {"name": "nightly", "model": dict(MODEL)} | fields
    return JobRequest.model_validate(body)


def collection(*benchmarks: dict[str, Any], **fields: Any) -> CollectionSpec:
    body = {"id": "gate", "name": "Gate", "category": "release", "benchmarks": list(benchmarks)} | fields
    return CollectionSpec.model_validate(body)


def plan_of(request: JobRequest, coll: CollectionSpec | None = None, **kwargs: Any) -> Plan:
    return build_plan(
        request, providers=kwargs.pop("providers", None) or providers(), collection=coll, **kwargs
    )


def refused(request: JobRequest, coll: CollectionSpec | None = None, **kwargs: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        plan_of(request, coll, **kwargs)
    return caught.value


def lm(benchmark: str, **fields: Any) -> dict[str, Any]:
    return {"provider_id": "lm_eval", "id": benchmark} | fields


# --- collection overrides ---------------------------------------------------------------------------


def test_override_parameters_reach_only_the_benchmark_they_name() -> None:
    """EvalHub 1.0.2 leaked them into every benchmark of the same provider (docs/compatibility.md)."""
    coll = collection(lm("arc_easy", parameters={"batch": 8}), lm("mmlu", parameters={"batch": 4}))
    request = job(
        collection={"id": "gate", "benchmarks": [lm("arc_easy", parameters={"num_examples": 10, "seed": 1})]}
    )
    arc, mmlu = plan_of(request, coll).benchmarks
    assert (arc.parameters, arc.num_examples) == ({"batch": 8, "seed": 1}, 10)
    assert (mmlu.parameters, mmlu.num_examples) == ({"batch": 4}, None)


def test_override_parameters_win_over_the_collections() -> None:
    coll = collection(lm("arc_easy", parameters={"batch": 8, "fewshot": 5, "num_examples": 100}))
    request = job(collection={"id": "gate", "benchmarks": [lm("arc_easy", parameters={"fewshot": 0})]})
    (arc,) = plan_of(request, coll).benchmarks
    assert arc.parameters == {"batch": 8, "fewshot": 0}
    assert arc.num_examples == 100


def test_num_examples_is_lifted_out_of_a_jobs_own_parameters() -> None:
    (arc,) = plan_of(job(benchmarks=[lm("arc_easy", parameters={"num_examples": 5, "x": "y"})])).benchmarks
    assert arc.num_examples == 5
    assert arc.parameters == {"x": "y"}


def test_override_weight_score_and_threshold_are_honoured() -> None:
    """EvalHub 1.0.2 accepted and echoed them, then used the collection's (docs/compatibility.md)."""
    coll = collection(
        lm("arc_easy", weight=1, pass_criteria={"threshold": 0.4}),
        lm("mmlu", weight=2),
    )
    override = lm(
        "arc_easy",
        weight=9,
        primary_score={"metric": "acc_norm", "scale": {"min": 0, "max": 100}},
        pass_criteria={"threshold": 0.8},
    )
    arc, mmlu = plan_of(job(collection={"id": "gate", "benchmarks": [override]}), coll).benchmarks
    assert arc.weight == 9
    assert arc.score.model_dump() == {
        "metric": "acc_norm",
        "lower_is_better": False,
        "scale": {"min": 0.0, "max": 100.0},
        "threshold": 0.8,
    }
    assert (mmlu.weight, mmlu.score.threshold) == (2, 0.6)


def test_an_override_weight_of_zero_is_honoured() -> None:
    coll = collection(lm("arc_easy"), lm("mmlu"))
    arc, mmlu = plan_of(job(collection={"id": "gate", "benchmarks": [lm("mmlu", weight=0)]}), coll).benchmarks
    assert (arc.weight, mmlu.weight) == (1, 0)


def test_an_override_for_a_benchmark_not_in_the_collection_is_refused() -> None:
    coll = collection(lm("arc_easy"))
    request = job(collection={"id": "gate", "benchmarks": [lm("arc_easy"), lm("mmlu", weight=2)]})
    error = refused(request, coll)
    assert error.message_code == "resource_does_not_exist"
    assert [(e.path, e.code) for e in error.errors] == [
        ("collection.benchmarks[1]", "resource_does_not_exist")
    ]


def test_a_collection_job_without_its_collection_is_not_found() -> None:
    with pytest.raises(NotFound):
        plan_of(job(collection={"id": "gone"}), None)


def test_duplicated_benchmarks_in_a_collection_keep_their_own_configuration() -> None:
    """EvalHub 1.0.2 matched on (id, provider_id), so the first entry's configuration won (docs/compatibility.md)."""
    coll = collection(
        lm("arc_easy", weight=1, parameters={"fewshot": 0}, pass_criteria={"threshold": 0.3}),
        lm("arc_easy", weight=3, parameters={"fewshot": 25}, primary_score={"metric": "acc_norm"}),
    )
    first, second = plan_of(job(collection={"id": "gate"}), coll).benchmarks
    assert (first.index, second.index) == (0, 1)
    assert (first.weight, first.parameters, first.score.metric, first.score.threshold) == (
        1,
        {"fewshot": 0},
        "acc",
        0.3,
    )
    assert (second.weight, second.parameters, second.score.metric, second.score.threshold) == (
        3,
        {"fewshot": 25},
        "acc_norm",
        None,
    )
    assert first.fingerprint != second.fingerprint


def test_the_plan_lists_the_collections_benchmarks_in_order_with_provenance() -> None:
    coll = collection(lm("mmlu"), {"provider_id": "garak", "id": "dan"}, lm("arc_easy"))
    plan = plan_of(job(collection={"id": "gate"}), coll, collection_updated_at="2025-06-01T12:00:00+00:00")
    assert [(b.index, b.provider_id, b.id) for b in plan.benchmarks] == [
        (0, "lm_eval", "mmlu"),
        (1, "garak", "dan"),
        (2, "lm_eval", "arc_easy"),
    ]
    assert (plan.collection_id, plan.collection_updated_at) == ("gate", "2025-06-01T12:00:00+00:00")


# --- what cannot be planned -------------------------------------------------------------------------


def test_an_unknown_provider_in_a_jobs_own_benchmarks_is_not_found() -> None:
    with pytest.raises(NotFound) as caught:
        plan_of(job(benchmarks=[lm("arc_easy"), {"provider_id": "ghost", "id": "x"}]))
    assert [(e.path, e.code) for e in caught.value.errors] == [
        ("benchmarks[1].provider_id", "resource_not_found")
    ]


def test_an_unknown_provider_in_a_collection_is_an_invalid_request() -> None:
    coll = collection(lm("arc_easy"), {"provider_id": "ghost", "id": "x"})
    error = refused(job(collection={"id": "gate"}), coll)
    assert [(e.path, e.code) for e in error.errors] == [
        ("collection.benchmarks[1].provider_id", "resource_does_not_exist")
    ]


def test_an_unknown_benchmark_is_named_by_its_path() -> None:
    error = refused(job(benchmarks=[lm("arc_easy"), lm("nope"), lm("mmlu")]))
    assert [(e.path, e.code) for e in error.errors] == [("benchmarks[1].id", "resource_does_not_exist")]
    assert error.message_code == "resource_does_not_exist"
    assert "'nope'" in error.message


def test_every_problem_is_listed_at_once() -> None:
    error = refused(job(benchmarks=[lm("nope"), lm("arc_easy"), lm("gone")], model={"name": "m"}))
    assert [(e.path, e.code) for e in error.errors] == [
        ("benchmarks[0].id", "resource_does_not_exist"),
        ("benchmarks[2].id", "resource_does_not_exist"),
        ("model.url", "model_url_required"),
    ]
    assert error.message_code == "request_validation_failed"


def test_a_provider_without_a_local_command_is_planned_as_unavailable_on_the_local_hub() -> None:
    """EvalHub answers 202 and fails such a job at once; its clients expect that (docs/compatibility.md).
    The plan says why, and submit fails the run with local_runtime_not_enabled."""
    plan = plan_of(
        job(benchmarks=[lm("arc_easy"), {"provider_id": "k8s_only", "id": "probe"}]), runtime="local"
    )
    assert plan.benchmarks[0].unavailable is None
    assert plan.benchmarks[1].unavailable is not None
    assert "Local runtime is not enabled for provider 'k8s_only'" in plan.benchmarks[1].unavailable


def test_a_provider_without_an_image_is_refused_on_the_cluster() -> None:
    error = refused(job(benchmarks=[lm("arc_easy")]), runtime="kubernetes")
    assert [(e.path, e.code) for e in error.errors] == [
        ("benchmarks[0].provider_id", "k8s_runtime_not_enabled")
    ]
    plan = plan_of(job(benchmarks=[{"provider_id": "k8s_only", "id": "probe"}]), runtime="kubernetes")
    assert plan.benchmarks[0].runtime.k8s["image"] == "quay.io/example/adapter:1"


@pytest.mark.parametrize("where", ["job", "collection", "override"])
def test_all_weights_zero_is_refused(where: str) -> None:
    if where == "job":
        error = refused(job(benchmarks=[lm("arc_easy", weight=0), lm("mmlu", weight=0)]))
    elif where == "collection":
        error = refused(
            job(collection={"id": "gate"}), collection(lm("arc_easy", weight=0), lm("mmlu", weight=0))
        )
    else:
        request = job(collection={"id": "gate", "benchmarks": [lm("mmlu", weight=0)]})
        error = refused(request, collection(lm("arc_easy", weight=0), lm("mmlu", weight=2)))
    assert [(e.path, e.code) for e in error.errors] == [("benchmarks", "all_weights_zero")]


def test_one_weighted_benchmark_is_enough() -> None:
    plan = plan_of(job(benchmarks=[lm("arc_easy", weight=0), lm("mmlu")]))
    assert [b.weight for b in plan.benchmarks] == [0, 1]


def test_a_model_url_is_required_unless_every_benchmark_uses_pre_recorded_data() -> None:
    no_url = {"name": "granite-3b"}
    error = refused(job(model=no_url, benchmarks=[lm("arc_easy", test_data_ref=PRE_RECORDED), lm("mmlu")]))
    assert error.message_code == "model_url_required"
    assert [(e.path, e.code) for e in error.errors] == [("model.url", "model_url_required")]
    data_set = PRE_RECORDED | {"type": "data_set"}
    assert refused(job(model=no_url, benchmarks=[lm("arc_easy", test_data_ref=data_set)])).errors[0].code == (
        "model_url_required"
    )
    plan = plan_of(
        job(
            model=no_url,
            benchmarks=[lm("arc_easy", test_data_ref=PRE_RECORDED), lm("mmlu", test_data_ref=PRE_RECORDED)],
        )
    )
    assert [b.test_data_ref["type"] for b in plan.benchmarks] == ["pre_recorded_data", "pre_recorded_data"]


def test_pre_recorded_data_set_by_an_override_counts() -> None:
    request = job(
        model={"name": "granite-3b"},
        collection={"id": "gate", "benchmarks": [lm("arc_easy", test_data_ref=PRE_RECORDED)]},
    )
    (arc,) = plan_of(request, collection(lm("arc_easy"))).benchmarks
    assert arc.test_data_ref == PRE_RECORDED


def test_a_metric_the_benchmark_does_not_report_is_refused() -> None:
    error = refused(job(benchmarks=[lm("arc_easy", primary_score={"metric": "f1"})]))
    assert [(e.path, e.code) for e in error.errors] == [
        ("benchmarks[0].primary_score.metric", "metric_not_reported")
    ]


# --- scoring resolution -----------------------------------------------------------------------------


def test_an_entry_naming_the_providers_metric_inherits_its_threshold_and_scale() -> None:
    """EvalHub 1.0.2 dropped the provider's threshold here, so the benchmark got no test (docs/compatibility.md)."""
    (arc,) = plan_of(job(benchmarks=[lm("arc_easy", primary_score={"metric": "acc"})])).benchmarks
    assert arc.score.model_dump() == {
        "metric": "acc",
        "lower_is_better": False,
        "scale": UNIT,
        "threshold": 0.5,
    }


def test_an_entry_naming_another_metric_does_not_inherit_the_providers_threshold_or_scale() -> None:
    (arc,) = plan_of(job(benchmarks=[lm("arc_easy", primary_score={"metric": "acc_norm"})])).benchmarks
    assert arc.score.model_dump() == {
        "metric": "acc_norm",
        "lower_is_better": False,
        "scale": {"min": 0.0, "max": 1.0},  # the default of a known proportion (assay/core/scales.py)
        "threshold": None,
    }


def test_an_entry_with_only_a_threshold_keeps_the_providers_metric() -> None:
    (arc,) = plan_of(job(benchmarks=[lm("arc_easy", pass_criteria={"threshold": 0.9})])).benchmarks
    assert (arc.score.metric, arc.score.scale, arc.score.threshold) == ("acc", MetricScale(min=0, max=1), 0.9)


def test_a_job_entry_inherits_the_providers_lower_is_better() -> None:
    """EvalHub 1.0.2 ignored the provider's direction in the composite (docs/compatibility.md)."""
    (dan,) = plan_of(
        job(
            benchmarks=[
                {"provider_id": "garak", "id": "dan", "primary_score": {"metric": "attack_success_rate"}}
            ]
        )
    ).benchmarks
    assert (dan.score.lower_is_better, dan.score.threshold) == (True, 0.1)


def test_a_collection_entry_naming_the_providers_metric_inherits_its_lower_is_better() -> None:
    """A collection entry that restates garak's attack_success_rate without a direction must keep the
    provider's lower_is_better (docs/compatibility.md), as check_collection and a job's own entry already do."""
    coll = collection(
        {"provider_id": "garak", "id": "dan", "primary_score": {"metric": "attack_success_rate"}}
    )
    (dan,) = plan_of(job(collection={"id": "gate"}), coll).benchmarks
    assert dan.score.lower_is_better is True


def test_threshold_resolves_override_then_collection_then_provider() -> None:
    coll = collection(lm("arc_easy", pass_criteria={"threshold": 0.3}), lm("mmlu"), lm("gsm8k", weight=0))
    request = job(collection={"id": "gate", "benchmarks": [lm("arc_easy", pass_criteria={"threshold": 0.7})]})
    arc, mmlu, gsm8k = plan_of(request, coll).benchmarks
    assert arc.score.threshold == 0.7
    assert mmlu.score.threshold == 0.6
    assert (gsm8k.score.metric, gsm8k.score.threshold) == (None, None)
    assert plan_of(job(collection={"id": "gate"}), coll).benchmarks[0].score.threshold == 0.3


@pytest.mark.parametrize(
    ("job_threshold", "collection_threshold", "expected", "source"),
    [
        (0.9, 0.7, 0.9, "job"),
        (None, 0.7, 0.7, "collection"),
        (None, None, DEFAULT_COMPOSITE_THRESHOLD, "default"),
        (0.0, 0.7, 0.0, "job"),
    ],
)
def test_composite_threshold_resolves_job_then_collection_then_default(
    job_threshold: float | None, collection_threshold: float | None, expected: float, source: str
) -> None:
    extra = {} if collection_threshold is None else {"pass_criteria": {"threshold": collection_threshold}}
    coll = collection(lm("arc_easy"), **extra)
    fields: dict[str, Any] = {"collection": {"id": "gate"}}
    if job_threshold is not None:
        fields["pass_criteria"] = {"threshold": job_threshold}
    plan = plan_of(job(**fields), coll)
    assert (plan.composite_threshold, plan.composite_threshold_source) == (expected, source)


def test_a_job_without_a_collection_defaults_the_composite_threshold() -> None:
    plan = plan_of(job(benchmarks=[lm("arc_easy")]))
    assert (plan.composite_threshold, plan.composite_threshold_source) == (0.5, "default")
    assert plan.collection_id is None


# --- the plan is frozen -----------------------------------------------------------------------------


def test_changing_the_collection_or_provider_runtime_afterwards_changes_nothing() -> None:
    """EvalHub 1.0.2 re-read the collection live (docs/compatibility.md)."""
    provs = providers()
    coll = collection(
        lm("arc_easy", weight=2, parameters={"gen": {"temperature": 0}}, pass_criteria={"threshold": 0.4}),
        pass_criteria={"threshold": 0.7},
    )
    plan = build_plan(job(collection={"id": "gate"}), providers=provs, collection=coll)
    before = plan.model_dump(mode="json")

    ref = coll.benchmarks[0]
    ref.parameters["gen"]["temperature"] = 1
    ref.parameters["new"] = True
    ref.weight = 0
    ref.pass_criteria.threshold = 0.99
    coll.pass_criteria.threshold = 0.1
    coll.benchmarks.append(ref.model_copy())
    local = provs["lm_eval"].runtime.local
    local.command = "rm -rf /"
    local.env[0].value = "/elsewhere"
    provs["lm_eval"].benchmarks[0].pass_criteria.threshold = 0.01

    assert plan.model_dump(mode="json") == before


def test_changing_the_providers_scale_afterwards_changes_nothing() -> None:
    provs = providers()
    plan = build_plan(job(benchmarks=[lm("arc_easy")]), providers=provs)
    before = plan.model_dump(mode="json")
    provs["lm_eval"].benchmarks[0].primary_score.scale.max = 100.0
    assert plan.model_dump(mode="json") == before


def test_changing_the_request_afterwards_changes_nothing() -> None:
    request = job(benchmarks=[lm("arc_easy", parameters={"gen": {"temperature": 0}})])
    plan = plan_of(request)
    before = plan.model_dump(mode="json")
    request.benchmarks[0].parameters["gen"]["temperature"] = 1
    assert plan.model_dump(mode="json") == before


def test_the_plan_freezes_the_providers_runtime() -> None:
    (arc,) = plan_of(job(benchmarks=[lm("arc_easy")])).benchmarks
    assert arc.runtime.local_command == "python -m lm_eval_adapter"
    assert arc.runtime.local_env == {"HF_HOME": "/c"}


# --- fingerprints -----------------------------------------------------------------------------------

keys = st.text(alphabet="abcdefgh_", min_size=1, max_size=6).filter(lambda k: k != "num_examples")
parameter_sets = st.dictionaries(keys, st.integers(-3, 3) | st.text(alphabet="xyz", max_size=3), max_size=4)


@settings(max_examples=60, deadline=None)
@given(parameter_sets, parameter_sets)
def test_fingerprints_are_equal_exactly_when_the_parameters_are(a: dict[str, Any], b: dict[str, Any]) -> None:
    (first,) = plan_of(job(benchmarks=[lm("arc_easy", parameters=a)])).benchmarks
    (again,) = plan_of(job(benchmarks=[lm("arc_easy", parameters=dict(reversed(a.items())))])).benchmarks
    (other,) = plan_of(job(benchmarks=[lm("arc_easy", parameters=b)])).benchmarks
    assert first.fingerprint == again.fingerprint
    assert first.fingerprint.startswith("sha256:")
    assert (first.fingerprint == other.fingerprint) == (a == b)


@pytest.mark.parametrize(
    "change",
    [
        {"model": {"url": "http://other.example/v1", "name": "granite-3b"}},
        {"model": {"url": MODEL["url"], "name": "granite-8b"}},
        {"benchmarks": [lm("arc_easy", parameters={"num_examples": 11})]},
        {"benchmarks": [lm("mmlu", parameters={"num_examples": 10})]},
        {"benchmarks": [lm("arc_easy", parameters={"num_examples": 10}, test_data_ref=PRE_RECORDED)]},
    ],
    ids=["model-url", "model-name", "num-examples", "benchmark", "test-data"],
)
def test_fingerprints_differ_when_what_determines_the_result_differs(change: dict[str, Any]) -> None:
    base = {"benchmarks": [lm("arc_easy", parameters={"num_examples": 10})]}
    (first,) = plan_of(job(**base)).benchmarks
    (again,) = plan_of(job(**base)).benchmarks
    (changed,) = plan_of(job(**(base | change))).benchmarks
    assert first.fingerprint == again.fingerprint
    assert changed.fingerprint != first.fingerprint


def test_fingerprints_ignore_how_a_result_is_judged() -> None:
    (plain,) = plan_of(job(benchmarks=[lm("arc_easy")])).benchmarks
    (judged,) = plan_of(
        job(
            benchmarks=[lm("arc_easy", weight=3, pass_criteria={"threshold": 0.9})],
            pass_criteria={"threshold": 0.8},
        )
    ).benchmarks
    assert plain.fingerprint == judged.fingerprint


# --- the request itself -----------------------------------------------------------------------------


def parse_errors(body: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(InvalidRequest) as caught:
        parse_model(JobRequest, body)
    assert caught.value.message_code == "request_validation_failed"
    return list(caught.value.errors)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"benchmarks": [lm("arc_easy")], "collection": {"id": "gate"}}, "not both"),
        ({}, "give benchmarks or a collection"),
        ({"benchmarks": []}, "at least one benchmark"),
        ({"benchmarks": [lm("arc_easy")], "pass_criteria": {"threshold": 38.0}}, "[0, 1]"),
        ({"benchmarks": [lm("arc_easy")], "pass_criteria": {"threshold": -0.1}}, "[0, 1]"),
    ],
    ids=["both", "neither", "empty-benchmarks", "threshold-above-1", "threshold-below-0"],
)
def test_a_malformed_job_request_is_refused(fields: dict[str, Any], fragment: str) -> None:
    errors = parse_errors({"name": "nightly", "model": MODEL} | fields)
    assert [(e.path, e.code) for e in errors] == [("$", "invalid")]
    assert fragment in errors[0].message


def test_an_unknown_top_level_field_is_refused_by_name() -> None:
    """A typo such as pass_critera must not vanish silently."""
    errors = parse_errors(
        {"name": "nightly", "model": MODEL, "benchmarks": [lm("arc_easy")], "pass_critera": {}}
    )
    assert [(e.path, e.code) for e in errors] == [("pass_critera", "unknown_field")]


def test_every_invalid_field_is_named() -> None:
    errors = parse_errors(
        {
            "name": "nightly",
            "model": {"url": "ftp://x", "name": "m"},
            "benchmarks": [lm("arc_easy", weight=-1), lm("mmlu", parameters={"num_examples": 0})],
        }
    )
    assert {(e.path, e.code) for e in errors} == {
        ("model.url", "invalid"),
        ("benchmarks[0].weight", "min"),
        ("benchmarks[1].parameters", "invalid"),
    }


@pytest.mark.parametrize("threshold", [0.0, 0.5, 1.0])
def test_a_composite_threshold_on_the_unit_scale_is_accepted(threshold: float) -> None:
    request = parse_model(
        JobRequest,
        {
            "name": "nightly",
            "model": MODEL,
            "benchmarks": [lm("arc_easy")],
            "pass_criteria": {"threshold": threshold},
        },
    )
    assert request.pass_criteria is not None and request.pass_criteria.threshold == threshold
