"""Parse what registries and forges send into :class:`ModelVersionEvent`s. Pure: bodies in, events out.

A malformed body raises :class:`InvalidRequest` naming each bad field; an event that is well-formed
but not about a new model version (a ping, a closed pull request, a deleted alias) yields an
:class:`Ignored` with the reason, answered 200.

- MLflow 3 webhooks: ``{entity, action, timestamp, data, [workspace]}`` for ``model_version.created``
  (name, version, source, run_id, tags, description), ``model_version_alias.created`` (name, alias,
  version) and ``model_version_tag.set`` (name, version, key, value).
- GitHub: ``push``, ``pull_request`` (opened, synchronize, reopened), ``release`` (published, created,
  released) and ``workflow_dispatch``; the repository is the model, the commit (or tag) the version.
- GitLab: ``Push Hook``, ``Tag Push Hook``, ``Merge Request Hook`` (open, reopen, update) and
  ``Release Hook`` (create, update).
- CloudEvents ``dev.assay.registry.model_version.{created,updated}.v1`` with :class:`RegistryEventData`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from assay.core.events import MODEL_VERSION_CREATED, MODEL_VERSION_UPDATED
from assay.core.validation import parse_model
from assay.errors import FieldError, InvalidRequest
from assay.triggers.versions import ModelVersionEvent

Text = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed delivery that starts nothing, and why."""

    reason: str


class _Payload(BaseModel):
    # Senders add fields over time; only what Assay reads is required.
    model_config = ConfigDict(extra="ignore")


