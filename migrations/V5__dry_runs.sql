-- Dry runs (API.md "Dry runs"): a job that does every read and has every change validated
-- without making it. `run_of` links a real job made from a finished dry run (POST
-- /api/jobs/{id}/run) to the dry run it repeats.
ALTER TABLE jobs ADD COLUMN dry_run boolean NOT NULL DEFAULT false;
ALTER TABLE jobs ADD COLUMN run_of bigint;
