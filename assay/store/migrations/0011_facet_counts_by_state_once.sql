-- Job counts per facet value without the state (docs/performance.md, "List scale (keyset paging)").
--
-- 0010 kept every facet per state, so each state change moved a job's every facet row (about a dozen counter
-- rows per change, 0.6 ms of database time per job in a write bench). Now only facet '' (every job) is kept
-- per state; the other facets are kept with state '' (any state) and a state change touches two counter
-- rows. A list filtered by status alone, or by one other column alone, sums counter rows; status together
-- with another column counts its matches through an index.
LOCK TABLE evaluations IN SHARE ROW EXCLUSIVE MODE;

CREATE FUNCTION evaluation_facets(state text, owner text, name text, tags text[], experiment_id text,
                                  collection_id text)
RETURNS TABLE (facet text, value text, state text) LANGUAGE sql IMMUTABLE AS $$
    SELECT '', '', state
    UNION ALL SELECT 'owner', owner, '' WHERE owner IS NOT NULL
    UNION ALL SELECT 'name', name, '' WHERE name IS NOT NULL
    UNION ALL SELECT 'experiment_id', experiment_id, '' WHERE experiment_id IS NOT NULL
    UNION ALL SELECT 'collection_id', collection_id, '' WHERE collection_id IS NOT NULL
    UNION ALL SELECT DISTINCT 'tags', t, '' FROM unnest(tags) AS t WHERE t IS NOT NULL
$$;

CREATE OR REPLACE FUNCTION evaluation_facet_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_facet_counts AS c (tenant, facet, value, state, shard, n)
    SELECT e.tenant, f.facet, f.value, f.state, hashtext(e.id) & 3, count(*)
    FROM inserted e
    CROSS JOIN LATERAL evaluation_facets(e.state, e.owner, e.name, e.tags, e.experiment_id, e.collection_id) f
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant, facet, value, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION evaluation_facet_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO evaluation_facet_counts AS c (tenant, facet, value, state, shard, n)
    SELECT e.tenant, f.facet, f.value, f.state, hashtext(e.id) & 3, -count(*)
    FROM deleted e
    CROSS JOIN LATERAL evaluation_facets(e.state, e.owner, e.name, e.tags, e.experiment_id, e.collection_id) f
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant, facet, value, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
-- A change of state alone (the hub's, several per job) moves the job between two rows of facet ''; any other
-- change recounts the job's facets, and rows that did not change cancel out (HAVING).
CREATE OR REPLACE FUNCTION evaluation_facet_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.tenant = NEW.tenant AND OLD.owner IS NOT DISTINCT FROM NEW.owner AND OLD.name = NEW.name
       AND OLD.tags = NEW.tags AND OLD.experiment_id IS NOT DISTINCT FROM NEW.experiment_id
       AND OLD.collection_id IS NOT DISTINCT FROM NEW.collection_id THEN
        INSERT INTO evaluation_facet_counts AS c (tenant, facet, value, state, shard, n)
        SELECT NEW.tenant, '', '', d.state, hashtext(NEW.id) & 3, d.n
        FROM (VALUES (OLD.state, -1), (NEW.state, 1)) AS d (state, n)
        ORDER BY d.state
        ON CONFLICT (tenant, facet, value, state, shard) DO UPDATE SET n = c.n + excluded.n;
        RETURN NULL;
    END IF;
    INSERT INTO evaluation_facet_counts AS c (tenant, facet, value, state, shard, n)
    SELECT d.tenant, d.facet, d.value, d.state, d.shard, sum(d.n)
    FROM (
        SELECT OLD.tenant, f.facet, f.value, f.state, hashtext(OLD.id) & 3, -1
        FROM evaluation_facets(OLD.state, OLD.owner, OLD.name, OLD.tags, OLD.experiment_id, OLD.collection_id) f
        UNION ALL
        SELECT NEW.tenant, f.facet, f.value, f.state, hashtext(NEW.id) & 3, 1
        FROM evaluation_facets(NEW.state, NEW.owner, NEW.name, NEW.tags, NEW.experiment_id, NEW.collection_id) f
    ) AS d (tenant, facet, value, state, shard, n)
    GROUP BY 1, 2, 3, 4, 5
    HAVING sum(d.n) <> 0
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant, facet, value, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;
DROP FUNCTION evaluation_facets(text, text, text[], text, text);

-- Recount in the new layout (writers wait from the LOCK above until this commits).
DELETE FROM evaluation_facet_counts;
INSERT INTO evaluation_facet_counts (tenant, facet, value, state, shard, n)
    SELECT e.tenant, f.facet, f.value, f.state, hashtext(e.id) & 3, count(*)
    FROM evaluations e
    CROSS JOIN LATERAL evaluation_facets(e.state, e.owner, e.name, e.tags, e.experiment_id, e.collection_id) f
    GROUP BY 1, 2, 3, 4, 5;
