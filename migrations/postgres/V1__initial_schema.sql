-- Overseer's schema: nodes, jobs, and the items of each job.
--
-- job_items keeps `status` out of every index and leaves 30% of each page free, so the
-- DbWriter's batched status updates are HOT updates (no index maintenance): measured here,
-- that roughly doubles the batched UPDATE throughput. There is no foreign key from items to
-- jobs either: it would fire a trigger per row on COPY ingest, and jobs are never deleted.

CREATE TABLE nodes (
    id             text PRIMARY KEY,
    hostname       text NOT NULL,
    pid            integer NOT NULL,
    version        text NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    last_heartbeat timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL,
    operation        text NOT NULL,
    params           jsonb NOT NULL DEFAULT '{}'::jsonb,
    priority         integer NOT NULL DEFAULT 0,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    total_items      bigint NOT NULL DEFAULT 0,
    succeeded        bigint NOT NULL DEFAULT 0,
    failed           bigint NOT NULL DEFAULT 0,
    skipped          bigint NOT NULL DEFAULT 0,
    error            text,
    detail           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_heartbeat   timestamptz,
    owner            text,
    lease_epoch      bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    -- Exponentially weighted items/minute over recent flushes, and when it was last moved.
    items_per_minute double precision NOT NULL DEFAULT 0,
    progress_at      timestamptz,
    -- Every item of the job has an id above this: lets keyset paging start at the job's items.
    item_id_floor    bigint NOT NULL DEFAULT 0
);

-- The list endpoint filters by status and sorts newest first; the claim query filters by
-- status and sorts by priority.
CREATE INDEX jobs_status_priority_created_idx ON jobs (status, priority DESC, created_at DESC);
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);

CREATE TABLE job_items (
    id           bigserial PRIMARY KEY,
    job_id       bigint NOT NULL,
    customer_id  text NOT NULL,
    item_key     text NOT NULL,
    payload      jsonb,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped')),
    attempts     integer NOT NULL DEFAULT 0,
    result       jsonb,
    error        text,
    processed_at timestamptz,
    -- Deferrable so that ingest can COPY every row first and then report all duplicates
    -- by row, instead of stopping at the first one.
    CONSTRAINT job_items_job_customer_key_unique UNIQUE (job_id, customer_id, item_key)
        DEFERRABLE INITIALLY IMMEDIATE
) WITH (fillfactor = 70);

-- A CustomerActor streams its pending items in id order.
CREATE INDEX job_items_job_customer_id_idx ON job_items (job_id, customer_id, id);