def _utc(value: str | None) -> str | None:
    """An ISO timestamp as UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: one format, so the text sorts by time."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" UTC", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _host(url: str | None, default: str) -> str:
    host = urlsplit(url or "").hostname
    return host or default


# --- MLflow ------------------------------------------------------------------------------------------


class MlflowEnvelope(_Payload):
    entity: Text
    action: Text
    timestamp: str | None = None
    data: dict[str, Any]
    workspace: str | None = None


class MlflowModelVersionCreated(_Payload):
    name: Text
    version: Text
    source: str | None = None
    run_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    description: str | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _null_tags(cls, value: Any) -> Any:
        return {} if value is None else value


class MlflowAliasCreated(_Payload):
    name: Text
    alias: Text
    version: Text


class MlflowTagSet(_Payload):
    name: Text
    version: Text
    key: Text
    value: str


def parse_mlflow(body: object, *, delivery_id: str, registry: str) -> ModelVersionEvent | Ignored:
    envelope = parse_model(MlflowEnvelope, body, what="MLflow webhook")
    event = f"{envelope.entity}.{envelope.action}"
    common = {"source": "mlflow", "registry": registry, "delivery_id": delivery_id, "event": event}
    if event == "model_version.created":
        created = _data(MlflowModelVersionCreated, envelope.data)
        return ModelVersionEvent(
            **common, name=created.name, version=created.version, uri=created.source, tags=created.tags
        )
    if event == "model_version_alias.created":
        alias = _data(MlflowAliasCreated, envelope.data)
        return ModelVersionEvent(
            **common,
            name=alias.name,
            version=alias.version,
            aliases=(alias.alias,),
            exclusive_aliases=True,
            kind="updated",
        )
    if event == "model_version_tag.set":
        tag = _data(MlflowTagSet, envelope.data)
        return ModelVersionEvent(
            **common, name=tag.name, version=tag.version, tags={tag.key: tag.value}, kind="updated"
        )
    return Ignored(f"event_not_handled: {event}")


def _data(model: type[M], data: dict[str, Any]) -> M:
    try:
        return parse_model(model, data, what="webhook data")
    except InvalidRequest as exc:
        errors = [FieldError(f"data.{e.path}", e.code, e.message) for e in exc.errors]
        raise InvalidRequest(
            "The webhook body is invalid: " + "; ".join(f"{e.path}: {e.message}" for e in errors),
            errors=errors,
        ) from None


# --- GitHub ------------------------------------------------------------------------------------------


class GithubRepository(_Payload):
    full_name: Text
    html_url: str | None = None


class GithubCommit(_Payload):
    id: str | None = None
    timestamp: str | None = None


class GithubPush(_Payload):
    ref: Text
    after: Text
    deleted: bool = False
    repository: GithubRepository
    head_commit: GithubCommit | None = None


class GithubRef(_Payload):
    ref: Text
    sha: Text


class GithubPullRequest(_Payload):
    number: int
    head: GithubRef
    base: GithubRef
    updated_at: str | None = None


class GithubPullRequestEvent(_Payload):
    action: Text
    pull_request: GithubPullRequest
    repository: GithubRepository


class GithubRelease(_Payload):
    tag_name: Text
    prerelease: bool = False
    draft: bool = False
    published_at: str | None = None
    created_at: str | None = None
    target_commitish: str | None = None


class GithubReleaseEvent(_Payload):
    action: Text
    release: GithubRelease
    repository: GithubRepository


class GithubWorkflowDispatch(_Payload):
    ref: Text
    inputs: dict[str, Any] | None = None
    repository: GithubRepository
    workflow: str | None = None


_ZERO_SHA = "0" * 40


def _branch(ref: str) -> str:
    return ref.removeprefix("refs/heads/").removeprefix("refs/tags/")


def parse_github(
    event_name: str, body: object, *, delivery_id: str, now: datetime
) -> ModelVersionEvent | Ignored:
    """GitHub's ``X-GitHub-Event`` and JSON body."""
    common: dict[str, Any] = {"source": "github", "delivery_id": delivery_id, "event": event_name}
    if event_name == "ping":
        return Ignored("ping")
    if event_name == "push":
        push = parse_model(GithubPush, body, what="GitHub push")
        if push.deleted or push.after == _ZERO_SHA:
            return Ignored("ref_deleted")
        is_tag = push.ref.startswith("refs/tags/")
        branch = _branch(push.ref)
        return ModelVersionEvent(
            **common,
            registry=_host(push.repository.html_url, "github.com"),
            name=push.repository.full_name,
            version=push.after,
            order=_utc(push.head_commit.timestamp if push.head_commit else None) or _stamp(now),
            tags={
                "event": "push",
                "ref": push.ref,
                ("tag" if is_tag else "branch"): branch,
                "sha": push.after,
            },
            aliases=() if is_tag else (branch,),
            exclusive_aliases=True,
        )
    if event_name == "pull_request":
        pr = parse_model(GithubPullRequestEvent, body, what="GitHub pull_request")
        if pr.action not in ("opened", "synchronize", "reopened"):
            return Ignored(f"action_not_handled: {pr.action}")
        return ModelVersionEvent(
            **common,
            registry=_host(pr.repository.html_url, "github.com"),
            name=pr.repository.full_name,
            version=pr.pull_request.head.sha,
            order=_utc(pr.pull_request.updated_at) or _stamp(now),
            tags={
                "event": "pull_request",
                "action": pr.action,
                "number": str(pr.pull_request.number),
                "branch": pr.pull_request.head.ref,
                "base": pr.pull_request.base.ref,
                "sha": pr.pull_request.head.sha,
            },
        )
    if event_name == "release":
        release = parse_model(GithubReleaseEvent, body, what="GitHub release")
        if release.action not in ("published", "created", "released") or release.release.draft:
            return Ignored(f"action_not_handled: {release.action}")
        return ModelVersionEvent(
            **common,
            registry=_host(release.repository.html_url, "github.com"),
            name=release.repository.full_name,
            version=release.release.tag_name,
            tags={"event": "release", "action": release.action, "tag": release.release.tag_name},
            stage="prerelease" if release.release.prerelease else "release",
        )
    if event_name == "workflow_dispatch":
        dispatch = parse_model(GithubWorkflowDispatch, body, what="GitHub workflow_dispatch")
        inputs = {k: str(v) for k, v in (dispatch.inputs or {}).items() if v is not None and str(v) != ""}
        return ModelVersionEvent(
            **common,
            registry=_host(dispatch.repository.html_url, "github.com"),
            name=inputs.get("model_name", dispatch.repository.full_name),
            # Without an explicit version every dispatch is a new request to evaluate.
            version=inputs.get("model_version", delivery_id),
            order=_stamp(now),
            endpoint=inputs.get("model_endpoint"),
            tags={
                **inputs,
                "event": "workflow_dispatch",
                "ref": dispatch.ref,
                "branch": _branch(dispatch.ref),
            },
        )
    return Ignored(f"event_not_handled: {event_name}")


# --- GitLab ------------------------------------------------------------------------------------------


class GitlabProject(_Payload):
    path_with_namespace: Text
    web_url: str | None = None


class GitlabCommit(_Payload):
    id: Text
    timestamp: str | None = None


class GitlabPush(_Payload):
    ref: Text
    after: Text
    checkout_sha: str | None = None
    project: GitlabProject
    commits: list[GitlabCommit] = Field(default_factory=list)


class GitlabMergeRequestAttributes(_Payload):
    iid: int
    action: str | None = None
    source_branch: Text
    target_branch: Text
    last_commit: GitlabCommit
    updated_at: str | None = None


class GitlabMergeRequest(_Payload):
    object_attributes: GitlabMergeRequestAttributes
    project: GitlabProject


class GitlabRelease(_Payload):
    action: Text
    tag: Text
    released_at: str | None = None
    project: GitlabProject
    upcoming_release: bool = False


_GITLAB_EVENTS = {
    "Push Hook": "push",
    "Tag Push Hook": "tag_push",
    "Merge Request Hook": "merge_request",
    "Release Hook": "release",
}


