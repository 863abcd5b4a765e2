//! Job state changes from the API to the workers, through PostgreSQL `LISTEN`/`NOTIFY`.
//!
//! The API process and the worker processes share nothing but the database. After every
//! submission and state change (pause, resume, cancel, retry) the API sends
//! `NOTIFY overseer_jobs, '<job id>'`; every worker keeps one connection listening on that
//! channel and tells its engine at once, so the running JobActor checks the job's state now
//! (pause and cancel stop new calls within milliseconds, not at the next control tick) and the
//! Supervisor claims new work now. Polling stays as the fallback: a notification lost while the
//! listener reconnects is caught by the next control or claim tick (at most a second), and the
//! listener asks for a claim after every reconnect.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use overseer_actors::{JobChange, JobEvents, JobId};
use tokio_postgres::{AsyncMessage, NoTls};

use super::DbError;

/// The channel job changes are announced on.
pub const CHANNEL: &str = "overseer_jobs";
/// Wait between reconnection attempts of the listener.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Announces that a job's state changed.
pub async fn job_changed(pool: &Pool, job_id: JobId) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &job_id.to_string()])
        .await?;
    Ok(())
}

/// The workers of other processes as listeners of job changes: each change is a `NOTIFY`.
/// Best effort: a lost one is caught by their polling.
pub struct NotifyListener(pub Pool);

#[async_trait]
impl JobEvents for NotifyListener {
    async fn announce(&self, change: &JobChange) {
        if let Err(error) = job_changed(&self.0, change.job_id).await {
            tracing::warn!(job_id = change.job_id, %error, "announcing a job change failed; workers will poll");
        }
    }
}

/// Listens for job changes until the process ends, reconnecting whenever the connection
/// drops; `on_change(Some(id))` per notification, `on_change(None)` after each (re)connect.
pub fn spawn_listener(
    config: tokio_postgres::Config,
    on_change: impl Fn(Option<JobId>) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = listen(&config, &on_change).await {
                tracing::warn!(%error, "job change listener lost its connection; reconnecting");
            }
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    })
}

async fn listen(
    config: &tokio_postgres::Config,
    on_change: &(impl Fn(Option<JobId>) + Sync),
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(Ok(n.payload().to_string()));
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = tx.send(Err(error));
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    on_change(None);
    while let Some(message) = rx.recv().await {
        match message {
            Ok(payload) => match payload.parse::<JobId>() {
                Ok(id) => on_change(Some(id)),
                Err(_) => tracing::debug!(payload, "ignoring a malformed job notification"),
            },
            Err(error) => {
                driver.abort();
                return Err(error);
            }
        }
    }
    drop(client);
    Ok(())
}
