"""Policies against model versions: does a policy apply, and what job request does it make of the
version (placeholders filled, serving endpoint resolved). Also the create-time check of a policy
against the catalogue. Pure: no I/O."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import re2

from assay.api import CollectionSpec, ProviderSpec
from assay.api.jobs import JobRequest
from assay.api.policies import PLACEHOLDER, PolicySpec, placeholder_problem, template_strings
from assay.core.plan import build_plan
from assay.core.validation import parse_model
from assay.errors import FieldError, InvalidRequest, NotFound
from assay.store.trigger_claims import SeenVersion
from assay.triggers.versions import ModelVersionEvent


@dataclass(frozen=True, slots=True)
class VersionFacts:
    """What is known about a version when a policy looks at it: the event plus the merged metadata."""

    event: ModelVersionEvent
    tags: Mapping[str, str]
    aliases: tuple[str, ...]
    stage: str | None
    endpoint: str | None

    @classmethod
    def of(cls, event: ModelVersionEvent, seen: SeenVersion | None) -> VersionFacts:
        if seen is None:
            return cls(event, dict(event.tags), tuple(event.aliases), event.stage, event.endpoint)
        return cls(event, seen.tags, tuple(seen.aliases), seen.stage, event.endpoint or seen.endpoint)


def mismatch(policy: PolicySpec, facts: VersionFacts) -> str | None:
    """Why ``policy`` does not apply to the version (a short code and detail), or None when it does."""
    rule, event = policy.rule, facts.event
    if not policy.enabled:
        return "policy_disabled"
    if event.source not in rule.sources:
        return f"source_not_matched: {event.source}"
    if rule.registry is not None and rule.registry != event.registry:
        return f"registry_not_matched: {event.registry}"
    if rule.model_name is not None and not fnmatch.fnmatchcase(event.name, rule.model_name):
        return f"model_name_not_matched: {event.name}"
    if rule.model_name_regex is not None and re2.fullmatch(rule.model_name_regex, event.name) is None:
        return f"model_name_not_matched: {event.name}"
    if rule.events and event.event not in rule.events:
        return f"event_not_matched: {event.event}"
    for key, wanted in rule.tags.items():
        have = facts.tags.get(key)
        if have is None or (wanted != "*" and have != wanted):
            return f"tag_not_matched: {key}"
    if rule.aliases and not set(rule.aliases) & set(facts.aliases):
        return "alias_not_matched"
    if rule.stages and facts.stage not in rule.stages:
        return f"stage_not_matched: {facts.stage}"
    return None


class Unresolvable(Exception):
    """The policy applies, but no job can be made of this version (no endpoint, a tag it names is unset)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _fill(text: str, facts: VersionFacts, *, url: bool = False) -> str:
    """``text`` with its placeholders filled; with ``url``, each value percent-encoded for where it stands:
    nothing reserved in the scheme and authority (a version like ``x@evil.example#`` must not move the host,
    and the model's credentials with it), ``/`` kept in the path (``{model}`` may be ``org/repo``)."""
    authority_end = len(text)
    if url and "://" in text:
        start = text.index("://") + 3
        slash = text.find("/", start)
        authority_end = slash if slash != -1 else len(text)
    event = facts.event
    values = {
        "model": event.name,
        "version": event.version,
        "source": event.source,
        "registry": event.registry,
        "stage": facts.stage or "",
        "event": event.event,
    }

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("tag:"):
            key = name[4:]
            if key not in facts.tags:
                raise Unresolvable(
                    "tag_not_set", f"the template needs tag {key!r}, which the version does not carry"
                )
            value = facts.tags[key]
        else:
            value = values[name]
        if not url:
            return value
        return quote(value, safe="" if match.start() < authority_end else "/")

    return PLACEHOLDER.sub(one, text)


def _filled(value: Any, facts: VersionFacts) -> Any:
    if isinstance(value, str):
        return _fill(value, facts)
    if isinstance(value, dict):
        return {key: _filled(item, facts) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, facts) for item in value]
    return value


def endpoint_of(policy: PolicySpec, facts: VersionFacts) -> str:
    """The serving endpoint: the event's or the registry's own, a tag the policy names, else its template."""
    resolution = policy.action.endpoint
    if facts.endpoint:
        return facts.endpoint
    for key in resolution.metadata_keys:
        if facts.tags.get(key):
            return facts.tags[key]
    if resolution.template:
        return _fill(resolution.template, facts, url=True)
    raise Unresolvable(
        "no_model_endpoint",
        "the registry names no serving endpoint for this version and the policy has no endpoint template",
    )


