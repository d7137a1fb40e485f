-- Evaluation jobs, one row per benchmark run, the transactional outbox and the handlers' inbox.

CREATE TABLE evaluations (
    id              text PRIMARY KEY,
    tenant          text NOT NULL,
    owner           text,
    name            text NOT NULL,
    request         jsonb NOT NULL,          -- the submission as accepted (echoed back)
    plan            jsonb NOT NULL,          -- the frozen effective benchmarks and scoring
    state           text NOT NULL DEFAULT 'pending',
    message         jsonb NOT NULL,
    results         jsonb NOT NULL DEFAULT '{}'::jsonb,  -- job-level results (composite test, ...)
    cancelled       boolean NOT NULL DEFAULT false,
    tags            text[] NOT NULL DEFAULT '{}',
    collection_id   text,
    experiment_id   text,
    idempotency_key text,
    request_hash    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    seq             bigserial
);
CREATE UNIQUE INDEX evaluations_idempotency ON evaluations (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX evaluations_tenant_created ON evaluations (tenant, created_at DESC, seq DESC);
CREATE INDEX evaluations_open ON evaluations (state) WHERE state IN ('pending', 'running');

CREATE TABLE benchmark_runs (
    evaluation_id   text NOT NULL REFERENCES evaluations (id) ON DELETE CASCADE,
    idx             integer NOT NULL,
    provider_id     text NOT NULL,
    benchmark_id    text NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    attempt         integer NOT NULL DEFAULT 1,
    phase           text,
    progress        double precision,
    current_step    text,
    total_steps     integer,
    completed_steps integer,
    error_message   jsonb,
    warning_message jsonb,
    started_at      timestamptz,
    completed_at    timestamptz,
    result          jsonb NOT NULL DEFAULT '{}'::jsonb,    -- metrics, schema, artifacts, test
    dispatched_attempt integer NOT NULL DEFAULT 0,         -- the attempt the runtime was asked to start
    runtime_ref     text,                                  -- where it runs (local:<instance>:<pid>, k8s job name)
    deadline_at     timestamptz,                           -- fail it if still running after this
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (evaluation_id, idx)
);
CREATE INDEX benchmark_runs_open ON benchmark_runs (deadline_at) WHERE status IN ('pending', 'running');

CREATE TABLE outbox (
    id             text PRIMARY KEY,           -- the CloudEvent id
    type           text NOT NULL,
    source         text NOT NULL,
    subject        text,
    partition_key  text,
    correlation_id text,
    causation_id   text,
    data           jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    attempts       integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error     text,
    seq            bigserial
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at, seq) WHERE published_at IS NULL;

-- One row per CloudEvent a handler has applied: redelivery of (source, id) is a no-op.
CREATE TABLE inbox (
    handler      text NOT NULL,
    source       text NOT NULL,
    id           text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (handler, source, id)
);
