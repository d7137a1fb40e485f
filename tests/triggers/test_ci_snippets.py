"""The CI snippets under ci/ are valid YAML and call `assay gate` with options it has."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import yaml

from assay.api.jobs import JobRequest
from assay.cli.gate import add_parser
from tests.conftest import REPO

CI = REPO / "ci"


def _gate_args(command: str) -> argparse.Namespace:
    command = re.sub(r"\$\{\{[^}]*\}\}", "X", command)  # GitHub expressions
    command = re.sub(r"\$\{ASSAY_BASELINE_JOB:\+([^}]*)\}", r"\1", command)  # shell ${VAR:+...}
    words = shlex.split(command.replace("\\\n", " "))
    parser = argparse.ArgumentParser(prog="assay")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(words[words.index("gate") :])


def test_the_github_actions_step_runs_assay_gate() -> None:
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    steps = workflow["jobs"]["evaluate"]["steps"]
    (gate,) = [s for s in steps if "assay gate" in s.get("run", "")]
    args = _gate_args(gate["run"])
    assert args.request == Path("ci/assay-request.json") and args.junit == Path("reports/assay-junit.xml")
    assert any(s.get("with", {}).get("report_paths") == "reports/assay-junit.xml" for s in steps)


def test_the_gitlab_job_runs_assay_gate_and_publishes_junit() -> None:
    job = yaml.safe_load((CI / "gitlab-ci.yml").read_text())["assay-gate"]
    (command,) = [line for line in job["script"] if "assay gate" in line]
    args = _gate_args(command)
    assert args.max_drop == 0.02 and args.baseline == "$ASSAY_BASELINE_JOB"
    assert job["artifacts"]["reports"]["junit"] == str(args.junit)


def test_the_example_request_is_a_valid_job_request() -> None:
    JobRequest.model_validate(json.loads((CI / "assay-request.json").read_text()))
