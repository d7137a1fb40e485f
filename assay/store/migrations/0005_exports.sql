-- What a finished evaluation is exported to (the MLflow runs, the OCI evaluation card, each benchmark's
-- results as an OCI artifact): one row per export, its status, attempts and error, retried by the sweep.
-- The job's results show a copy (results.exports); this table is the truth and the work queue.

CREATE TABLE exports (
    evaluation_id   text NOT NULL REFERENCES evaluations (id) ON DELETE CASCADE,
    name            text NOT NULL,           -- mlflow | oci_card | oci_benchmark_<index>
    status          text NOT NULL DEFAULT 'pending',  -- pending | running | done | failed | abandoned
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    result          jsonb NOT NULL DEFAULT '{}'::jsonb,  -- what exists remotely: run ids, reference, digest
    card            jsonb NOT NULL,          -- the evaluation card of this finish: every export sends the same one
    finished_at     timestamptz NOT NULL,    -- the job completion this export is for (a retried job finishes again)
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,             -- a running export's claim; a crashed exporter's claim expires
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (evaluation_id, name)
);
CREATE INDEX exports_due ON exports (next_attempt_at) WHERE status IN ('pending', 'running', 'failed');
