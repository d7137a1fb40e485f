"""Pure parts of the triggers: what a policy's templates make of a version's values, and the webhook secrets
file when it is broken."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from assay.api.policies import PolicySpec
from assay.settings import Settings
from assay.triggers.matching import VersionFacts, endpoint_of, job_request
from assay.triggers.secrets import WebhookSecrets
from assay.triggers.versions import ModelVersionEvent
from tests.triggers.hub import policy


def _facts(version: str, name: str = "acme-chat", **tags: str) -> VersionFacts:
    event = ModelVersionEvent(
        source="github",
        registry="github.com",
        delivery_id="d",
        event="workflow_dispatch",
        name=name,
        version=version,
        tags=tags,
    )
    return VersionFacts.of(event, None)


@pytest.mark.parametrize(
    "version", ["x@attacker.example#", "1/../../admin", "x:1@evil?", "v1 \r\nHost: evil.example"]
)
def test_a_version_cannot_move_the_endpoint_elsewhere(version: str) -> None:
    spec = PolicySpec.model_validate(policy(["github"]))  # template http://127.0.0.1:9/{model}/{version}/v1
    url = urlsplit(endpoint_of(spec, _facts(version)))
    assert (url.scheme, url.hostname, url.port) == ("http", "127.0.0.1", 9)
    assert url.query == "" and url.fragment == "" and url.username is None
    assert not any(c in url.path for c in "\r\n ")


@pytest.mark.parametrize("model", ["evil.example/x", "evil.example#", "u:p@evil.example", "evil.example:80"])
def test_a_model_name_in_the_host_stays_in_the_host(model: str) -> None:
    body = policy(["github"])
    body["action"]["endpoint"] = {"template": "http://{model}.models.svc/v1"}
    url = urlsplit(endpoint_of(PolicySpec.model_validate(body), _facts("1", name=model)))
    assert url.hostname is not None and url.hostname.endswith(".models.svc") and url.port is None
    assert url.path == "/v1" and url.username is None


def test_plain_values_fill_the_template_unchanged() -> None:
    spec = PolicySpec.model_validate(policy(["github"]))
    assert endpoint_of(spec, _facts("1.2.0-rc.1")) == "http://127.0.0.1:9/acme-chat/1.2.0-rc.1/v1"
    org_repo = endpoint_of(spec, _facts("abc", name="acme/llm"))  # a repository path keeps its slash
    assert org_repo == "http://127.0.0.1:9/acme/llm/abc/v1"
    request = job_request("p", spec, _facts("7", answers="/data/a.jsonl"))
    assert request["benchmarks"][0]["parameters"]["dataset"] == "/data/a.jsonl"  # parameters are not URLs


def test_a_broken_secrets_file_keeps_the_last_good_secrets(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text("team-a:\n  github: s3cret\n")
    secrets = WebhookSecrets(Settings(webhook_secrets_file=path, webhook_secrets={"team-b": {"gitlab": "t"}}))
    assert secrets.secret("team-a", "github") == "s3cret"
    for broken in ("team-a: [unclosed\n", "- a list\n- not a mapping\n"):
        path.write_text(broken)
        stamp = path.stat().st_mtime + 1
        os.utime(path, (stamp, stamp))  # a new mtime, as a rotated Secret has
        assert secrets.secret("team-a", "github") == "s3cret"  # the last good file, not a 500
        assert secrets.secret("team-b", "gitlab") == "t"
    fresh = WebhookSecrets(Settings(webhook_secrets_file=path))
    assert fresh.secret("team-a", "github") is None  # never a good file: no secrets, no exception
