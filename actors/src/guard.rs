//! Catching panics inside actors.
//!
//! actix 0.13 does not: a panic in a handler, an interval callback or a spawned future unwinds
//! out of the actor's task, tokio drops that task, `Supervised::restarting` never runs and the
//! address is dead (every send is `MailboxError::Closed`) — and nobody is told why. So every
//! handler body and interval callback of the Job and Customer actors runs inside [`guarded`],
//! and a customer's work future inside [`catch_future`]: a panic is caught, logged with its
//! message, counted (`overseer_actor_panics_total{kind}`), handed to the actor
//! ([`Guarded::panicked`]) and turned into an ordinary stop, which the actor's `stopped`
//! reports to whoever restarts it. The per-process singletons (Supervisor, DbWriter,
//! RateLimiter) guard their handlers too, but log and go on rather than stop: nobody above
//! them could restart them, and without them every job stalls.

use std::{
    any::Any,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
};

use actix::prelude::*;
use futures_util::FutureExt;

/// An actor whose handlers are guarded.
pub trait Guarded: Actor<Context = Context<Self>> {
    /// The `kind` label of the panic counter (`job`, `customer`, `supervisor`).
    const KIND: &'static str;

    /// Whether a panic stops the actor (so whoever supervises it restarts it from the store).
    /// The Supervisor has nobody above it: it logs and goes on instead.
    const STOP_ON_PANIC: bool = true;

    /// Called once the panic is caught, before the actor stops: remember why.
    fn panicked(&mut self, message: String);
}

/// Runs `body`; if it panics, reports the panic and stops the actor. `None` after a panic.
pub fn guarded<A, R>(
    act: &mut A,
    ctx: &mut Context<A>,
    body: impl FnOnce(&mut A, &mut Context<A>) -> R,
) -> Option<R>
where
    A: Guarded,
{
    match catch_unwind(AssertUnwindSafe(|| body(act, ctx))) {
        Ok(result) => Some(result),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            record(A::KIND, &message);
            act.panicked(message);
            if A::STOP_ON_PANIC {
                ctx.stop();
            }
            None
        }
    }
}

/// Runs a future to completion, turning a panic inside it into `Err(message)` (counted and
/// logged like a handler's).
pub async fn catch_future<T>(
    kind: &'static str,
    future: impl Future<Output = T>,
) -> Result<T, String> {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(value) => Ok(value),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            record(kind, &message);
            Err(message)
        }
    }
}

fn record(kind: &'static str, message: &str) {
    tracing::error!(
        kind,
        panic = message,
        "actor panicked; stopping it so it is restarted"
    );
    crate::metrics::actor_panicked(kind);
}

/// The text of a panic (`panic!("…")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}
