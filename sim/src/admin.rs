//! The simulator's own control surface under `/sim`, outside the Google API (no auth, no
//! quota): `GET /sim/stats`, `GET /sim/config`, `PUT /sim/config` with a partial config to merge
//! (422 for unknown fields, bad values or data-shaping fields), `POST /sim/reset-stats`, and
//! `GET /sim/customers/{customer_id}` to look at one customer's data.

use actix_web::{HttpResponse, http::StatusCode, web};
use serde_json::{Value, json};

use super::{config::ConfigError, state::Sim};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/sim")
            .route("/stats", web::get().to(stats))
            .route("/config", web::get().to(config))
            .route("/config", web::put().to(put_config))
            .route("/reset-stats", web::post().to(reset_stats))
            .route("/customers/{customer_id}", web::get().to(customer)),
    );
}

fn error(status: StatusCode, rpc_status: &str, message: String) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"code": status.as_u16(), "message": message, "status": rpc_status}
    }))
}

async fn stats(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.stats())
}

async fn config(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(sim.config())
}

async fn put_config(sim: web::Data<Sim>, body: web::Bytes) -> HttpResponse {
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                format!("the body must be a JSON object: {err}"),
            );
        }
    };
    match sim.patch_config(&patch) {
        Ok(config) => HttpResponse::Ok().json(config),
        Err(err @ ConfigError::Fixed(_)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "FAILED_PRECONDITION",
            err.to_string(),
        ),
        Err(err @ ConfigError::Invalid(_)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_ARGUMENT",
            err.to_string(),
        ),
    }
}

async fn reset_stats(sim: web::Data<Sim>) -> HttpResponse {
    sim.reset_stats();
    HttpResponse::NoContent().finish()
}

async fn customer(sim: web::Data<Sim>, path: web::Path<String>) -> HttpResponse {
    let customer_id = path.into_inner();
    match sim.customer(&customer_id) {
        Some(view) => HttpResponse::Ok().json(view),
        None => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no customer {customer_id}"),
        ),
    }
}
