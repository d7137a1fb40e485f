-- Providers and collections: tenant-owned rows, plus the read-only system rows loaded from YAML
-- (tenant IS NULL, owner 'system'). The spec is the validated wire document (snake_case JSON).
CREATE TABLE providers (
    tenant      text,
    id          text        NOT NULL,
    owner       text,
    spec        jsonb       NOT NULL,
    derived_from text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT providers_system_owner CHECK ((tenant IS NULL) = (owner IS NOT DISTINCT FROM 'system'))
);
CREATE UNIQUE INDEX providers_key ON providers (COALESCE(tenant, ''), id);
CREATE INDEX providers_listing ON providers (tenant, created_at, seq);

CREATE TABLE collections (
    tenant      text,
    id          text        NOT NULL,
    owner       text,
    spec        jsonb       NOT NULL,
    derived_from text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT collections_system_owner CHECK ((tenant IS NULL) = (owner IS NOT DISTINCT FROM 'system'))
);
CREATE UNIQUE INDEX collections_key ON collections (COALESCE(tenant, ''), id);
CREATE INDEX collections_listing ON collections (tenant, created_at, seq);
