"""Delivery of an adapter's events to the hub (or its sidecar): ``DefaultCallbacks``.

The bodies are exactly eval-hub-sdk 1.0.6's (docs/compatibility.md) plus Assay's additions: ``progress``,
``current_step``, ``total_steps`` and ``completed_steps`` on status events when set, and a numeric
``<metric>_stderr`` metric for each result that carries a ``stderr``. Unlike eval-hub-sdk, nothing is
swallowed: transient failures (connection errors, timeouts, 408/425/429/5xx) are retried with exponential
backoff and jitter, honouring ``Retry-After``, for a bounded time; a permanent refusal raises
:class:`CallbackRejected` at once and an exhausted budget :class:`CallbackUndelivered`.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from adapters.retry import Backoff, retry_after_seconds
from adapters.sdk._environment import capture_environment_card
from adapters.sdk.errors import CallbackRejected, CallbackUndelivered
from adapters.sdk.models import (
    TERMINAL_STATUSES,
    EvaluationResult,
    JobCallbacks,
    JobResults,
    JobSpec,
    JobStatus,
    JobStatusUpdate,
    MessageInfo,
    MessageOrigin,
    OCIArtifactResult,
    OCIArtifactSpec,
    PrimaryScore,
)
from adapters.sdk.settings import AdapterSettings

if TYPE_CHECKING:
    from adapters.sdk.adapter import FrameworkAdapter

__all__ = ["EVENTS_PATH", "DefaultCallbacks", "callbacks_for_member"]

logger = logging.getLogger("adapters.sdk")

EVENTS_PATH = "/api/v1/evaluations/jobs/{job_id}/events"
NAMESPACE_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
SERVICE_ACCOUNT_TOKEN_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
# The CA bundles eval-hub-sdk looks for when none is configured, in its order.
_CA_BUNDLES = (
    Path("/etc/pki/ca-trust/source/anchors/service-ca.crt"),
    Path("/var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt"),
    Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
)
_ATTEMPT_TIMEOUT_SECONDS = 10.0
_RETRYABLE_STATUS = frozenset({408, 425, 429})


def _server_message(response: httpx.Response) -> str:
    # EvalHub error bodies carry {message_code, message}; anything else is shown as text.
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code = body.get("message_code")
        return f"{body['message']} ({code})" if code else body["message"]
    return response.text[:500]


class _EventChannel:
    """Posts event bodies to one events URL; shared by a DefaultCallbacks and its group members, so it
    also remembers which benchmarks have had their terminal event."""

    def __init__(
        self,
        url: str,
        *,
        verify: bool | str,
        auth_token_path: Path | None,
        namespace_path: Path,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.url = url
        self._auth_token_path = auth_token_path
        self._namespace_path = namespace_path
        self._client = httpx.Client(verify=verify, transport=transport, timeout=_ATTEMPT_TIMEOUT_SECONDS)
        self._backoff = Backoff(initial=0.2, maximum=30.0)
        self._lock = threading.Lock()
        self._terminal: set[int] = set()

    def headers(self) -> dict[str, str]:
        """Read fresh on every request, so a rotated token or a late namespace file is picked up."""
        headers: dict[str, str] = {}
        if self._auth_token_path is not None:
            try:
                token = self._auth_token_path.read_text().strip()
            except OSError as exc:
                logger.warning("cannot read the auth token %s: %s", self._auth_token_path, exc)
                token = ""
            if token:
                headers["Authorization"] = f"Bearer {token}"
        try:
            namespace = self._namespace_path.read_text().strip()
        except OSError:
            namespace = ""
        if namespace:
            headers["X-Tenant"] = namespace
        return headers

    def post(self, body: dict[str, Any], *, budget_seconds: float, what: str) -> None:
        started = time.monotonic()
        deadline = started + budget_seconds
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            try:
                response = self._client.post(
                    self.url,
                    json=body,
                    headers=self.headers(),
                    timeout=max(0.5, min(_ATTEMPT_TIMEOUT_SECONDS, remaining)),
                )
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                retry_after: float | None = None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    if attempt > 1:
                        logger.info("%s delivered on attempt %d", what, attempt)
                    return
                message = _server_message(response)
                if status not in _RETRYABLE_STATUS and status < 500:
                    raise CallbackRejected(
                        f"{what} was rejected by {self.url}: HTTP {status}: {message}",
                        url=self.url,
                        status_code=status,
                        server_message=message,
                    )
                last_error = f"HTTP {status}: {message}"
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            wait = self._backoff.delay(attempt, retry_after=retry_after)
            if time.monotonic() + wait > deadline:
                elapsed = time.monotonic() - started
                raise CallbackUndelivered(
                    f"{what} was not delivered to {self.url} after {attempt} attempt(s) in {elapsed:.1f}s "
                    f"(retry budget {budget_seconds:g}s); last error: {last_error}",
                    url=self.url,
                    attempts=attempt,
                    last_error=last_error,
                )
            logger.warning("%s not delivered (%s); retry %d in %.2fs", what, last_error, attempt, wait)
            time.sleep(wait)

    def mark_terminal(self, benchmark_index: int) -> None:
        with self._lock:
            self._terminal.add(benchmark_index)

    def is_terminal(self, benchmark_index: int) -> bool:
        with self._lock:
            return benchmark_index in self._terminal

    def close(self) -> None:
        self._client.close()


def _resolve_verify(settings: AdapterSettings) -> bool | str:
    if settings.evalhub_insecure:
        return False
    for candidate in (settings.ca_bundle_path, *_CA_BUNDLES):
        if candidate is not None and candidate.is_file():
            return str(candidate)
    return True


def _message_payload(message: MessageInfo) -> dict[str, Any]:
    payload = message.model_dump(mode="json")
    if not payload.get("message_origin"):
        payload["message_origin"] = MessageOrigin.ADAPTER.value
    return payload


def _overall_score(results: list[EvaluationResult], primary: PrimaryScore) -> float | None:
    for result in results:
        if result.metric_name == primary.metric:
            value = result.metric_value
            # A bool is an int to Python but not a score.
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return float(value)
    return None


class DefaultCallbacks(JobCallbacks):
    """Reports one benchmark of a job spec; :meth:`for_benchmark` gives the callbacks of another member of
    the same process's group. Build it with :meth:`from_adapter` in an adapter."""

    def __init__(
        self,
        spec: JobSpec,
        *,
        settings: AdapterSettings | None = None,
        generate_additional_info_fn: Callable[[JobResults], dict[str, Any] | None] | None = None,
        transport: httpx.BaseTransport | None = None,
        namespace_path: Path = NAMESPACE_PATH,
        service_account_token_path: Path = SERVICE_ACCOUNT_TOKEN_PATH,
    ) -> None:
        self._spec = spec
        self._settings = settings if settings is not None else AdapterSettings.from_env()
        self._retry_seconds = self._settings.callback_retry_seconds
        self.generate_additional_info_fn = generate_additional_info_fn
        token_path = self._settings.auth_token_path
        if token_path is not None and not token_path.is_file():
            logger.warning("EVALHUB_AUTH_TOKEN_PATH=%s is not a readable file; sending no token", token_path)
            token_path = None
        if token_path is None and service_account_token_path.is_file():
            token_path = service_account_token_path
        self._channel = _EventChannel(
            spec.callback_url.rstrip("/") + EVENTS_PATH.format(job_id=spec.id),
            verify=_resolve_verify(self._settings),
            auth_token_path=token_path,
            namespace_path=namespace_path,
            transport=transport,
        )

    @classmethod
    def from_adapter(cls, adapter: FrameworkAdapter) -> DefaultCallbacks:
        """Callbacks for the adapter's job spec and settings, wired to its ``generate_additional_info``."""
        from adapters.sdk.adapter import FrameworkAdapter

        overridden = type(adapter).generate_additional_info is not FrameworkAdapter.generate_additional_info
        return cls(
            adapter.job_spec,
            settings=adapter.settings,
            generate_additional_info_fn=adapter.generate_additional_info if overridden else None,
        )

    # eval-hub-sdk exposes these as attributes; adapters read them.
    @property
    def job_id(self) -> str:
        return self._spec.id

    @property
    def provider_id(self) -> str:
        return self._spec.provider_id

    @property
    def benchmark_id(self) -> str:
        return self._spec.benchmark_id

    @property
    def benchmark_index(self) -> int:
        return self._spec.benchmark_index

    @property
    def primary_score(self) -> PrimaryScore | None:
        return self._spec.primary_score

    @property
    def sidecar_url(self) -> str:
        """The events base URL (``callback_url``), named as in eval-hub-sdk."""
        return self._spec.callback_url.rstrip("/")

    @property
    def events_url(self) -> str:
        return self._channel.url

    def for_benchmark(self, member: JobSpec) -> DefaultCallbacks:
        """Callbacks reporting as ``member`` (one of ``spec.members()``), sharing this one's connection."""
        if member.id != self._spec.id:
            raise ValueError(f"member.id {member.id!r} is not this job's id {self._spec.id!r}")
        clone = copy.copy(self)
        clone._spec = member
        return clone

    def with_retry_budget(self, seconds: float) -> DefaultCallbacks:
        """The same callbacks with another total retry time per event (e.g. short while shutting down)."""
        clone = copy.copy(self)
        clone._retry_seconds = seconds
        return clone

    def has_terminal_event(self, benchmark_index: int) -> bool:
        """Whether a completed, failed or cancelled event was delivered for that benchmark."""
        return self._channel.is_terminal(benchmark_index)

    def close(self) -> None:
        self._channel.close()

    def _base_event(self, status: str) -> dict[str, Any]:
        return {
            "provider_id": self._spec.provider_id or "",
            "id": self._spec.benchmark_id,
            "benchmark_index": self._spec.benchmark_index,
            "status": status,
        }

    def _send(self, event: dict[str, Any], what: str) -> None:
        self._channel.post(
            {"benchmark_status_event": event},
            budget_seconds=self._retry_seconds,
            what=f"{what} of benchmark {self._spec.benchmark_id} (index {self._spec.benchmark_index})",
        )
        if event["status"] in TERMINAL_STATUSES:
            self._channel.mark_terminal(self._spec.benchmark_index)

    def report_status(self, update: JobStatusUpdate) -> None:
        event = self._base_event(update.status.value)
        if update.phase is not None:
            event["phase"] = update.phase.value
        error = update.resolved_error
        if error is not None:
            event["error_message"] = _message_payload(error)
        if update.warning_message is not None:
            event["warning_message"] = _message_payload(update.warning_message)
        # Assay additions: eval-hub-sdk drops these on the floor.
        if update.progress is not None:
            event["progress"] = update.progress
        if update.current_step is not None:
            event["current_step"] = update.current_step
        if update.total_steps is not None:
            event["total_steps"] = update.total_steps
        if update.completed_steps is not None:
            event["completed_steps"] = update.completed_steps
        self._send(event, f"status {update.status.value}")
        logger.info(
            "Status: %s | Phase: %s | Progress: %s | Step: %s",
            update.status.value,
            update.phase.value if update.phase else "N/A",
            "N/A" if update.progress is None else f"{update.progress:.0%}",
            update.current_step or "",
        )

    def report_results(self, results: JobResults) -> None:
        additional_info = results.additional_info
        if additional_info is None and self.generate_additional_info_fn is not None:
            try:
                additional_info = self.generate_additional_info_fn(results)
            except Exception:
                # Optional metadata must not cost the results; the failure is logged, not hidden.
                logger.warning("generate_additional_info failed; sending results without it", exc_info=True)
        if results.overall_score is None and self._spec.primary_score is not None:
            # Written back, as eval-hub-sdk does, so later consumers see the resolved score.
            resolved = _overall_score(results.results, self._spec.primary_score)
            if resolved is not None:
                results.overall_score = resolved
        env_card = results.env_card if results.env_card is not None else capture_environment_card()

        metrics: dict[str, Any] = {}
        for result in results.results:
            metrics[result.metric_name] = result.metric_value
        # Assay addition: a stderr travels as its own numeric metric; an explicit one of that name wins.
        added_stderr = [
            (f"{r.metric_name}_stderr", r.stderr)
            for r in results.results
            if r.stderr is not None and f"{r.metric_name}_stderr" not in metrics
        ]
        metrics.update(added_stderr)

        event = self._base_event(JobStatus.COMPLETED.value)
        event["metrics"] = metrics
        event["completed_at"] = (results.completed_at or datetime.now(UTC)).isoformat()
        if results.overall_score is not None:
            event["overall_score"] = results.overall_score
        if results.metrics_schema:
            schema = [{"name": m.name, "type": m.type.value} for m in results.metrics_schema]
            schema.extend({"name": name, "type": "numeric"} for name, _ in added_stderr)
            event["metrics_schema"] = schema
        if results.mlflow_run_id:
            event["mlflow_run_id"] = results.mlflow_run_id
        artifacts: dict[str, Any] = {}
        if results.oci_artifact is not None:
            artifacts["oci_reference"] = results.oci_artifact.reference
            artifacts["oci_digest"] = results.oci_artifact.digest
        if results.eval_card is not None:
            artifacts["evalhub.eval_card"] = results.eval_card
        if env_card:
            artifacts["evalhub.env_card"] = env_card
        extra_artifacts = results.evaluation_metadata.get("artifacts")
        if isinstance(extra_artifacts, dict):
            artifacts.update(extra_artifacts)
        if artifacts:
            event["artifacts"] = artifacts
        if additional_info is not None:
            event["additional_info"] = additional_info
        self._send(event, "results")
        logger.info(
            "Job %s completed | Benchmark: %s | Model: %s | Score: %s | Examples: %d | Duration: %.2fs",
            results.id,
            results.benchmark_id,
            results.model_name,
            results.overall_score,
            results.num_examples_evaluated,
            results.duration_seconds,
        )

    def create_oci_artifact(self, spec: OCIArtifactSpec) -> OCIArtifactResult:
        from adapters.sdk.oci import ArtifactContext, push_artifact

        context = ArtifactContext(
            job_id=self._spec.id,
            benchmark_id=self._spec.benchmark_id,
            provider_id=self._spec.provider_id,
            benchmark_index=self._spec.benchmark_index,
        )
        logger.info("Creating OCI artifact for job %s", self._spec.id)
        result = push_artifact(spec, context, self._settings)
        logger.info("Created OCI artifact for job %s as: %s", self._spec.id, result.reference)
        return result


def callbacks_for_member(callbacks: JobCallbacks, member: JobSpec, lead: JobSpec) -> JobCallbacks:
    """The callbacks that report ``member`` (one of ``lead.members()``): ``callbacks`` itself for the lead
    benchmark, else ``callbacks.for_benchmark(member)``, so a group member's events carry its own id and index.

    Raises TypeError for a group member when ``callbacks`` cannot route (has no ``for_benchmark``)."""
    if member.benchmark_index == lead.benchmark_index:
        return callbacks
    for_benchmark = getattr(callbacks, "for_benchmark", None)
    if for_benchmark is None:
        raise TypeError("a group job needs callbacks with for_benchmark (adapters.sdk.DefaultCallbacks)")
    routed: JobCallbacks = for_benchmark(member)
    return routed
