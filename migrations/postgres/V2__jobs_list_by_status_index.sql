-- The list endpoint filtered by status (`GET /api/jobs?status=running`) sorts newest first:
-- (status, created_at DESC, id DESC) serves that filter and order straight from the index, so a
-- page costs its rows whatever the table's size. Unfiltered listing uses jobs_created_idx; the
-- claim query keeps jobs_status_priority_created_idx.
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at DESC, id DESC);
