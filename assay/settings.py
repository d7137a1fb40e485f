"""All configuration of Assay, read once from ``ASSAY_*`` environment variables and ``DATABASE_URL``.

This is the only module that reads the environment; everything else receives a :class:`Settings`.
``docs/configuration.md`` is generated from the field descriptions below (``assay config-doc``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "assay"


class KubeflowRegistry(BaseModel):
    """A Kubeflow Model Registry whose new model versions the sweep looks for (it emits no events)."""

    url: str = Field(
        description="Base URL of its REST API (the `/api/model_registry/v1alpha3` prefix is added)."
    )
    tenant: str = Field(description="The tenant whose policies its versions go through.")
    name: str | None = Field(None, description="The registry name policies match on; default the URL.")
    token_file: Path | None = Field(None, description="A bearer token file (a projected token).")


class Settings(BaseSettings):
    """Configuration of one Assay process (the local hub or one function)."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_", extra="ignore", frozen=True)

    mode: Literal["local", "cluster"] = Field(
        "local",
        description="`local`: one process, embedded Postgres, default tenant. "
        "`cluster`: the Knative functions; `X-Tenant` is required on every tenant-scoped request.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8080, ge=0, le=65535, description="Port the HTTP server listens on.")
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the local hub keeps its embedded PostgreSQL data and job files "
        "(default `$XDG_DATA_HOME/assay`, i.e. `~/.local/share/assay`).",
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "ASSAY_DATABASE_URL"),
        description="PostgreSQL connection URL (`DATABASE_URL`). Unset: the local hub starts an "
        "embedded PostgreSQL server under `data_dir/postgres`.",
    )
    config_dir: Path | None = Field(
        None,
        description="Directory with `providers/*.yaml` and `collections/*.yaml` (the read-only system "
        "catalogue) and `policies/<tenant>/*.yaml` (read-only evaluation policies). Default: the `config/` "
        "directory shipped with Assay.",
    )
    config_reload: bool = Field(
        True, description="Reload the system catalogue and the policy files when their files change."
    )
    default_tenant: str = Field(
        "default", description="Tenant used in local mode when a request carries no `X-Tenant` header."
    )
    tenants: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Comma-separated list of known tenants. When set, any other `X-Tenant` is refused "
        "with 403 `unknown_tenant`; when empty, any well-formed tenant name is accepted.",
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above it)."
    )
    list_max_limit: int = Field(500, ge=1, description="Largest `limit` a list request may ask for.")
    catalogue_default_limit: int = Field(
        500,
        ge=1,
        description="Page size of provider and collection lists without `limit` (eval-hub-sdk never pages, "
        "so the default page holds the whole catalogue).",
    )
    db_pool_min: int = Field(1, ge=0, description="Connections the pool keeps open.")
    db_pool_max: int = Field(
        4,
        ge=1,
        description="Most connections the pool opens. Each is a PostgreSQL backend, 5-6 ms of the server's CPU to "
        "start and to fill its caches at its first statements; the pool opens one whenever a request waits, even "
        "for a millisecond, and four serve a hub whose statements take a fraction of one (the functions' manifests "
        "set the same).",
    )
    db_connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a database connection.")
    db_outage_wait_seconds: float = Field(
        1.0,
        gt=0,
        description="While the database is known to be down (the last attempt to reach it failed), the "
        "seconds a request waits for a connection before it is answered 503, instead of `db_connect_timeout`.",
    )
    db_statement_timeout_seconds: float = Field(
        30.0,
        ge=0,
        description="PostgreSQL `statement_timeout` of the hub's connections: a statement running longer is "
        "cancelled (503); 0 turns it off.",
    )
    db_lock_timeout_seconds: float = Field(
        10.0,
        ge=0,
        description="PostgreSQL `lock_timeout` of the hub's connections: a statement waiting longer for a row "
        "lock is cancelled (503, retried); 0 turns it off.",
    )
    shutdown_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="How long a graceful stop (SIGTERM, SIGINT) of `assay up` may take in all: adapters get "
        "`stop_grace_seconds`, what is left goes to recording their ends; the embedded PostgreSQL is always "
        "stopped.",
    )
    public_url: str | None = Field(
        None,
        description="URL adapters use to reach this hub's callback route (`callback_url` in job.json). "
        "Default `http://<host>:<port>`; in cluster mode, the callback function's URL.",
    )
    runtime: Literal["local", "kubernetes"] = Field(
        "local",
        description="Where benchmarks run: `local` runs each provider's `runtime.local.command` as a subprocess; "
        "`kubernetes` runs each benchmark group as a Kueue-queued Job (`docs/cluster.md`).",
    )
    k8s_api_url: str | None = Field(
        None,
        description="Kubernetes runtime: API server URL used without credentials (e.g. `kubectl proxy`). "
        "Unset: `k8s_kubeconfig`, else the in-cluster service account.",
    )
    k8s_kubeconfig: Path | None = Field(
        None,
        description="Kubernetes runtime: kubeconfig file to use instead of the in-cluster service account.",
    )
    k8s_namespace_template: str = Field(
        "{tenant}",
        description="Kubernetes runtime: the namespace of a tenant's Jobs (`{tenant}` is replaced): one per tenant.",
    )
    k8s_local_queue: str = Field(
        "assay",
        description="Kubernetes runtime: the Kueue LocalQueue of a tenant's namespace used when neither the "
        "benchmark, the job nor a hardware profile names one.",
    )
    k8s_hardware_profile_queues: dict[str, str] = Field(
        default_factory=dict,
        description="Kubernetes runtime: LocalQueue per `hardware_config.hardware_profile_name` (JSON object).",
    )
    k8s_hardware_profiles_namespace: str | None = Field(
        None,
        description="Kubernetes runtime: the namespace of OpenDataHub's HardwareProfiles "
        "(`infrastructure.opendatahub.io/v1`, e.g. `opendatahub` or `redhat-ods-applications`): dispatch reads "
        "the profile a job's `hardware_config.hardware_profile_name` names there (resources, queue, node "
        "placement). Unset: profiles map to queues through `ASSAY_K8S_HARDWARE_PROFILE_QUEUES` only.",
    )
    k8s_priority_classes: dict[str, str] = Field(
        default_factory=lambda: {
            "ci": "assay-ci-gate",
            "registry": "assay-registry",
            "user": "assay-interactive",
            "sweep": "assay-sweep",
        },
        description="Kubernetes runtime: Kueue WorkloadPriorityClass per trigger (`custom.trigger` of the job: "
        "`ci`, `registry`, `sweep`; anything else is `user`), JSON object; a trigger absent here gets none.",
    )
    k8s_sidecar_image: str = Field(
        "ghcr.io/assay-evals/sidecar:0.1.0",
        min_length=1,
        description="Kubernetes runtime: the sidecar image (fully qualified; pin a digest in production).",
    )
    k8s_image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(
        "IfNotPresent",
        description="Kubernetes runtime: pull policy of the sidecar, and of adapters whose provider sets none.",
    )
    k8s_service_account: str | None = Field(
        None,
        description="Kubernetes runtime: ServiceAccount of the Job pods (its token reaches only the sidecar).",
    )
    k8s_mlflow_token_audience: str | None = Field(
        None,
        description="Kubernetes runtime: audience of the projected service-account token the sidecar presents to "
        "MLflow (`MLFLOW_TRACKING_URI`, proxied for adapters); unset: the API server's default audience.",
    )
    k8s_mlflow_ca_config_map: str | None = Field(
        None,
        description="Kubernetes runtime: ConfigMap (key `ca.crt`) in the tenant's namespace with the CA of an HTTPS "
        "MLflow; mounted into the sidecar only.",
    )
    k8s_hub_ca_config_map: str | None = Field(
        None,
        description="Kubernetes runtime: ConfigMap (key `service-ca.crt`, as OpenShift's service-CA operator injects "
        "it) in each tenant namespace with the CA of an HTTPS `ASSAY_PUBLIC_URL`; mounted into the sidecar only. "
        "Tenant onboarding creates it, annotated for injection.",
    )
    k8s_data_init_image: str | None = Field(
        None,
        description="Kubernetes runtime: the init container image that downloads a benchmark's `test_data_ref` from "
        "S3, git or Hugging Face into `/test_data` (EvalHub's `eval-runtime-init`, configured by `TEST_DATA_*` "
        "variables); unset, such benchmarks fail at dispatch with `test_data_unsupported`. A PVC needs none.",
    )
    k8s_pod_start_grace_seconds: float = Field(
        120.0,
        ge=0,
        description="Kubernetes runtime: how long a pod may fail to start (`CreateContainerConfigError`: a "
        "missing Secret or ConfigMap key; a crash-looping sidecar; a volume that cannot mount, `FailedMount`) "
        "before the benchmark fails.",
    )
    k8s_functions_namespace: str = Field(
        "assay",
        description="Kubernetes runtime: the namespace of Assay's functions and their ServiceAccounts (tenant "
        "onboarding binds them in each tenant namespace).",
    )
    k8s_cohort: str = Field(
        "assay",
        description="Kubernetes runtime: the Kueue Cohort every tenant's ClusterQueue joins (tenant onboarding); "
        "its own quota is the pool tenants borrow from under fair sharing.",
    )
    k8s_tenant_quota: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "0"},
        description="Kubernetes runtime: the nominal quota of each tenant's ClusterQueue (JSON object; `cpu` and "
        "`memory` on flavor `assay-cpu`, `nvidia.com/gpu` on `assay-gpu`): what a tenant is guaranteed; more "
        "is borrowed from the cohort.",
    )
    k8s_ttl_seconds_after_finished: int = Field(
        3600, ge=0, description="Kubernetes runtime: seconds a finished Job (and its pods) is kept."
    )
    k8s_admission_timeout_seconds: float = Field(
        3600.0,
        gt=0,
        description="Kubernetes runtime: a benchmark whose Kueue Workload is not admitted this long after it was "
        "queued (or re-queued) fails with `workload_inadmissible`.",
    )
    k8s_image_pull_grace_seconds: float = Field(
        300.0,
        ge=0,
        description="Kubernetes runtime: how long a pod may stay in ImagePullBackOff before the benchmark fails.",
    )
    k8s_unschedulable_grace_seconds: float = Field(
        600.0,
        ge=0,
        description="Kubernetes runtime: how long an admitted pod may stay unschedulable before the benchmark fails.",
    )
    k8s_result_grace_seconds: float = Field(
        60.0,
        ge=0,
        description="Kubernetes runtime: how long after its pod ended a benchmark's terminal event may still arrive "
        "(through the sidecar's buffer) before it fails with `pod_lost_without_result`.",
    )
    k8s_max_parallel_requests: int = Field(
        8, ge=1, description="Kubernetes runtime: most Kubernetes API calls in flight at once per process."
    )
    k8s_request_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Every Kubernetes API call (the runtime's, tenant onboarding's, pod logs', the reviews of "
        "`ASSAY_AUTH_MODE=kubernetes`): the longest wait to connect, and for each part of the answer (the client "
        "tries a failed connection, and a read that timed out, up to three more times). A call past it fails as "
        "an unreachable API server does, instead of holding its job's lock and a worker for good.",
    )
    local_max_parallel: int = Field(
        4, ge=1, description="Most benchmark processes the local runtime runs at once."
    )
    benchmark_timeout_seconds: float = Field(
        6 * 3600.0,
        gt=0,
        description="A benchmark still running this long after it started is failed (`benchmark_timeout`); "
        "a job's benchmark entry may set its own `timeout_seconds`.",
    )
    local_warm_start: bool = Field(
        True,
        description="Start Python adapters (`assay-adapter <name>`, `<python> <script.py>`) warm: forked from a "
        "per-environment server that has imported the SDK and framework, each run still a fresh, isolated "
        "process; off, every run starts its interpreter (`/bin/sh -c`).",
    )
    local_sidecar: bool = Field(
        True,
        description="Run local adapters behind the sidecar (model response cache, retries, token "
        "accounting, buffered callbacks); off, adapters call the model and the hub directly.",
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Where the sidecar keeps its model response cache (default `data_dir/model-cache`); "
        "a re-run of the same requests is answered from it.",
    )
    model_max_concurrency: int = Field(
        8, ge=1, description="Most model requests the local sidecar has in flight at once, per benchmark."
    )
    stop_grace_seconds: float = Field(
        5.0, ge=0, description="Seconds a stopped adapter gets between SIGTERM and SIGKILL."
    )
    reap_grace_seconds: float = Field(
        10.0,
        ge=0,
        description="Seconds an adapter may keep running after reporting a terminal status before it is stopped.",
    )
    sweep_interval_seconds: float = Field(
        30.0, gt=0, description="Local hub: how often the sweep runs (in a cluster a PingSource triggers it)."
    )
    dispatch_stale_seconds: float = Field(
        120.0,
        gt=0,
        description="A benchmark not handed to the runtime this long after its job was accepted is dispatched again; "
        "a model version claimed by a policy but left without a job is submitted again after as long.",
    )
    outbox_stale_seconds: float = Field(
        10.0, ge=0, description="The sweep republishes outbox events undelivered for longer than this."
    )
    k_sink: str | None = Field(
        None,
        validation_alias=AliasChoices("K_SINK", "ASSAY_K_SINK"),
        description="Cluster mode: the broker URL events are posted to (`K_SINK`, injected by a SinkBinding).",
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="`json` lines, human `text`, or `auto` (text on a terminal, JSON otherwise)."
    )
    log_level: str = Field("INFO", description="Python log level name.")
    otel_traces_exporter: str | None = Field(
        None,
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER", "ASSAY_OTEL_TRACES_EXPORTER"),
        description="OpenTelemetry's `OTEL_TRACES_EXPORTER`: `otlp` and/or `console` (comma-separated) turn "
        "traces on (install `assay[tracing]`), `none` or unset keeps them off, unless an OTLP endpoint is set "
        "(docs/events.md, Traces). The SDK reads its other `OTEL_*` variables itself.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "ASSAY_OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        description="`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`: set, traces are "
        "exported there with OTLP (also without `OTEL_TRACES_EXPORTER`).",
    )
    otel_exporter_otlp_protocol: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "ASSAY_OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        description="OTLP's transport: `http/protobuf` (default) or `grpc` (needs "
        "opentelemetry-exporter-otlp-proto-grpc).",
    )
    otel_service_name: str | None = Field(
        None,
        validation_alias=AliasChoices("OTEL_SERVICE_NAME", "ASSAY_OTEL_SERVICE_NAME"),
        description="`service.name` of the spans (default `assay` for the local hub, `assay-function` for a "
        "function).",
    )
    otel_sdk_disabled: bool = Field(
        False,
        validation_alias=AliasChoices("OTEL_SDK_DISABLED", "ASSAY_OTEL_SDK_DISABLED"),
        description="`OTEL_SDK_DISABLED=true` keeps traces off whatever else is set.",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "ASSAY_MLFLOW_TRACKING_URI"),
        description="MLflow tracking server (`MLFLOW_TRACKING_URI`). Set: jobs may name an `experiment` and each "
        "finished evaluation is logged there (`docs/exports.md`); unset: `experiment` is a 400. Token and CA "
        "come from MLflow's own `MLFLOW_TRACKING_TOKEN` / `MLFLOW_TRACKING_SERVER_CERT_PATH`.",
    )
    mlflow_ui_url: str | None = Field(
        None,
        description="Browser URL of the MLflow UI for `results.mlflow_experiment_url` (default: the tracking URI).",
    )
    oci_auth_config_path: Path | None = Field(
        None,
        validation_alias=AliasChoices("OCI_AUTH_CONFIG_PATH", "ASSAY_OCI_AUTH_CONFIG_PATH"),
        description="Docker config (`auths`) with registry credentials for OCI exports; a Kubernetes "
        "`dockerconfigjson` Secret mounted as a file is the same thing. Unset: anonymous pushes.",
    )
    oci_insecure_registries: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Comma-separated registry hosts (`host:port`) reached over plain HTTP; every other "
        "registry over HTTPS.",
    )
    oci_insecure: bool = Field(
        False,
        validation_alias=AliasChoices("OCI_INSECURE", "ASSAY_OCI_INSECURE"),
        description="EvalHub's `OCI_INSECURE`: the hub's own OCI pushes reach every registry over plain HTTP "
        "(a development registry); `ASSAY_OCI_INSECURE_REGISTRIES` names single hosts instead.",
    )
    oci_ca_cert_path: Path | None = Field(
        None, description="CA bundle for HTTPS registries (default: the system's trust store)."
    )
    oci_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one registry request.")
    export_max_attempts: int = Field(
        8, ge=1, description="Attempts per export (MLflow, OCI) before it is marked `abandoned`."
    )
    export_backoff_seconds: float = Field(
        30.0,
        ge=0,
        description="Delay before the sweep retries a failed export; doubled per attempt up to "
        "`ASSAY_EXPORT_BACKOFF_MAX_SECONDS`.",
    )
    export_backoff_max_seconds: float = Field(
        3600.0, ge=0, description="Longest delay between two attempts of one export."
    )
    webhook_secrets: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='Webhook secrets per tenant, JSON: `{"team-a": {"github": "...", "gitlab": "...", '
        '"mlflow": "..."}}`; a tenant without a secret for a forge gets 403 (`docs/triggers.md`).',
    )
    webhook_secrets_file: Path | None = Field(
        None,
        description="A YAML or JSON file with the same mapping as `ASSAY_WEBHOOK_SECRETS` (a mounted Secret); "
        "re-read when it changes, and it wins over the variable for the tenants it names.",
    )
    webhook_timestamp_tolerance_seconds: float = Field(
        300.0,
        gt=0,
        description="MLflow webhooks whose `X-MLflow-Timestamp` is further than this from now are refused (401).",
    )
    auth_mode: Literal["token", "oidc", "kubernetes", "trusted-proxy", "none"] | None = Field(
        None,
        description="How callers are authenticated (`docs/security.md`). `token`: bearer tokens from "
        "`ASSAY_AUTH_TOKEN_FILE` (hashed) and, in local mode, the hub's own token in `data_dir/token`; `oidc`: "
        "JWTs of `ASSAY_OIDC_ISSUER` checked against its JWKS; `kubernetes`: TokenReview, then a "
        "SubjectAccessReview per request (EvalHub's resource/verb table); `trusted-proxy`: identity from "
        "`X-User`/`X-Forwarded-Groups` set by kube-rbac-proxy in front (which authorised the request); `none`: "
        "no authentication, refused unless the hub binds a loopback address. Default: `token` in local mode, "
        "`kubernetes` in cluster mode.",
    )
    auth_token_file: Path | None = Field(
        None,
        description="`token` mode: a YAML file of `tokens: [{subject, sha256, tenants: {tenant: viewer|editor|admin}}]` "
        "(`*` as a tenant means every tenant); re-read when it changes. `assay token --hash` prints a hash.",
    )
    auth_roles_file: Path | None = Field(
        None,
        description="`oidc` mode: a YAML file mapping tenants to roles to subjects or `group:<name>`: "
        "`{team-a: {admin: [alice], editor: [group:ml], viewer: ['*']}}`.",
    )
    oidc_issuer: str | None = Field(
        None, description="`oidc` mode: the issuer URL (`iss`) tokens must carry."
    )
    oidc_audience: str | None = Field(
        None, description="`oidc` mode: the audience (`aud`) tokens must carry."
    )
    oidc_jwks_url: str | None = Field(
        None, description="`oidc` mode: the JWKS URL (default: discovered from the issuer's metadata)."
    )
    oidc_username_claim: str = Field("sub", description="`oidc` mode: the claim naming the subject.")
    oidc_groups_claim: str = Field(
        "groups", description="`oidc` mode: the claim listing the subject's groups."
    )
    auth_cache_seconds: float = Field(
        60.0, ge=0, description="How long a TokenReview, SubjectAccessReview or JWKS answer is reused."
    )
    auth_api_group: str = Field(
        "trustyai.opendatahub.io",
        description="`kubernetes` mode: the API group of SubjectAccessReviews (EvalHub's, so its Roles keep working).",
    )
    event_senders: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Cluster mode: comma-separated identities (TokenReview usernames, `*` globs) allowed to deliver "
        "CloudEvents to the functions, the dead-letter sink and the registry ingress (Knative Eventing's OIDC "
        "sender tokens). Empty: only the registry ingress's HMAC signature is accepted.",
    )
    event_audience: str | None = Field(
        None, description="Cluster mode: the audience the broker's OIDC tokens must carry (TokenReview)."
    )
    launch_signing_key: SecretStr | None = Field(
        None,
        description="HMAC key (at least 32 bytes) signing the per-launch credentials the sidecar presents on "
        "callbacks. Local mode: generated in `data_dir/launch.key` when unset; cluster mode: required where "
        "dispatch and callback run (the same Secret for both).",
    )
    ui_session_key: SecretStr | None = Field(
        None,
        description="HMAC key (at least 32 bytes) signing the dashboard's session cookies (`/ui`, "
        "`docs/dashboard.md`). Local mode: generated in `data_dir/ui-session.key` when unset; cluster mode: set "
        "the same Secret on every replica of the submit service, else the dashboard takes bearer tokens only.",
    )
    ui_session_max_age_seconds: int = Field(
        12 * 3600,
        ge=60,
        description="How long a dashboard sign-in lasts before the token is asked for again.",
    )
    api_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("ASSAY_TOKEN", "EVALHUB_TOKEN", "ASSAY_API_TOKEN"),
        description="Client side (`assay gate`, `assay demo`): the bearer token sent to the hub (`ASSAY_TOKEN`, "
        "or EvalHub's `EVALHUB_TOKEN`); unset: the local hub's own token from `data_dir/token`, if any.",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Comma-separated browser origins allowed by CORS; none by default."
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Comma-separated `Host` header names accepted (against DNS rebinding); `*` accepts any. "
        "Default: loopback names in local mode, any in cluster mode.",
    )
    local_command_tenants: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Tenants whose own providers may carry `runtime.local.command` (run on the hub host). "
        "Empty: only the operator's system catalogue may.",
    )
    egress_allow_loopback: bool | None = Field(
        None,
        description="Allow model and registry hosts on loopback addresses. Default: yes in local mode (the local "
        "model server lives there), no in cluster mode (loopback there is the function's own pod).",
    )
    egress_allow_private: bool = Field(
        False,
        description="Allow model and registry hosts on link-local or cloud-metadata addresses, and loopback.",
    )
    max_benchmarks_per_job: int = Field(200, ge=1, description="Most benchmarks one job may run.")
    max_log_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Most bytes one logs response returns (the tail is kept)."
    )
    kubeflow_registries: list[KubeflowRegistry] = Field(
        default_factory=list,
        description="Kubeflow Model Registries the sweep polls for new versions, JSON: "
        '`[{"url": "http://model-registry.kubeflow:8080", "tenant": "team-a", "token_file": null}]`.',
    )

    @field_validator(
        "tenants",
        "oci_insecure_registries",
        "event_senders",
        "cors_origins",
        "allowed_hosts",
        "local_command_tenants",
        mode="before",
    )
    @classmethod
    def _split_tenants(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    @property
    def effective_auth_mode(self) -> Literal["token", "oidc", "kubernetes", "trusted-proxy", "none"]:
        if self.auth_mode is not None:
            return self.auth_mode
        return "token" if self.mode == "local" else "kubernetes"

    @property
    def local_token_path(self) -> Path:
        """The local hub's own bearer token (mode 0600), created at first start."""
        return self.data_dir / "token"

    @property
    def local_jobs_dir(self) -> Path:
        """Where the local runtime keeps each run's job spec, logs and the adapter's result files."""
        return self.data_dir / "jobs"

    def callback_base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @field_validator("k8s_namespace_template", mode="after")
    @classmethod
    def _names_tenant(cls, value: str) -> str:
        if "{tenant}" not in value:
            raise ValueError("must contain {tenant}: every tenant gets its own namespace")
        return value

    @model_validator(mode="after")
    def _no_auth_only_on_loopback(self) -> Settings:
        mode = self.effective_auth_mode
        if mode in ("none", "trusted-proxy") and self.host not in ("127.0.0.1", "::1", "localhost"):
            why = (
                "serves every caller as an administrator"
                if mode == "none"
                else "believes X-User from whoever connects, so only the proxy in front may"
            )
            raise ValueError(f"auth_mode {mode!r} {why}: it binds only a loopback address, not {self.host!r}")
        return self

    @model_validator(mode="after")
    def _jobs_outlive_the_result_grace(self) -> Settings:
        if self.k8s_ttl_seconds_after_finished < self.k8s_result_grace_seconds:
            raise ValueError(
                "k8s_ttl_seconds_after_finished must be at least k8s_result_grace_seconds: a finished Job "
                "collected sooner takes with it what the watcher reads (why the pod ended)"
            )
        return self

    @field_validator(
        "data_dir",
        "config_dir",
        "model_cache_dir",
        "k8s_kubeconfig",
        "oci_auth_config_path",
        "auth_token_file",
        "auth_roles_file",
        mode="after",
    )
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


__all__ = ["KubeflowRegistry", "Settings"]
