//! The node's actors and fault injection: `GET /api/actors` lists every live Job and Customer
//! actor of this process's engine (id, kind, status, restarts, last heartbeat, in flight,
//! processed); `POST /api/chaos/actors/{id}/kill` makes one panic and `…/hang` makes it stop
//! heartbeating and working, so tests and staging can watch the Supervisor heal it. The chaos
//! routes exist only with `OVERSEER_CHAOS=1` (404 otherwise). An API-only process has no
//! actors: 404 for both, and the dashboard falls back to the job's owner and last heartbeat.

use actix_web::{HttpResponse, web};
use overseer_actors::{ActorInfo, ActorKey, Chaos};
use serde::Serialize;

use super::{ApiError, AppState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/actors", web::get().to(list))
        // A customer actor's id has a slash (`job:42/customer:123`): the id takes every segment
        // but the last.
        .route("/chaos/actors/{id:.+}/{action}", web::post().to(chaos));
}

/// `GET /api/actors`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActorList {
    pub actors: Vec<ActorInfo>,
}

#[utoipa::path(get, path = "/api/actors", operation_id = "listActors", tag = "health",
    responses((status = 200, description = "This node's live Job and Customer actors", body = ActorList),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "An API-only process: the actors live on the worker nodes", body = super::openapi::ErrorBody)))]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let board = state.board.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "this process runs no engine (overseer api): actors live on the worker nodes; \
             a job's owner and last_heartbeat are in GET /api/jobs/{id}",
        )
    })?;
    let actors = board.snapshot();
    Ok(HttpResponse::Ok().json(ActorList { actors }))
}

/// What a chaos request did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChaosDone {
    pub id: String,
    /// `kill` or `hang`.
    pub action: String,
}

#[utoipa::path(post, path = "/api/chaos/actors/{id}/{action}", operation_id = "chaosActor", tag = "health",
    params(("id" = String, Path, description = "The actor's id, e.g. `job:42/customer:1234567890`"),
        ("action" = String, Path, description = "`kill` (the actor panics) or `hang` (it stops heartbeating and working)")),
    responses(
        (status = 200, description = "The fault was injected", body = ChaosDone),
        (status = 400, description = "Bad actor id or action", body = super::openapi::ErrorBody),
        (status = 401, description = "Missing or wrong token", body = super::openapi::ErrorBody),
        (status = 404, description = "Chaos is off (OVERSEER_CHAOS), or no such actor runs here", body = super::openapi::ErrorBody),
    ))]
pub async fn chaos(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    if !state.config.chaos {
        return Err(ApiError::not_found(
            "chaos routes are off; start the server with OVERSEER_CHAOS=1",
        ));
    }
    let (id, action) = path.into_inner();
    let key: ActorKey = id
        .parse()
        .map_err(|e: overseer_actors::heartbeat::BadActorKey| {
            ApiError::bad_request("invalid_actor_id", e.to_string())
        })?;
    let fault = match action.as_str() {
        "kill" => Chaos::Kill,
        "hang" => Chaos::Hang,
        other => {
            return Err(ApiError::bad_request(
                "invalid_action",
                format!("unknown chaos action {other:?}: expected kill or hang"),
            ));
        }
    };
    let actor = state
        .board
        .as_ref()
        .and_then(|board| board.chaos(&key))
        .ok_or_else(|| ApiError::not_found(format!("no actor {key} runs on this node")))?;
    actor
        .try_send(fault)
        .map_err(|_| ApiError::not_found(format!("actor {key} stopped")))?;
    tracing::warn!(actor = %key, action, "chaos injected");
    Ok(HttpResponse::Ok().json(ChaosDone {
        id: key.to_string(),
        action,
    }))
}
