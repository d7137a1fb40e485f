-- CloudEvents the Knative broker gave up on: delivered to the dead-letter sink (POST /api/v1/dead-letters on
-- the callback function) with Knative's knativeerrordest / knativeerrorcode / knativeerrordata extensions.
-- One row per event (source, id): a redelivered dead letter changes nothing; the same event dead-lettered
-- by a second Trigger (benchmark.finished goes to aggregate and dispatch) adds its destination.

CREATE TABLE dead_letters (
    source          text NOT NULL,
    id              text NOT NULL,
    type            text NOT NULL,
    subject         text,
    tenant          text,                    -- data.tenant, else /assay/<tenant>/... in source; NULL: no tenant
    evaluation_id   text,                    -- correlationid, else data.evaluation_id
    error_dest      text,                    -- knativeerrordest: the subscriber that failed (first seen)
    error_code      integer,                 -- knativeerrorcode: its last HTTP status (NULL: none or not a number)
    error_data      text,                    -- knativeerrordata, base64-decoded: the start of its response body
    destinations    text[] NOT NULL DEFAULT '{}',  -- every knativeerrordest this event was dead-lettered from
    attributes      jsonb NOT NULL,          -- every context attribute and extension, as received
    data            jsonb,                   -- the event's data when it is JSON (or text)
    data_base64     text,                    -- the event's data when it is binary
    received_at     timestamptz NOT NULL DEFAULT now(),
    seq             bigserial NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX dead_letters_tenant ON dead_letters (tenant, received_at DESC, seq DESC);
CREATE INDEX dead_letters_evaluation ON dead_letters (evaluation_id) WHERE evaluation_id IS NOT NULL;
