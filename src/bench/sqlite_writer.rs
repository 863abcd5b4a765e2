//! The embedded store's writer choices, measured on a scratch file (part of `bench engine
//! --store sqlite`): the store's writer thread fed by a channel ([`Writer`]) against a pool of
//! one connection (`deadpool-sqlite`, each write hopping to one of tokio's blocking threads),
//! and `synchronous = NORMAL` (the store's setting) against `FULL`. Each write is one
//! `BEGIN IMMEDIATE` transaction updating one row, the size of a lease renewal; the commit is
//! what differs between the choices, so a bigger write would only hide it. Timed one at a time
//! and with 16 writers queueing at once (the engine's actors and the API together).

use std::{path::Path, time::Instant};

use deadpool_sqlite::{Config as PoolSettings, Hook, HookError, Runtime};
use overseer::sqlite::writer::Writer;
use rusqlite::{Connection, TransactionBehavior};

use super::per_sec;

const WRITES: u64 = 4_000;
const CONCURRENT_WRITERS: u64 = 16;

fn setup(path: &Path, synchronous: &str) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    connection.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous};
         CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, epoch INTEGER NOT NULL);
         INSERT OR IGNORE INTO leases (id, epoch) VALUES (1, 0);"
    ))?;
    Ok(connection)
}

fn one_write(connection: &mut Connection) -> rusqlite::Result<()> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("UPDATE leases SET epoch = epoch + 1 WHERE id = 1", [])?;
    tx.commit()
}

/// A writer the bench can time: sends one write and waits for its commit.
trait BenchWriter: Send + Sync + 'static {
    fn write(&self) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

struct PoolOfOne(deadpool_sqlite::Pool);

impl BenchWriter for PoolOfOne {
    async fn write(&self) -> anyhow::Result<()> {
        let connection = self.0.get().await?;
        connection
            .interact(one_write)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))??;
        Ok(())
    }
}

/// The store's own writer ([`overseer::sqlite::writer::Writer`]).
struct WriterThread(Writer);

impl BenchWriter for WriterThread {
    async fn write(&self) -> anyhow::Result<()> {
        self.0.run(one_write).await??;
        Ok(())
    }
}

/// Writes per second one at a time, then with [`CONCURRENT_WRITERS`] at once.
async fn time<W: BenchWriter>(writer: W) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    for _ in 0..WRITES {
        writer.write().await?;
    }
    let alone = per_sec(WRITES, started.elapsed());
    let writer = std::sync::Arc::new(writer);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_WRITERS)
        .map(|_| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for _ in 0..WRITES / CONCURRENT_WRITERS {
                    writer.write().await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok((alone, per_sec(WRITES, started.elapsed())))
}

/// Prints writes/s of each choice, on files under `dir`.
pub async fn run(dir: &Path) -> anyhow::Result<()> {
    for (name, synchronous, thread) in [
        ("pool of one, NORMAL", "NORMAL", false),
        ("writer thread, NORMAL (the store)", "NORMAL", true),
        ("pool of one, FULL", "FULL", false),
    ] {
        let path = dir.join(format!("writer-{synchronous}-{thread}.db"));
        drop(setup(&path, synchronous)?);
        let (alone, queued) = if thread {
            let pragmas = format!("PRAGMA synchronous = {synchronous};");
            time(WriterThread(Writer::start(&path, &pragmas)?)).await?
        } else {
            let mut config = PoolSettings::new(&path);
            config.pool = Some(deadpool_sqlite::PoolConfig::new(1));
            let pool = config
                .builder(Runtime::Tokio1)?
                .post_create(Hook::async_fn(move |connection, _| {
                    Box::pin(async move {
                        connection
                            .interact(move |c| {
                                c.execute_batch(&format!("PRAGMA synchronous = {synchronous}"))
                            })
                            .await
                            .map_err(|e| HookError::message(e.to_string()))?
                            .map_err(HookError::Backend)
                    })
                }))
                .build()?;
            time(PoolOfOne(pool)).await?
        };
        println!(
            "  sqlite writer, {name:<32}: {alone:>7.0} writes/s one at a time, {queued:>7.0} with {CONCURRENT_WRITERS} at once"
        );
    }
    Ok(())
}
