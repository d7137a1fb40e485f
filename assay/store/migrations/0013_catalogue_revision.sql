-- The catalogue's revision: a counter every statement that writes providers or collections moves, in the same
-- transaction as its rows. A process that remembers what it read of the catalogue for a submit (and the revision
-- it read it at) does not read it again: the statement that creates the job asks catalogue_unchanged(revision),
-- which refuses with SQLSTATE AS001 if the catalogue moved since, and the submit plans again from a fresh read
-- (docs/performance.md, "Submit plans from the catalogue it remembers").
--
-- A row, not a sequence: a sequence moves outside the writer's transaction, so a reader could see the new number
-- with the old rows. Catalogue writes are rare; each takes this one row's lock until it commits.
CREATE TABLE catalogue_revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision  bigint  NOT NULL
);
INSERT INTO catalogue_revision (singleton, revision) VALUES (true, 0);

CREATE FUNCTION catalogue_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalogue_revision SET revision = revision + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER providers_revision AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON providers
    FOR EACH STATEMENT EXECUTE FUNCTION catalogue_changed();
CREATE TRIGGER collections_revision AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON collections
    FOR EACH STATEMENT EXECUTE FUNCTION catalogue_changed();

CREATE FUNCTION catalogue_unchanged(seen bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT revision FROM catalogue_revision) IS DISTINCT FROM seen THEN
        RAISE EXCEPTION 'the catalogue changed after revision %', seen USING ERRCODE = 'AS001';
    END IF;
    RETURN true;
END $$;
