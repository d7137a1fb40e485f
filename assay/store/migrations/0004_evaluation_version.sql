-- A counter bumped by every change to a job or its runs that the job document shows: a cheap way to
-- tell whether a rendered copy is still current.
ALTER TABLE evaluations ADD COLUMN version bigint NOT NULL DEFAULT 0;
