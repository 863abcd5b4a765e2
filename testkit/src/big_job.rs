//! A job of a million items written straight into the schema, in seconds: for the tests and
//! benches that measure what the API does to a big job (cancel, retry), not how it got in.
//! (Ingest has benches of its own; going through it here would add a minute per job.)

use tokio_postgres::Client;

/// What the job holds.
pub struct BigJob<'a> {
    pub items: i64,
    pub customers: i64,
    /// The job's status (`pending`, `completed`, …).
    pub status: &'a str,
    /// Every item's status (`pending`, `failed`, …); the job's counters agree.
    pub item_status: &'a str,
    pub params: &'a str,
}

/// Inserts the job and its items in one transaction; returns its id.
pub async fn insert(client: &mut Client, job: &BigJob<'_>) -> Result<i64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let floor: i64 = tx
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('job_items', 'id'))",
            &[],
        )
        .await?
        .get(0);
    let failed = if job.item_status == "failed" {
        job.items
    } else {
        0
    };
    let id: i64 = tx
        .query_one(
            "INSERT INTO jobs (name, operation, params, status, total_items, failed, item_id_floor,
                               finished_at)
             VALUES ('big job', 'noop', $1::text::jsonb, $2, $3, $4, $5,
                     CASE WHEN $2 IN ('completed', 'failed', 'cancelled') THEN now() END)
             RETURNING id",
            &[&job.params, &job.status, &job.items, &failed, &floor],
        )
        .await?
        .get(0);
    tx.execute(
        "INSERT INTO job_items (job_id, customer_id, item_key, \"row\", status, error)
         SELECT $1, (1000000000 + g % $3)::text, g::text, g, $4,
                CASE WHEN $4 = 'failed' THEN 'failed before' END
           FROM generate_series(1, $2::bigint) AS g",
        &[&id, &job.items, &job.customers, &job.item_status],
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}
