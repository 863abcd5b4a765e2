//! Where a JobActor is in its life, as one value. The actor moves forward through
//! Starting → Running ⇄ Finishing, or from any of those into Stopping → Draining, and ends in
//! Ended, which says whether the end was on purpose or a crash; each move is one method here that
//! refuses the moves the actor must never make (a stopping job never runs again, a crash is never
//! reported as a clean stop). Chaos' hang is not a phase: it is a fault laid over whichever phase
//! the actor is in (see `JobActor::hung`).

/// The JobActor's phase. See the module doc for the moves between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Building the operation and reading which customers have pending items.
    Starting,
    /// Running customers as the slots allow.
    Running,
    /// Every customer is done: waiting for the last commits and the store's word that no item is
    /// pending, before completing the job.
    Finishing,
    /// Paused, cancelled, lease lost, failed or shutting down: waiting for the customers to stop
    /// and settle.
    Stopping,
    /// Every customer stopped and settled: waiting for their last outcomes to commit, so the
    /// lease is given back only once the next owner would not run them again.
    Draining,
    /// The actor is stopping; `stopped` reports how.
    Ended(End),
}

/// How a JobActor's life ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// On purpose: the job finished, failed, or was given back.
    Clean,
    /// A handler panicked (the message).
    Crashed(String),
}

impl Phase {
    /// The customers are known: start running them. Only from `Starting`; a job that was told
    /// to stop meanwhile stays stopping.
    pub fn customers_loaded(&mut self) -> bool {
        self.step(|phase| matches!(phase, Phase::Starting), Phase::Running)
    }

    /// Every customer is done: confirm and complete. Only from `Running`.
    pub fn finishing(&mut self) -> bool {
        self.step(|phase| matches!(phase, Phase::Running), Phase::Finishing)
    }

    /// Items were left behind after all: back to running them. Only from `Finishing`.
    pub fn unfinished(&mut self) -> bool {
        self.step(|phase| matches!(phase, Phase::Finishing), Phase::Running)
    }

    /// Wind down: from `Starting`, `Running` or `Finishing`; false when already winding down.
    pub fn stop(&mut self) -> bool {
        self.step(|phase| !phase.is_winding_down(), Phase::Stopping)
    }

    /// The customers are all gone: commit their last outcomes. Only from `Stopping`, once.
    pub fn drain(&mut self) -> bool {
        self.step(|phase| matches!(phase, Phase::Stopping), Phase::Draining)
    }

    /// The actor stops on purpose, from wherever it is; a crash already recorded stays one.
    pub fn end_cleanly(&mut self) {
        if !matches!(self, Phase::Ended(End::Crashed(_))) {
            *self = Phase::Ended(End::Clean);
        }
    }

    /// A handler panicked: the actor stops, and its end is a crash whatever else it did.
    pub fn crash(&mut self, message: String) {
        *self = Phase::Ended(End::Crashed(message));
    }

    /// What the actor tells the Supervisor when it has stopped: `None` for a clean end, the
    /// reason otherwise (an actor stopped without ending — its mailbox closed under it — counts
    /// as a crash).
    pub fn crash_report(&self) -> Option<String> {
        match self {
            Phase::Ended(End::Clean) => None,
            Phase::Ended(End::Crashed(message)) => Some(message.clone()),
            _ => Some("the job actor stopped unexpectedly".to_string()),
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, Phase::Running)
    }

    pub fn is_finishing(&self) -> bool {
        matches!(self, Phase::Finishing)
    }

    /// Stopping, draining or ended: no new work, no control checks.
    pub fn is_winding_down(&self) -> bool {
        matches!(self, Phase::Stopping | Phase::Draining | Phase::Ended(_))
    }

    fn step(&mut self, allowed: impl FnOnce(&Phase) -> bool, to: Phase) -> bool {
        let ok = allowed(self);
        if ok {
            *self = to;
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Move = fn(&mut Phase) -> bool;

    fn ended(crashed: bool) -> Phase {
        Phase::Ended(if crashed {
            End::Crashed("boom".into())
        } else {
            End::Clean
        })
    }

    #[test]
    fn each_move_is_taken_only_from_its_phases() {
        let moves: [(&str, Move, Phase); 5] = [
            ("customers_loaded", Phase::customers_loaded, Phase::Running),
            ("finishing", Phase::finishing, Phase::Finishing),
            ("unfinished", Phase::unfinished, Phase::Running),
            ("stop", Phase::stop, Phase::Stopping),
            ("drain", Phase::drain, Phase::Draining),
        ];
        // For each phase, which of the moves above it accepts (in the same order).
        let table: [(Phase, [bool; 5]); 7] = [
            (Phase::Starting, [true, false, false, true, false]),
            (Phase::Running, [false, true, false, true, false]),
            (Phase::Finishing, [false, false, true, true, false]),
            (Phase::Stopping, [false, false, false, false, true]),
            (Phase::Draining, [false; 5]),
            (ended(false), [false; 5]),
            (ended(true), [false; 5]),
        ];
        for (from, accepted) in table {
            for ((name, step, to), accept) in moves.iter().zip(accepted) {
                let mut phase = from.clone();
                assert_eq!(step(&mut phase), accept, "{name} from {from:?}");
                let expected = if accept { to.clone() } else { from.clone() };
                assert_eq!(phase, expected, "{name} from {from:?}");
            }
        }
    }

    #[test]
    fn a_crash_is_never_reported_as_a_clean_stop() {
        let mut phase = Phase::Running;
        phase.crash("boom".into());
        phase.end_cleanly();
        assert_eq!(phase.crash_report(), Some("boom".into()));
    }

    #[test]
    fn the_end_reported_follows_the_phase_the_actor_stopped_in() {
        let cases = [
            (ended(false), None),
            (ended(true), Some("boom")),
            (Phase::Running, Some("the job actor stopped unexpectedly")),
            (Phase::Draining, Some("the job actor stopped unexpectedly")),
        ];
        for (phase, expected) in cases {
            assert_eq!(
                phase.crash_report().as_deref(),
                expected,
                "stopped in {phase:?}"
            );
        }
    }

    #[test]
    fn ending_cleanly_works_from_any_phase() {
        for mut phase in [
            Phase::Starting,
            Phase::Finishing,
            Phase::Stopping,
            Phase::Draining,
        ] {
            phase.end_cleanly();
            assert_eq!(phase, ended(false));
        }
    }
}
