-- Evaluation policies and what the triggers remember: deliveries already handled, the model versions
-- seen (the Kubeflow poll's memory too), and the one evaluation each policy started per model version.

CREATE TABLE policies (
    tenant      text NOT NULL,
    id          text NOT NULL,
    owner       text,
    file        text,                             -- defined in <config_dir>/<file>, read-only; NULL: by the API
    spec        jsonb NOT NULL,                   -- the validated wire document (snake_case)
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    seq         bigserial,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX policies_order ON policies (tenant, created_at, seq);

-- A webhook or CloudEvent delivery already handled: a redelivery (same source and id) changes nothing.
CREATE TABLE trigger_deliveries (
    tenant       text NOT NULL,
    source       text NOT NULL,                   -- mlflow | github | gitlab | cloudevents:<ce source>
    delivery_id  text NOT NULL,
    outcome      jsonb NOT NULL,                  -- what the first delivery was answered
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, source, delivery_id)
);

-- Every model version a trigger has seen, with its metadata merged over all events about it
-- (tags and aliases arrive in separate MLflow events, in any order).
CREATE TABLE model_versions (
    tenant        text NOT NULL,
    source        text NOT NULL,
    registry      text NOT NULL,
    model_name    text NOT NULL,
    version       text NOT NULL,
    version_sort  text COLLATE "C" NOT NULL,      -- natural order of versions (digits zero-padded)
    tags          jsonb NOT NULL DEFAULT '{}'::jsonb,
    aliases       jsonb NOT NULL DEFAULT '[]'::jsonb,
    stage         text,
    endpoint      text,                           -- serving endpoint, when the registry knows it
    uri           text,                           -- where the weights are (MLflow source, artifact uri)
    registry_updated text,                        -- the registry's own change marker (Kubeflow poll)
    first_seen    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, source, registry, model_name, version)
);

-- One evaluation per (policy, model version), however often and in whatever order events arrive:
-- the first delivery claims the row (with the request it will submit), every later one finds it.
CREATE TABLE policy_evaluations (
    tenant        text NOT NULL,
    policy_id     text NOT NULL,
    source        text NOT NULL,
    registry      text NOT NULL,
    model_name    text NOT NULL,
    version       text NOT NULL,
    version_sort  text COLLATE "C" NOT NULL,
    request       jsonb NOT NULL,                 -- the job request, frozen at claim time
    policy        jsonb NOT NULL,                 -- the policy as it was (baseline and gate rules)
    evaluation_id text UNIQUE,                    -- NULL until the job is committed
    error         jsonb,                          -- why the job could not be submitted (retried by the sweep)
    baseline_evaluation_id text,                  -- the baseline the gate used, once decided
    created_at    timestamptz NOT NULL DEFAULT now(),
    attempted_at  timestamptz NOT NULL DEFAULT now(),  -- the last submission attempt
    PRIMARY KEY (tenant, policy_id, source, registry, model_name, version)
);
-- What the sweep retries: claims without a committed job (a crash between claim and submit, a refused submit).
CREATE INDEX policy_evaluations_unsettled ON policy_evaluations (attempted_at) WHERE evaluation_id IS NULL;
CREATE INDEX policy_evaluations_order
    ON policy_evaluations (tenant, policy_id, source, registry, model_name, version_sort);

-- The Kubeflow Model Registry poll: the newest change already looked at, per registry.
CREATE TABLE registry_poll_state (
    tenant       text NOT NULL,
    registry     text NOT NULL,
    cursor       text NOT NULL,                   -- lastUpdateTimeSinceEpoch (ms) of the newest version seen
    polled_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, registry)
);
