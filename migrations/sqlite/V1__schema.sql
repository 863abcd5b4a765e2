-- The embedded store's schema: the tables and columns of the PostgreSQL schema
-- (migrations/postgres, V1 to V6) as they stand after its last migration, in SQLite's types.
-- Times are INTEGER microseconds since the Unix epoch (UTC): the adapter passes "now" from the
-- process, so comparisons and lease arithmetic are integer arithmetic. JSON columns are TEXT
-- holding one JSON document. Booleans are 0 or 1.

CREATE TABLE nodes (
    id             TEXT PRIMARY KEY,
    hostname       TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    version        TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL
);

-- AUTOINCREMENT: an id is never used twice, even after the newest job is deleted, as with
-- PostgreSQL's sequences (ingest reserves ids before the rows exist).
CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT NOT NULL,
    operation           TEXT NOT NULL,
    params              TEXT NOT NULL DEFAULT '{}',
    priority            INTEGER NOT NULL DEFAULT 0,
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    total_items         INTEGER NOT NULL DEFAULT 0,
    succeeded           INTEGER NOT NULL DEFAULT 0,
    failed              INTEGER NOT NULL DEFAULT 0,
    skipped             INTEGER NOT NULL DEFAULT 0,
    error               TEXT,
    detail              TEXT,
    created_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    updated_at          INTEGER NOT NULL,
    last_heartbeat      INTEGER,
    owner               TEXT,
    lease_epoch         INTEGER NOT NULL DEFAULT 0,
    lease_expires_at    INTEGER,
    items_per_minute    REAL NOT NULL DEFAULT 0,
    progress_at         INTEGER,
    item_id_floor       INTEGER NOT NULL DEFAULT 0,
    dry_run             INTEGER NOT NULL DEFAULT 0,
    run_of              INTEGER,
    retrying            INTEGER NOT NULL DEFAULT 0,
    progress_sampled_at INTEGER
);

CREATE INDEX jobs_status_priority_created_idx ON jobs (status, priority DESC, created_at DESC);
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at DESC, id DESC);

CREATE TABLE job_items (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id       INTEGER NOT NULL,
    customer_id  TEXT NOT NULL,
    item_key     TEXT NOT NULL,
    payload      TEXT,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    result       TEXT,
    error        TEXT,
    processed_at INTEGER,
    "row"        INTEGER
);

CREATE INDEX job_items_job_customer_id_idx ON job_items (job_id, customer_id, id);

CREATE TABLE limiter_scopes (
    scope        TEXT PRIMARY KEY,
    rate         REAL NOT NULL,
    mark         REAL,
    paused_until INTEGER,
    learned_at   INTEGER NOT NULL
);

CREATE TABLE ingests (
    job_id     INTEGER PRIMARY KEY,
    node_id    TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    touched_at INTEGER NOT NULL
);

CREATE TABLE job_progress (
    job_id           INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at               INTEGER NOT NULL,
    succeeded        INTEGER NOT NULL,
    failed           INTEGER NOT NULL,
    skipped          INTEGER NOT NULL,
    items_per_minute REAL NOT NULL,
    PRIMARY KEY (job_id, at)
);
