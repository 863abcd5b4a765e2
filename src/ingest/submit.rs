//! One submission, from its first byte to a job: the pipeline that the HTTP handler and the
//! benches both run, so what a bench measures is what a client gets.
//!
//! [`submit`] wires the stages of this module's siblings together: the body stream →
//! [`body::feed`] (size limit, deadline) → a parser on a blocking thread ([`csv_rows`] or
//! [`json_rows`]) → [`RowSink`] → a [`RowStore`], which stages the rows as they come and, once
//! the body has ended and the header is valid, commits them as a job in one step. The store is a
//! port, so this module holds no SQL: `store::ingest` is the PostgreSQL side.
//!
//! Whose problem explains a failure: the body's own (a deadline, the size limit, a broken
//! upload) wins over whatever the parser or the store then saw, because it caused them; then
//! the store's (a bad row, too many items, the database); then the header's. Whatever was
//! staged before a failure is aborted, so nothing of a refused submission stays.

use std::future::Future;

use bytes::Bytes;
use futures_util::Stream;
use tokio::{sync::mpsc, time::Instant};

use overseer_actors::{JobId, OperationRegistry};

use super::{
    BodyProblem, HeaderError, NewJob, RowBatch,
    body::{self, ChunkReader},
    csv_rows, json_rows, row_channel,
    sink::RowSink,
};

/// How a body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// What ingest stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    pub job_id: JobId,
    pub items: u64,
}

/// Where a submission's rows go: staged as they arrive, then made a job all at once.
pub trait RowStore {
    type Staged: StagedRows<Error = Self::Error> + Send;
    type Error: Send;

    /// Stages the rows of `rows` as they come; on a refusal, has already deleted what it wrote.
    fn write(
        &self,
        rows: mpsc::Receiver<RowBatch>,
    ) -> impl Future<Output = Result<Self::Staged, Self::Error>> + Send;
}

/// Rows written but not yet a job.
pub trait StagedRows {
    type Error;

    /// Makes the staged rows the job `job`, all at once.
    fn commit(self, job: &NewJob) -> impl Future<Output = Result<Ingested, Self::Error>> + Send;

    /// Deletes what was staged.
    fn abort(self) -> impl Future<Output = ()> + Send;
}

/// A submission's body and what is known before it is read.
pub struct Source<S> {
    pub format: Format,
    /// The header, when it came ahead of the body (a CSV's, from the query string) and has been
    /// validated already; a JSON body carries its own.
    pub header: Option<NewJob>,
    pub body: S,
    /// Bytes the body may have.
    pub limit: usize,
    /// When the body must have fully arrived.
    pub deadline: Instant,
    /// The deadline as the client set it, for the 408's message.
    pub timeout_ms: u64,
}

/// Why a submission was refused; nothing of it is stored.
#[derive(Debug)]
pub enum SubmitError<E> {
    Body(BodyProblem),
    Header(HeaderError),
    Store(E),
}

/// Runs one submission through the pipeline; see the module doc.
pub async fn submit<S, E, W>(
    source: Source<S>,
    registry: &OperationRegistry,
    store: &W,
) -> Result<Ingested, SubmitError<W::Error>>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
    W: RowStore,
{
    let Source {
        format,
        header,
        body,
        limit,
        deadline,
        timeout_ms,
    } = source;
    let (chunks_tx, chunks_rx) = body::chunk_channel();
    let (rows_tx, rows_rx) = row_channel();
    let parser = tokio::task::spawn_blocking(move || {
        let input = ChunkReader::new(chunks_rx);
        let sink = RowSink::new(rows_tx);
        match format {
            Format::Csv => csv_rows::parse(input, sink).map(|()| None),
            Format::Json => json_rows::parse(input, sink).map(Some),
        }
    });
    let (fed, written) = futures_util::join!(
        body::feed(body, limit, deadline, timeout_ms, chunks_tx),
        store.write(rows_rx),
    );
    let parsed = parser.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the submission's parser failed");
        Err(BodyProblem::Unreadable(
            "the body could not be parsed".into(),
        ))
    });
    let staged = match (fed, written) {
        (Err(problem), Ok(staged)) => {
            staged.abort().await;
            return Err(SubmitError::Body(problem));
        }
        (Err(problem), Err(_)) => return Err(SubmitError::Body(problem)),
        (Ok(()), written) => written.map_err(SubmitError::Store)?,
    };
    let job = match (header, parsed) {
        (Some(job), _) => Ok(job),
        (None, Ok(Some(raw))) => super::validate_header(raw, registry).map_err(SubmitError::Header),
        (None, Ok(None)) => Err(SubmitError::Body(BodyProblem::InvalidJson(
            "no submission was read".into(),
        ))),
        (None, Err(problem)) => Err(SubmitError::Body(problem)),
    };
    match job {
        Ok(job) => staged.commit(&job).await.map_err(SubmitError::Store),
        Err(error) => {
            staged.abort().await;
            Err(error)
        }
    }
}
