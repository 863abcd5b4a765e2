//! The body of a submission, from the socket to the parser: [`feed`] moves chunks from the
//! request into a bounded channel, enforcing the size limit and the deadline (a body that has
//! not fully arrived `OVERSEER_BODY_TIMEOUT_MS` after the request started is a 408, however
//! slowly or steadily it drips), and [`ChunkReader`] turns that channel into `std::io::Read` for
//! the blocking parsers. Nothing here touches the database: a body that never arrives costs a
//! task and a few chunks of memory until its deadline, nothing more.

use std::io::Read;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::{sync::mpsc, time::Instant};

use super::BodyProblem;

/// Chunks in flight between the socket and the parser.
pub const CHUNKS_IN_FLIGHT: usize = 4;

pub fn chunk_channel() -> (mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>) {
    mpsc::channel(CHUNKS_IN_FLIGHT)
}

pub fn too_large(limit: usize) -> BodyProblem {
    BodyProblem::TooLarge(format!(
        "the body is larger than the limit of {limit} bytes"
    ))
}

/// Reads `body` into `chunks` until it ends (Ok), passes `limit` bytes, fails, or is still
/// arriving at `deadline`. Returns early (Ok) when the parser stopped listening: it has its own
/// reason, which the caller hears from it.
pub async fn feed<S, E>(
    body: S,
    limit: usize,
    deadline: Instant,
    timeout_ms: u64,
    chunks: mpsc::Sender<Bytes>,
) -> Result<(), BodyProblem>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    futures_util::pin_mut!(body);
    let mut received = 0usize;
    loop {
        let next = tokio::time::timeout_at(deadline, body.next())
            .await
            .map_err(|_| BodyProblem::TimedOut(timeout_ms))?;
        let Some(chunk) = next else { return Ok(()) };
        let chunk =
            chunk.map_err(|e| BodyProblem::Unreadable(format!("reading the body failed: {e}")))?;
        received += chunk.len();
        if received > limit {
            return Err(too_large(limit));
        }
        // A parser that cannot keep up holds the body back, under the same deadline.
        match tokio::time::timeout_at(deadline, chunks.send(chunk)).await {
            Err(_) => return Err(BodyProblem::TimedOut(timeout_ms)),
            Ok(Err(_)) => return Ok(()),
            Ok(Ok(())) => {}
        }
    }
}

/// Adapts a channel of body chunks to `std::io::Read` for a blocking parser.
pub struct ChunkReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    pub fn new(chunks: mpsc::Receiver<Bytes>) -> Self {
        Self {
            chunks,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
