-- Dry runs (API.md "Dry runs"): a job that does every read and has every change validated
-- without making it. `run_of` links a real job made from a finished dry run (POST
-- /api/jobs/{id}/run) to the dry run it repeats.
ALTER TABLE jobs ADD COLUMN dry_run boolean NOT NULL DEFAULT false;
ALTER TABLE jobs ADD COLUMN run_of bigint;

-- A retried job's failed items are put back to pending in the background, in batches
-- (store/bulk.rs); until the last batch is in, the job is not claimable, or the engine could
-- find nothing pending and complete it half-reset.
ALTER TABLE jobs ADD COLUMN retrying boolean NOT NULL DEFAULT false;