def job_request(policy_id: str, policy: PolicySpec, facts: VersionFacts) -> dict[str, Any]:
    """The job request ``policy`` makes of the version (a plain document: it is frozen in the claim)."""
    action = policy.action
    event = facts.event
    model: dict[str, Any] = {
        "url": endpoint_of(policy, facts),
        "name": _fill(action.served_model_name, facts),
    }
    if action.model_parameters:
        model["parameters"] = _filled(action.model_parameters, facts)
    if action.model_auth is not None:
        model["auth"] = action.model_auth.model_dump(mode="json")
    request: dict[str, Any] = {
        "name": _fill(action.job_name, facts)[:256],
        "model": model,
        "tags": [*action.tags, f"policy:{policy_id}"[:128]],
        "custom": {
            "assay_trigger": {
                "policy_id": policy_id,
                **event.describe(),
                "event": event.event,
                "delivery_id": event.delivery_id,
            }
        },
    }
    for name in ("collection", "benchmarks", "experiment", "pass_criteria"):
        part = getattr(action, name)
        if part is not None:
            dumped = (
                [b.model_dump(mode="json", exclude_none=True) for b in part]
                if isinstance(part, list)
                else part.model_dump(mode="json", exclude_none=True)
            )
            request[name] = _filled(dumped, facts)
    return request


_SAMPLE_URL = "http://model.example/v1"


def _sample_facts(policy: PolicySpec) -> VersionFacts:
    """A version that fills every placeholder of ``policy``, to check the request it makes."""
    keys = {
        m.group(1)[4:]
        for _, text in template_strings(policy.action.model_dump(mode="json", exclude_none=True), "action")
        for m in PLACEHOLDER.finditer(text)
        if m.group(1).startswith("tag:")
    }
    event = ModelVersionEvent(
        source=policy.rule.sources[0],
        registry=policy.rule.registry or "registry",
        delivery_id="check",
        event="check",
        name="model",
        version="1",
        endpoint=_SAMPLE_URL,
        tags=dict.fromkeys(keys, "1"),
    )
    return VersionFacts(event, event.tags, (), "stage", _SAMPLE_URL)


def check_policy(
    policy: PolicySpec,
    *,
    providers: Mapping[str, ProviderSpec],
    collection: CollectionSpec | None,
    runtime: str,
) -> None:
    """Refuse (400, every field named under ``action``) a policy whose templates or job would be invalid:
    the collection or benchmarks it names must exist and be runnable on this hub, as at job submission."""
    errors: list[FieldError] = []
    action_doc = policy.action.model_dump(mode="json", exclude_none=True, exclude={"endpoint"})
    for path, text in template_strings(action_doc, "action"):
        problem = placeholder_problem(text)
        if problem:
            errors.append(FieldError(path, "invalid_placeholder", problem))
    if errors:
        raise InvalidRequest(
            "The policy is invalid: " + "; ".join(f"{e.path}: {e.message}" for e in errors), errors=errors
        )
    if policy.action.collection is not None and collection is None:
        raise InvalidRequest(
            f"The policy is invalid: collection {policy.action.collection.id!r} does not exist",
            errors=[FieldError("action.collection.id", "resource_does_not_exist", "no such collection")],
        )
    facts = _sample_facts(policy)
    try:
        request = parse_model(JobRequest, job_request("check", policy, facts), what="policy action")
        build_plan(
            request,
            providers=providers,
            collection=collection,
            runtime="kubernetes" if runtime == "kubernetes" else "local",
        )
    except (InvalidRequest, NotFound) as exc:
        moved = [
            FieldError("action.endpoint" if e.path == "model.url" else f"action.{e.path}", e.code, e.message)
            for e in exc.errors
        ] or [FieldError("action", "invalid", exc.message)]
        raise InvalidRequest(
            "The policy is invalid: " + "; ".join(f"{e.path}: {e.message}" for e in moved), errors=moved
        ) from None


__all__ = ["Unresolvable", "VersionFacts", "check_policy", "endpoint_of", "job_request", "mismatch"]
