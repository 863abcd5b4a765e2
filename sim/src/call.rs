//! The path every API request takes, in order, so each endpoint only adds its own work: [`handle`]
//! is the one actix handler of every API method, and an [`Endpoint`] is what a method adds.
//!
//! 1. [`Sim::begin`] on arrival: count the request, check whether it is early for a scope with
//!    an announced retry delay, draw its latency, give it a request id.
//! 2. [`Sim::authorize`]: a served API version (404), bearer and developer token (401), a
//!    well-formed `login-customer-id` and customer id (400), access to the customer (403:
//!    forbidden or unknown), a quota that is not prohibited (403 `ACCESS_PROHIBITED`).
//! 3. [`Endpoint::serve`] parses and validates its body (400; such requests cost no quota),
//! 4. calls [`Sim::admit`]: quotas (429, or a 200 with a quota error per operation), then the
//!    transient-error draw (500/503),
//! 5. waits out the latency ([`Sim::wait_latency`]) and does its work.
//! 6. [`Sim::finish`]: waits out whatever latency is left (errors take as long as answers),
//!    counts the error, records an announced throttle for early detection, and sets the
//!    `request-id` header.

use std::{sync::Arc, time::Duration};

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{HeaderName, HeaderValue},
    web,
};
use tokio::time::Instant;

use super::{
    auth,
    config::SimConfig,
    error::{ErrorClass, GoogleAdsError, SimError, code},
    state::{Sim, lock},
    stats::Kind,
};

/// One API request on its way through the simulator.
pub struct Call {
    pub kind: Kind,
    /// The API version of the path (`v26`), used in error `@type`s.
    pub version: String,
    pub customer_id: String,
    pub request_id: String,
    pub arrived: Instant,
    pub latency: Duration,
    /// The config as it was on arrival.
    pub config: Arc<SimConfig>,
}

/// One API method (`googleAds:search`, each `…:mutate`): its own work on the path above.
pub(crate) trait Endpoint {
    const KIND: Kind;

    /// Steps 3 to 5 for an authorized request: parse `body`, admit it, wait, answer.
    async fn serve(sim: &Sim, call: &Call, body: &[u8]) -> Result<HttpResponse, SimError>;
}

/// `POST /{version}/customers/{customer_id}/{method}`: the path above around `E`'s work.
pub(crate) async fn handle<E: Endpoint>(
    sim: web::Data<Sim>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (version, customer_id) = path.into_inner();
    let call = sim.begin(E::KIND, version, customer_id);
    let result = match sim.authorize(&call, &req) {
        Ok(()) => E::serve(&sim, &call, &body).await,
        Err(refused) => Err(refused),
    };
    sim.finish(&call, result).await
}

impl Sim {
    pub(crate) fn begin(&self, kind: Kind, version: String, customer_id: String) -> Call {
        let arrived = Instant::now();
        let config = self.config_arc();
        let grace = Duration::from_millis(config.early_grace_ms);
        let early = lock(&self.inner.quotas).early(&customer_id, arrived, grace);
        {
            let mut stats = lock(&self.inner.stats);
            stats.count_request(kind);
            if let Some(scope) = early {
                stats.count_early(scope);
            }
        }
        Call {
            kind,
            version,
            customer_id,
            request_id: self.next_request_id(),
            arrived,
            latency: self.inner.faults.latency(&config),
            config,
        }
    }

    pub(crate) fn authorize(&self, call: &Call, req: &HttpRequest) -> Result<(), SimError> {
        if !call.config.serves_version(&call.version) {
            return Err(SimError::not_found(req.path()));
        }
        auth::authenticate(self, &call.config, req)?;
        if let Some(login) = req.headers().get("login-customer-id") {
            let digits = login
                .to_str()
                .is_ok_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
            if !digits {
                return Err(SimError::invalid(vec![
                    GoogleAdsError::new(
                        code("requestError", "INVALID_CUSTOMER_ID"),
                        "The login-customer-id header must be a customer id of digits only.",
                    )
                    .trigger(String::from_utf8_lossy(login.as_bytes())),
                ]));
            }
        }
        let id = &call.customer_id;
        if id.len() != 10 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SimError::invalid(vec![
                GoogleAdsError::new(
                    code("requestError", "INVALID_CUSTOMER_ID"),
                    "Invalid customer ID: expected 10 digits without dashes.",
                )
                .trigger(id.clone()),
            ]));
        }
        let known = lock(&self.inner.data).customers.contains_key(id);
        if !known || call.config.is_forbidden(id) {
            return Err(SimError::permission_denied(id));
        }
        if call.config.developer_quota_prohibited {
            return Err(SimError::access_prohibited("DEVELOPER"));
        }
        if call.config.is_quota_prohibited(id) {
            return Err(SimError::access_prohibited("ACCOUNT"));
        }
        Ok(())
    }

    /// Charges the quotas with `operations` and draws a transient error. A throttled mutate
    /// with `partial_failure` becomes a 200 with per-operation quota errors when so configured.
    pub(crate) fn admit(
        &self,
        call: &Call,
        operations: usize,
        partial_failure: bool,
    ) -> Result<(), SimError> {
        let admitted = lock(&self.inner.quotas).acquire(
            &call.config,
            &call.customer_id,
            operations as u64,
            Instant::now(),
            chrono::Utc::now(),
        );
        if let Err(throttle) = admitted {
            let per_operation = call.config.throttle_in_partial_failure
                && partial_failure
                && call.kind.is_mutate()
                && !throttle.daily;
            return Err(if per_operation {
                SimError::throttled_operations(throttle, operations)
            } else {
                SimError::throttled(throttle)
            });
        }
        lock(&self.inner.stats).operations += operations as u64;
        match self.inner.faults.transient(&call.config) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Sleeps until the request's latency has passed since its arrival.
    pub(crate) async fn wait_latency(&self, call: &Call) {
        tokio::time::sleep_until(call.arrived + call.latency).await;
    }

    /// Renders the outcome after the latency, counting errors and announcing throttles.
    pub(crate) async fn finish(
        &self,
        call: &Call,
        result: Result<HttpResponse, SimError>,
    ) -> HttpResponse {
        self.wait_latency(call).await;
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                self.record(&error);
                error.into_response(&call.version, &call.request_id)
            }
        };
        if let Ok(value) = HeaderValue::from_str(&call.request_id) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("request-id"), value);
        }
        response
    }

    fn record(&self, error: &SimError) {
        if let Some(throttle) = error.throttle() {
            lock(&self.inner.quotas).announce(throttle, Instant::now());
        }
        let mut stats = lock(&self.inner.stats);
        match &error.class {
            ErrorClass::Auth => stats.errors.auth += 1,
            ErrorClass::Permission => stats.errors.permission += 1,
            ErrorClass::Invalid => stats.errors.invalid += 1,
            ErrorClass::Transient => stats.errors.transient += 1,
            ErrorClass::Concurrent => stats.errors.concurrent += 1,
            ErrorClass::Throttled(t) => stats.count_throttle(t.scope, t.daily, false),
            ErrorClass::ThrottledOperations { throttle, .. } => {
                stats.count_throttle(throttle.scope, throttle.daily, true)
            }
            ErrorClass::NotFound => {}
        }
    }
}
