//! Live progress: what the DbWriter commits and the job-events port announces, fanned out to
//! whoever watches, never slowing the engine. One concept per file: the frames a feed carries
//! ([`events`]), the [`ProgressHub`] that makes them from committed flushes and coalesces them
//! per job ([`hub`], where the policy and its numbers are), the [`HubListener`] through which
//! status changes reach the hub ([`listener`]), and the sinks the hub publishes to, among them
//! the in-process [`ProgressBus`] websocket sessions subscribe to ([`bus`]). Everything is
//! re-exported here, so `progress::X` names each of them.

pub mod bus;
pub mod events;
#[cfg(test)]
mod fixtures;
pub mod hub;
pub mod listener;

pub use self::{
    bus::{LatestSlots, Mailbox, ProgressBus, ProgressSink, Subscription},
    events::{ProgressEvent, ProgressUpdate, StatusChanged},
    hub::{MIN_EVENT_INTERVAL, ProgressHub},
    listener::HubListener,
};
