-- Status together with another column, counted and paged from the index alone (docs/performance.md, "List
-- scale (keyset paging)").
--
-- evaluation_facet_counts sums a list filtered by status alone or by one other column alone. Status together
-- with owner, name, experiment or collection counts its matches with count(*) through that column's index;
-- without the state in the index, each match was a visit to the table to read its state (20k visits for an
-- owner of 20k jobs: the status+owner list took twice as long at 200k jobs as at 1k). With the state carried
-- in the index entries (INCLUDE: not a key, so the order the list reads them in is unchanged), the count and
-- the page's ids read the index alone, and only the page's own rows are read from the table. A change of
-- state already rewrote every index entry of its job (the state is indexed, so no update of it is HOT), so
-- writes cost the same.
DROP INDEX evaluations_list_name;
CREATE INDEX evaluations_list_name ON evaluations (tenant, name, created_at DESC, id DESC) INCLUDE (state);
DROP INDEX evaluations_list_owner;
CREATE INDEX evaluations_list_owner ON evaluations (tenant, owner, created_at DESC, id DESC) INCLUDE (state);
DROP INDEX evaluations_list_experiment;
CREATE INDEX evaluations_list_experiment ON evaluations (tenant, experiment_id, created_at DESC, id DESC)
    INCLUDE (state) WHERE experiment_id IS NOT NULL;
DROP INDEX evaluations_list_collection;
CREATE INDEX evaluations_list_collection ON evaluations (tenant, collection_id, created_at DESC, id DESC)
    INCLUDE (state) WHERE collection_id IS NOT NULL;
