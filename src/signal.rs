//! Waiting for the operator's stop: SIGTERM (what `docker stop` and systemd send) or SIGINT
//! (Ctrl-C). Every long-running command — `serve` and its roles, `demo`, `sim` — waits here, so
//! all of them stop on the same signals.
//!
//! [`StopSignals`] listens from the moment it is made, not from the moment it is awaited: a
//! server made to stop twice (the second stop means "exit now") may get both signals within a
//! millisecond, and a listener registered only after the first had been handled would never
//! hear the second.

#[cfg(unix)]
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGTERM and SIGINT, heard from creation on.
pub struct StopSignals {
    #[cfg(unix)]
    streams: Option<(Signal, Signal)>,
}

impl StopSignals {
    /// Starts listening.
    pub fn listen() -> StopSignals {
        StopSignals {
            #[cfg(unix)]
            streams: signal(SignalKind::terminate())
                .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                .ok(),
        }
    }

    /// The next stop signal (one already received since [`StopSignals::listen`] counts).
    pub async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.streams {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
pub async fn wait_for_signal() {
    StopSignals::listen().next().await
}
