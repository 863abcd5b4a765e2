//! `GET /metrics`: the Prometheus text format. Gauges that are read rather than pushed (jobs by
//! status, the pool) are refreshed on each scrape; everything else is recorded where it
//! happens (see `telemetry::metrics` and `overseer_actors::metrics`). When
//! `OVERSEER_METRICS_TOKEN` is set, a scrape needs `Authorization: Bearer <that token>`.

use actix_web::{HttpRequest, HttpResponse, web};

use super::{
    AppState,
    middleware::{bearer, token_matches, unauthorized},
};
use crate::telemetry::metrics as m;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape));
}

async fn scrape(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(expected) = state
        .config
        .metrics_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        match bearer(&req) {
            Some(given) if token_matches(given, expected) => {}
            Some(_) => return unauthorized("the bearer token is wrong"),
            None => {
                return unauthorized(
                    "/metrics needs Authorization: Bearer <token> (OVERSEER_METRICS_TOKEN)",
                );
            }
        }
    }
    let handle = m::install(state.registry.names());
    m::refresh(&state.engine_store, &state.store).await;
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}
