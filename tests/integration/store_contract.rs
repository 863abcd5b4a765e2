//! The engine's `Store` contract (`overseer_testkit::store_contract`) run against each adapter:
//! the in-memory store the engine's own tests use, PostgreSQL and the embedded SQLite store. Each check gets a store of
//! its own (for PostgreSQL, a database of its own).

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use overseer::{sqlite::SqliteStore, store::PgStore};
use overseer_actors::{JobId, Store, memory_store::MemoryStore};
use overseer_testkit::store_contract::{self, Fixture};
use serde_json::json;

use crate::support::{TestDb, test_config};

struct Memory(MemoryStore);

#[async_trait]
impl Fixture for Memory {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.0.clone())
    }

    async fn add_job(&self, items: &[(&str, &str)]) -> JobId {
        self.0.add_job("noop", json!({}), 0, items)
    }

    async fn counters(&self, job: JobId) -> (i64, i64, i64) {
        let job = self.0.job(job).expect("the job");
        (job.succeeded, job.failed, job.skipped)
    }

    async fn rows_by_status(&self, job: JobId) -> BTreeMap<String, i64> {
        let mut rows = BTreeMap::new();
        for item in self.0.items(job) {
            *rows.entry(item.status.as_str().to_string()).or_default() += 1;
        }
        rows
    }
}

struct Postgres {
    /// Kept so the database outlives the check.
    _db: TestDb,
    store: PgStore,
}

#[async_trait]
impl Fixture for Postgres {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    async fn add_job(&self, items: &[(&str, &str)]) -> JobId {
        let mut client = self.store.pool.get().await.expect("a connection");
        let tx = client.transaction().await.expect("a transaction");
        let total = items.len() as i64;
        let job: JobId = tx
            .query_one(
                "INSERT INTO jobs (name, operation, total_items) VALUES ('contract', 'noop', $1)
                 RETURNING id",
                &[&total],
            )
            .await
            .expect("insert the job")
            .get(0);
        for (row, (customer, key)) in items.iter().enumerate() {
            tx.execute(
                "INSERT INTO job_items (job_id, customer_id, item_key, \"row\") VALUES ($1, $2, $3, $4)",
                &[&job, customer, key, &(row as i64 + 1)],
            )
            .await
            .expect("insert an item");
        }
        tx.commit().await.expect("commit");
        job
    }

    async fn counters(&self, job: JobId) -> (i64, i64, i64) {
        let client = self.store.pool.get().await.expect("a connection");
        let row = client
            .query_one(
                "SELECT succeeded, failed, skipped FROM jobs WHERE id = $1",
                &[&job],
            )
            .await
            .expect("the job");
        (row.get(0), row.get(1), row.get(2))
    }

    async fn rows_by_status(&self, job: JobId) -> BTreeMap<String, i64> {
        overseer::store::items::count_by_status(&self.store.pool, job)
            .await
            .expect("count the rows")
            .into_iter()
            .collect()
    }
}

#[actix_rt::test]
async fn the_memory_store_keeps_the_store_contract() {
    store_contract::run(|| {
        Box::pin(async { Box::new(Memory(MemoryStore::new())) as Box<dyn Fixture> })
    })
    .await;
}

#[actix_rt::test]
async fn postgresql_keeps_the_store_contract() {
    store_contract::run(|| {
        Box::pin(async {
            let db = TestDb::new("store_contract");
            let pool = overseer::store::connect(&test_config(&db).pool_settings())
                .await
                .expect("connect and migrate");
            Box::new(Postgres {
                _db: db,
                store: PgStore::new(pool),
            }) as Box<dyn Fixture>
        })
    })
    .await;
}

struct Sqlite {
    /// Kept so the file outlives the check.
    _db: TestDb,
    store: SqliteStore,
}

#[async_trait]
impl Fixture for Sqlite {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.store.clone())
    }

    async fn add_job(&self, items: &[(&str, &str)]) -> JobId {
        let items: Vec<(String, String)> = items
            .iter()
            .map(|(c, k)| (c.to_string(), k.to_string()))
            .collect();
        self.store
            .write(move |tx| -> Result<JobId, overseer::store::DbError> {
                tx.execute(
                    "INSERT INTO jobs (name, operation, total_items, created_at, updated_at)
                     VALUES ('contract', 'noop', ?1, 0, 0)",
                    [items.len() as i64],
                )?;
                let job = tx.last_insert_rowid();
                for (row, (customer, key)) in items.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO job_items (job_id, customer_id, item_key, \"row\")
                         VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![job, customer, key, row as i64 + 1],
                    )?;
                }
                Ok(job)
            })
            .await
            .expect("insert the job")
    }

    async fn counters(&self, job: JobId) -> (i64, i64, i64) {
        self.store
            .read(move |c| {
                c.query_row(
                    "SELECT succeeded, failed, skipped FROM jobs WHERE id = ?1",
                    [job],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
            })
            .await
            .expect("the job")
    }

    async fn rows_by_status(&self, job: JobId) -> BTreeMap<String, i64> {
        overseer::sqlite::items::count_by_status(&self.store, job)
            .await
            .expect("count the rows")
            .into_iter()
            .collect()
    }
}

#[actix_rt::test]
async fn the_embedded_store_keeps_the_store_contract() {
    store_contract::run(|| {
        Box::pin(async {
            let db = TestDb::sqlite("store_contract");
            let path = db.dir.as_ref().expect("a directory").join("overseer.db");
            let store = SqliteStore::open(&path, 2).await.expect("open and migrate");
            Box::new(Sqlite { _db: db, store }) as Box<dyn Fixture>
        })
    })
    .await;
}
