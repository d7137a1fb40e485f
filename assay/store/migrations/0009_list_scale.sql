-- Job lists at scale (docs/performance.md, "List scale (keyset paging)").
--
-- Order: created_at DESC, id DESC. The tie-break is the job's id (not seq) so that a page's cursor holds only
-- what the caller already saw (the last item's created_at and id); seq is global across tenants.
-- Every filter has an index that starts with (tenant, the filtered column) and ends in the list's order:
-- a page, first or deep (keyset), is a range scan of its `limit` entries, whatever the tenant's history.
DROP INDEX evaluations_tenant_created;
CREATE INDEX evaluations_list ON evaluations (tenant, created_at DESC, id DESC);
CREATE INDEX evaluations_list_state ON evaluations (tenant, state, created_at DESC, id DESC);
CREATE INDEX evaluations_list_name ON evaluations (tenant, name, created_at DESC, id DESC);
CREATE INDEX evaluations_list_owner ON evaluations (tenant, owner, created_at DESC, id DESC);
CREATE INDEX evaluations_list_experiment ON evaluations (tenant, experiment_id, created_at DESC, id DESC)
    WHERE experiment_id IS NOT NULL;
CREATE INDEX evaluations_list_collection ON evaluations (tenant, collection_id, created_at DESC, id DESC)
    WHERE collection_id IS NOT NULL;
-- tags && '{...}': the planner picks this (rare tags) or the ordered list index with a filter (common ones).
CREATE INDEX evaluations_tags ON evaluations USING gin (tags);

-- total_count without counting the tenant's history: jobs per (tenant, state, owner), kept by triggers in the
-- same transaction as every insert, delete and change of state or owner, so it is exact at every snapshot.
-- A list filtered only by status and/or owner sums these rows; other filters count their matches through
-- their index. Each key is split over 4 shards (by job id) so concurrent state changes of one tenant rarely
-- wait on the same counter row; a trigger locks its rows in key order, so two of them cannot deadlock.
CREATE TABLE evaluation_counts (
    tenant text NOT NULL,
    state  text NOT NULL,
    owner  text,
    shard  smallint NOT NULL,
    n      bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant, state, owner, shard)
);

-- Inserts and deletes: statement-level triggers that add up the statement's rows per key first, so a bulk
-- statement updates each counter row once (a row updated again and again in one transaction grows a chain
-- of versions that every later update walks: quadratic). A change of state or owner: a row trigger, fired only
-- when one of them changed (the hub changes one job per statement; progress updates do not fire it).
CREATE FUNCTION evaluation_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_counts AS c (tenant, state, owner, shard, n)
    SELECT tenant, state, owner, hashtext(id) & 3, count(*) FROM inserted
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3 NULLS FIRST, 4
    ON CONFLICT (tenant, state, owner, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
CREATE FUNCTION evaluation_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_counts AS c (tenant, state, owner, shard, n)
    SELECT tenant, state, owner, hashtext(id) & 3, -count(*) FROM deleted
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3 NULLS FIRST, 4
    ON CONFLICT (tenant, state, owner, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
CREATE FUNCTION evaluation_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_counts AS c (tenant, state, owner, shard, n)
    SELECT d.tenant, d.state, d.owner, d.shard, d.n FROM (
        VALUES (OLD.tenant, OLD.state, OLD.owner, hashtext(OLD.id) & 3, -1),
               (NEW.tenant, NEW.state, NEW.owner, hashtext(NEW.id) & 3, 1)
    ) AS d (tenant, state, owner, shard, n)
    ORDER BY 1, 2, 3 NULLS FIRST, 4
    ON CONFLICT (tenant, state, owner, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
CREATE TRIGGER evaluation_counts_insert AFTER INSERT ON evaluations
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION evaluation_counts_inserted();
CREATE TRIGGER evaluation_counts_delete AFTER DELETE ON evaluations
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION evaluation_counts_deleted();
CREATE TRIGGER evaluation_counts_update AFTER UPDATE OF tenant, state, owner ON evaluations
    FOR EACH ROW WHEN (OLD.tenant IS DISTINCT FROM NEW.tenant OR OLD.state IS DISTINCT FROM NEW.state
                       OR OLD.owner IS DISTINCT FROM NEW.owner)
    EXECUTE FUNCTION evaluation_counts_changed();

CREATE FUNCTION evaluation_counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM evaluation_counts;
    RETURN NULL;
END
$$;
CREATE TRIGGER evaluation_counts_truncate AFTER TRUNCATE ON evaluations
    FOR EACH STATEMENT EXECUTE FUNCTION evaluation_counts_truncate();

-- The jobs already there (DROP INDEX above holds evaluations exclusively until this commits: no writer between).
INSERT INTO evaluation_counts (tenant, state, owner, shard, n)
    SELECT tenant, state, owner, hashtext(id) & 3, count(*) FROM evaluations GROUP BY 1, 2, 3, 4;
