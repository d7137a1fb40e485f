-- Which catalogue files the system rows came from, so a cold start can skip an unchanged reload.
CREATE TABLE system_catalogue_state (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    fingerprint text        NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);
