-- Throughput history: a few samples per job of the counters a flush left, so a finished job's
-- chart shows how it ran (the live feed only reaches clients that were watching).
--
-- A sample is taken by the DbWriter's flush statement itself (`src/store/flush.rs`), in the
-- same transaction that moves the job's counters, at most once every 10 s per job:
-- `jobs.progress_sampled_at` is when the job's last sample was taken. It lives on the job row
-- because that row is locked by the flush's UPDATE, so two flushes of one job in flight at
-- once see each other's choice and never both sample.
--
-- Bounded: a job keeps at most 720 samples (2 hours at 10 s); beyond that, every second
-- sample of the older half is deleted, so the recent past stays at full resolution and the
-- distant past thins out. The samples go with their job (ON DELETE CASCADE), should jobs ever
-- be deleted. The primary key is the index every read (one job, in time order) and the
-- thinning use.

ALTER TABLE jobs ADD COLUMN progress_sampled_at timestamptz;

CREATE TABLE job_progress (
    job_id           bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at               timestamptz NOT NULL,
    succeeded        bigint NOT NULL,
    failed           bigint NOT NULL,
    skipped          bigint NOT NULL,
    items_per_minute double precision NOT NULL,
    PRIMARY KEY (job_id, at)
);
