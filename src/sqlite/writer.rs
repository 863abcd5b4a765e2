//! The embedded store's one writer: a thread of its own that owns the write connection and
//! runs the writes sent to it over a channel, one after another.
//!
//! SQLite takes one writer at a time, so every write waits its turn somewhere; here it waits
//! in the channel, and the thread runs the queue back to back. The alternative measured
//! against it (`bench engine --store sqlite`, "sqlite writer" lines) was a pool of one
//! connection (`deadpool-sqlite`), where each write waits for the pool's one object and then
//! hops to one of tokio's blocking threads. Release build, this machine, five runs: one write
//! at a time the pool was faster in four (the thread did 0.5 to 0.7× its 18,700 to 26,700
//! writes/s; 1.4× in the fifth), and with 16 writers queueing the thread did 4.4 to 6.1×
//! (89,000 to 101,000 writes/s against 15,000 to 23,000), at equal durability. A write alone
//! costs under 80 µs either way, far below anything a job at API speed notices; the writer
//! only limits the store when writes queue (a flush, lease renewals, an ingest batch and the
//! API's changes at once), which is where the thread wins. A write that panics is rolled back
//! and reported to its caller; the thread goes on with the next.

use std::{
    panic::AssertUnwindSafe,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::DbError;

type Work = Box<dyn FnOnce(&mut Connection) + Send>;

/// The sending side; cloned with the store. The thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Work>,
    /// Writes sent and not yet finished (the one running included).
    unfinished: Arc<AtomicUsize>,
}

impl Writer {
    /// Opens the write connection on `path` with `pragmas` and starts its thread.
    pub fn start(path: &Path, pragmas: &str) -> Result<Self, DbError> {
        let mut connection = Connection::open(path)?;
        connection.execute_batch(pragmas)?;
        let (queue, received) = mpsc::channel::<Work>();
        let unfinished = Arc::new(AtomicUsize::new(0));
        let counter = unfinished.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                for work in received {
                    // A panic unwinds through the write's transaction, which rolls it back;
                    // its caller sees the dropped reply.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| work(&mut connection)));
                    counter.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .map_err(|e| DbError::Setup(format!("starting the SQLite writer thread: {e}")))?;
        Ok(Self { queue, unfinished })
    }

    /// Runs `work` on the write connection once the writes before it are done.
    pub async fn run<R, F>(&self, work: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.unfinished.fetch_add(1, Ordering::SeqCst);
        let sent = self.queue.send(Box::new(move |connection| {
            let _ = reply.send(work(connection));
        }));
        if sent.is_err() {
            self.unfinished.fetch_sub(1, Ordering::SeqCst);
            return Err(DbError::SqlitePool(
                "the SQLite writer thread stopped".into(),
            ));
        }
        answer
            .await
            .map_err(|_| DbError::SqlitePool("a SQLite write panicked and was rolled back".into()))
    }

    /// The writer in a pool's terms: one connection, busy while a write runs, the rest
    /// waiting.
    pub fn status(&self) -> deadpool_postgres::Status {
        let unfinished = self.unfinished.load(Ordering::SeqCst);
        deadpool_postgres::Status {
            max_size: 1,
            size: 1,
            available: usize::from(unfinished == 0),
            waiting: unfinished.saturating_sub(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_write_is_reported_and_the_next_write_runs() {
        let dir = std::env::temp_dir().join(format!("overseer-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let writer = Writer::start(&dir.join("w.db"), "PRAGMA journal_mode = WAL;").expect("start");
        writer
            .run(|c| c.execute_batch("CREATE TABLE t (n INTEGER)"))
            .await
            .expect("sent")
            .expect("created");
        let panicked = writer
            .run(|c| -> rusqlite::Result<()> {
                let tx = c.transaction()?;
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                panic!("a bug in a write");
            })
            .await;
        assert!(matches!(panicked, Err(DbError::SqlitePool(m)) if m.contains("panicked")));
        let rows: i64 = writer
            .run(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .expect("the thread goes on")
            .expect("count");
        assert_eq!(rows, 0, "the panicking write was rolled back");
        assert_eq!(writer.status().available, 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
