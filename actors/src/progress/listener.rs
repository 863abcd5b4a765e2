//! How status changes reach the hub: through the job-events port (`crate::events`), like every
//! other listener. Every status change — the API's (submit, pause, resume, cancel, retry) and the
//! engine's (claimed → running, completed, failed) — is announced after its commit, and
//! [`HubListener`] turns each into a [`StatusChanged`]: no polling, no SQL here, and the event
//! follows the commit that made it true. (Polling status rows for watched jobs would add a query
//! per job and second, and still be late.)

use actix::prelude::*;
use async_trait::async_trait;

use super::events::StatusChanged;
use crate::events::{JobChange, JobEvents};

/// The hub as a listener of job changes (`events::JobEvents`): every change whose status is
/// known becomes a [`StatusChanged`], whoever made it.
pub struct HubListener(pub Recipient<StatusChanged>);

#[async_trait]
impl JobEvents for HubListener {
    async fn announce(&self, change: &JobChange) {
        if let Some(status) = change.status {
            self.0.do_send(StatusChanged {
                job_id: change.job_id,
                status,
                error: change.error.clone(),
            });
        }
    }
}
