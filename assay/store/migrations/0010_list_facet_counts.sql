-- Exact job counts per filter value (docs/performance.md, "List scale (keyset paging)").
--
-- 0009 kept jobs per (tenant, state, owner): a list filtered by name, tag, experiment or collection still
-- counted its matches, and a name (a pipeline) or a tag gathers matches as the tenant's history grows. Here
-- every job counts once per facet it has: '' (every job), and each of owner, name, experiment_id,
-- collection_id and its distinct tags that is set, per (tenant, facet, value, state). A list filtered by
-- status plus at most one other column (any values of a one-valued column, or a single tag) sums these rows;
-- other combinations count their matches through their index.
--
-- Kept by triggers in the writing transaction, so a count is exact at every snapshot: inserts and deletes by
-- statement (each statement's rows are added up per key first: one counter update per key and statement),
-- and a change of tenant, state or a facet's column by row, fired only when one changed (progress updates
-- do not fire it). Each key is split over 4 shards (by job id) so concurrent state changes of one tenant
-- rarely wait on the same counter row, and every statement locks its counter rows in key order, so two
-- writers cannot deadlock on them.
-- No writer between the old counters and the new: held until this migration commits.
LOCK TABLE evaluations IN SHARE ROW EXCLUSIVE MODE;
DROP TRIGGER evaluation_counts_insert ON evaluations;
DROP TRIGGER evaluation_counts_delete ON evaluations;
DROP TRIGGER evaluation_counts_update ON evaluations;
DROP TRIGGER evaluation_counts_truncate ON evaluations;
DROP FUNCTION evaluation_counts_inserted();
DROP FUNCTION evaluation_counts_deleted();
DROP FUNCTION evaluation_counts_changed();
DROP FUNCTION evaluation_counts_truncate();
DROP TABLE evaluation_counts;

CREATE TABLE evaluation_facet_counts (
    tenant text NOT NULL,
    facet  text NOT NULL,      -- '' (every job) or the filtered column: owner, name, experiment_id, collection_id, tags
    value  text NOT NULL,      -- '' for facet ''
    state  text NOT NULL,
    shard  smallint NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (tenant, facet, value, state, shard)
);

CREATE FUNCTION evaluation_facets(owner text, name text, tags text[], experiment_id text, collection_id text)
RETURNS TABLE (facet text, value text) LANGUAGE sql IMMUTABLE AS $$
    SELECT '', ''
    UNION ALL SELECT 'owner', owner WHERE owner IS NOT NULL
    UNION ALL SELECT 'name', name WHERE name IS NOT NULL
    UNION ALL SELECT 'experiment_id', experiment_id WHERE experiment_id IS NOT NULL
    UNION ALL SELECT 'collection_id', collection_id WHERE collection_id IS NOT NULL
    UNION ALL SELECT DISTINCT 'tags', t FROM unnest(tags) AS t WHERE t IS NOT NULL
$$;

CREATE FUNCTION evaluation_facet_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_facet_counts AS c (tenant, facet, value, state, shard, n)
    SELECT e.tenant, f.facet, f.value, e.state, hashtext(e.id) & 3, count(*)
    FROM inserted e
    CROSS JOIN LATERAL evaluation_facets(e.owner, e.name, e.tags, e.experiment_id, e.collection_id) f
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant, facet, value, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
CREATE FUNCTION evaluation_facet_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_facet_counts AS c (tenant, facet, value, state, shard, n)
    SELECT e.tenant, f.facet, f.value, e.state, hashtext(e.id) & 3, -count(*)
    FROM deleted e
    CROSS JOIN LATERAL evaluation_facets(e.owner, e.name, e.tags, e.experiment_id, e.collection_id) f
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant, facet, value, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
CREATE FUNCTION evaluation_facet_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_facet_counts AS c (tenant, facet, value, state, shard, n)
    SELECT d.tenant, d.facet, d.value, d.state, d.shard, sum(d.n)
    FROM (
        SELECT OLD.tenant, f.facet, f.value, OLD.state, hashtext(OLD.id) & 3, -1
        FROM evaluation_facets(OLD.owner, OLD.name, OLD.tags, OLD.experiment_id, OLD.collection_id) f
        UNION ALL
        SELECT NEW.tenant, f.facet, f.value, NEW.state, hashtext(NEW.id) & 3, 1
        FROM evaluation_facets(NEW.owner, NEW.name, NEW.tags, NEW.experiment_id, NEW.collection_id) f
    ) AS d (tenant, facet, value, state, shard, n)
    GROUP BY 1, 2, 3, 4, 5
    HAVING sum(d.n) <> 0
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant, facet, value, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
CREATE FUNCTION evaluation_facet_counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM evaluation_facet_counts;
    RETURN NULL;
END
$$;

CREATE TRIGGER evaluation_facet_counts_insert AFTER INSERT ON evaluations
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION evaluation_facet_counts_inserted();
CREATE TRIGGER evaluation_facet_counts_delete AFTER DELETE ON evaluations
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION evaluation_facet_counts_deleted();
CREATE TRIGGER evaluation_facet_counts_update
    AFTER UPDATE OF tenant, state, owner, name, tags, experiment_id, collection_id ON evaluations
    FOR EACH ROW WHEN (
        OLD.tenant IS DISTINCT FROM NEW.tenant OR OLD.state IS DISTINCT FROM NEW.state
        OR OLD.owner IS DISTINCT FROM NEW.owner OR OLD.name IS DISTINCT FROM NEW.name
        OR OLD.tags IS DISTINCT FROM NEW.tags OR OLD.experiment_id IS DISTINCT FROM NEW.experiment_id
        OR OLD.collection_id IS DISTINCT FROM NEW.collection_id
    )
    EXECUTE FUNCTION evaluation_facet_counts_changed();
CREATE TRIGGER evaluation_facet_counts_truncate AFTER TRUNCATE ON evaluations
    FOR EACH STATEMENT EXECUTE FUNCTION evaluation_facet_counts_truncate();

-- The jobs already there (writers wait from the LOCK above until this commits).
INSERT INTO evaluation_facet_counts (tenant, facet, value, state, shard, n)
    SELECT e.tenant, f.facet, f.value, e.state, hashtext(e.id) & 3, count(*)
    FROM evaluations e
    CROSS JOIN LATERAL evaluation_facets(e.owner, e.name, e.tags, e.experiment_id, e.collection_id) f
    GROUP BY 1, 2, 3, 4, 5;