def parse_gitlab(
    event_header: str, body: object, *, delivery_id: str, instance: str | None, now: datetime
) -> ModelVersionEvent | Ignored:
    """GitLab's ``X-Gitlab-Event`` and JSON body; ``instance`` is ``X-Gitlab-Instance``."""
    event_name = _GITLAB_EVENTS.get(event_header)
    if event_name is None:
        return Ignored(f"event_not_handled: {event_header}")
    common: dict[str, Any] = {"source": "gitlab", "delivery_id": delivery_id, "event": event_name}
    if event_name in ("push", "tag_push"):
        push = parse_model(GitlabPush, body, what="GitLab push")
        sha = push.checkout_sha or push.after
        if sha == _ZERO_SHA:
            return Ignored("ref_deleted")
        is_tag = event_name == "tag_push"
        branch = _branch(push.ref)
        stamp = next((c.timestamp for c in push.commits if c.id == sha), None)
        return ModelVersionEvent(
            **common,
            registry=_host(instance or push.project.web_url, "gitlab.com"),
            name=push.project.path_with_namespace,
            version=branch if is_tag else sha,
            order=None if is_tag else (_utc(stamp) or _stamp(now)),
            tags={"event": event_name, "ref": push.ref, ("tag" if is_tag else "branch"): branch, "sha": sha},
            aliases=() if is_tag else (branch,),
            exclusive_aliases=True,
        )
    if event_name == "merge_request":
        mr = parse_model(GitlabMergeRequest, body, what="GitLab merge request")
        attributes = mr.object_attributes
        if attributes.action not in ("open", "reopen", "update"):
            return Ignored(f"action_not_handled: {attributes.action}")
        return ModelVersionEvent(
            **common,
            registry=_host(instance or mr.project.web_url, "gitlab.com"),
            name=mr.project.path_with_namespace,
            version=attributes.last_commit.id,
            order=_utc(attributes.last_commit.timestamp) or _utc(attributes.updated_at) or _stamp(now),
            tags={
                "event": "merge_request",
                "action": attributes.action,
                "number": str(attributes.iid),
                "branch": attributes.source_branch,
                "base": attributes.target_branch,
                "sha": attributes.last_commit.id,
            },
        )
    release = parse_model(GitlabRelease, body, what="GitLab release")
    if release.action not in ("create", "update") or release.upcoming_release:
        return Ignored(f"action_not_handled: {release.action}")
    return ModelVersionEvent(
        **common,
        registry=_host(instance or release.project.web_url, "gitlab.com"),
        name=release.project.path_with_namespace,
        version=release.tag,
        tags={"event": "release", "action": release.action, "tag": release.tag},
        stage="release",
    )


# --- CloudEvents from a registry ---------------------------------------------------------------------


class RegistryEventData(BaseModel):
    """``data`` of ``dev.assay.registry.model_version.created.v1`` / ``.updated.v1`` (JSON)."""

    model_config = ConfigDict(extra="forbid")

    registry: Text = Field(description="The registry's URL or name (policies may match on it).")
    model_name: Text
    version: Text
    serving_endpoint: str | None = Field(None, description="Where the version is served, if known (http(s)).")
    uri: str | None = Field(None, description="Where the weights are.")
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: list[Text] = Field(default_factory=list)
    stage: str | None = None
    tenant: str | None = Field(None, description="The tenant, when the delivery URL does not name it.")

    @field_validator("serving_endpoint")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        return value


def parse_registry_event(kind: str, event_id: str, data: object) -> ModelVersionEvent:
    if kind not in (MODEL_VERSION_CREATED, MODEL_VERSION_UPDATED):
        raise InvalidRequest(
            f"CloudEvent type {kind!r} is not a registry event",
            message_code="unsupported_event_type",
            errors=[
                FieldError("type", "enum", f"must be {MODEL_VERSION_CREATED} or {MODEL_VERSION_UPDATED}")
            ],
        )
    try:
        parsed = parse_model(RegistryEventData, data, what="registry event data")
    except InvalidRequest as exc:
        errors = [
            FieldError(f"data.{e.path}" if e.path != "$" else "data", e.code, e.message) for e in exc.errors
        ]
        raise InvalidRequest(
            "The CloudEvent data is invalid: " + "; ".join(f"{e.path}: {e.message}" for e in errors),
            errors=errors,
        ) from None
    return ModelVersionEvent(
        source="cloudevents",
        registry=parsed.registry,
        delivery_id=event_id,
        event="model_version.created" if kind == MODEL_VERSION_CREATED else "model_version.updated",
        name=parsed.model_name,
        version=parsed.version,
        endpoint=parsed.serving_endpoint,
        uri=parsed.uri,
        tags=parsed.tags,
        aliases=tuple(parsed.aliases),
        stage=parsed.stage,
        kind="created" if kind == MODEL_VERSION_CREATED else "updated",
    )


__all__ = [
    "Ignored",
    "RegistryEventData",
    "parse_github",
    "parse_gitlab",
    "parse_mlflow",
    "parse_registry_event",
]
