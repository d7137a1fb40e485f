"""The CI gate (assay.core.gate): thresholds AND no regression beyond tolerance and noise."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from assay.core.compare import Tolerance
from assay.core.gate import GateRules, decide, summary

values = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
errors = st.one_of(st.none(), st.floats(min_value=0.0, max_value=10.0, allow_nan=False))
tolerances = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)


def job(
    value: float,
    stderr: float | None = None,
    *,
    lower_is_better: bool = False,
    state: str = "completed",
    composite_pass: bool = True,
    job_id: str = "now",
) -> dict[str, Any]:
    test: dict[str, Any] = {"evaluated": True, "pass": True}
    if stderr is not None:
        test["stderr"] = stderr
    return {
        "resource": {"id": job_id},
        "status": {"state": state},
        "plan": {
            "benchmarks": [
                {
                    "benchmark_index": 0,
                    "provider_id": "p",
                    "id": "b",
                    "primary_score": {"metric": "m", "lower_is_better": lower_is_better},
                }
            ]
        },
        "results": {
            "benchmarks": [{"benchmark_index": 0, "metrics": {"m": value}, "test": test}],
            "test": {"evaluated": True, "pass": composite_pass, "score": 0.7, "threshold": 0.5},
        },
    }


def rules(
    max_drop: float = 0.0, sigma: float = 2.0, relative: bool = False, thresholds: bool = True
) -> GateRules:
    return GateRules(
        Tolerance(max_drop=max_drop, relative=relative, sigma=sigma), require_thresholds=thresholds
    )


def regressed(now: dict[str, Any], then: dict[str, Any], gate_rules: GateRules) -> bool:
    return bool(decide(now, then, gate_rules)["regressions"])


@given(values, values, errors, errors, tolerances)
def test_a_drop_within_noise_never_regresses(
    now: float, then: float, se_now: float | None, se_then: float | None, sigma: float
) -> None:
    combined = (
        ((se_now or 0) ** 2 + (se_then or 0) ** 2) ** 0.5 if se_now is not None and se_then is not None else 0
    )
    gate = decide(job(now, se_now), job(then, se_then, job_id="then"), rules(sigma=sigma))
    if then - now <= sigma * combined:
        assert gate["regressions"] == []
    if now >= then:
        assert gate["regressions"] == [] and gate["decision"] == "passed"


@given(values, values, errors, errors, tolerances, tolerances)
def test_a_wider_tolerance_never_adds_a_regression(
    now: float, then: float, se_now: float | None, se_then: float | None, small: float, extra: float
) -> None:
    a, b = job(now, se_now), job(then, se_then, job_id="then")
    if regressed(a, b, rules(max_drop=small + extra)):
        assert regressed(a, b, rules(max_drop=small))
    if regressed(a, b, rules(sigma=small + extra)):
        assert regressed(a, b, rules(sigma=small))


@given(values, values, tolerances, st.booleans())
def test_direction_and_relative_tolerance(now: float, then: float, max_drop: float, lower: bool) -> None:
    a, b = job(now, lower_is_better=lower), job(then, lower_is_better=lower, job_id="then")
    worse_by = (now - then) if lower else (then - now)
    relative = min(max_drop, 1.0)
    assert regressed(a, b, rules(max_drop=max_drop)) is (worse_by > max_drop)
    assert regressed(a, b, rules(max_drop=relative, relative=True)) is (worse_by > relative * then)


@given(
    values, values, st.booleans(), st.sampled_from(["completed", "partially_failed", "failed", "cancelled"])
)
def test_the_decision_is_the_and_of_its_criteria(
    now: float, then: float, composite: bool, state: str
) -> None:
    gate = decide(job(now, state=state, composite_pass=composite), job(then, job_id="then"), rules())
    unfinished = state in ("failed", "cancelled", "partially_failed")  # a benchmark without a result fails it
    expect_fail = bool(gate["regressions"]) or not composite or unfinished
    assert gate["decision"] == ("failed" if expect_fail else "passed")
    assert ("regression" in gate["reasons"]) is bool(gate["regressions"])
    assert ("threshold_not_met" in gate["reasons"]) is (not composite)
    lenient = decide(job(now, state=state, composite_pass=composite), None, rules(thresholds=False))
    assert lenient["decision"] == ("failed" if unfinished else "passed")
    assert (f"evaluation_{state}" in lenient["reasons"]) is unfinished


@given(values, st.sampled_from(["failed", "cancelled"]))
def test_a_failed_baseline_never_lets_a_gate_pass(now: float, baseline_state: str) -> None:
    gate = decide(job(now), job(1.0, job_id="then", state=baseline_state), rules(thresholds=False))
    assert gate["decision"] == "failed" and f"baseline_{baseline_state}" in gate["reasons"]
    assert f"baseline {baseline_state}" in summary(gate)


def test_pending_until_both_jobs_finish() -> None:
    running = decide(job(1, state="running"), job(1, job_id="then"), rules())
    assert running["decision"] == "pending" and running["reasons"] == ["evaluation_running"]
    waiting = decide(
        job(1), job(1, state="pending", job_id="then"), rules(), baseline_info={"kind": "previous_version"}
    )
    assert waiting["decision"] == "pending" and waiting["reasons"] == ["baseline_running"]
    assert waiting["baseline"] == {"kind": "previous_version", "job_id": "then", "state": "pending"}
    assert summary(waiting) == "Assay gate pending: waiting for the baseline"


def test_a_regression_is_named_with_its_numbers() -> None:
    gate = decide(job(0.4, 0.01), job(0.8, 0.01, job_id="then"), rules(max_drop=0.05))
    assert gate["decision"] == "failed" and gate["reasons"] == ["regression"]
    (row,) = gate["regressions"]
    assert row["id"] == "b" and row["metric"] == "m" and row["current"] == 0.4 and row["baseline"] == 0.8
    assert row["allowed"] == 0.05 and abs(row["noise"] - 2 * (0.0002**0.5)) < 1e-12
    assert summary(gate) == "Assay gate failed: 1 regression(s): b"
    assert summary(decide(job(0.8), job(0.8, job_id="then"), rules())) == "Assay gate passed vs then"
