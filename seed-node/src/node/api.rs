//! The control API over HTTP (axum), bound to localhost by default.
//!
//! `POST /api/share`, `POST /api/get`, `POST /api/export` and `GET /api/status`; bodies are the
//! types in [`crate::api_types`]. Errors are `{"error": "..."}` with a 4xx/5xx status.

use std::path::PathBuf;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use pollen_core::{ContentId, Ticket};
use tokio::sync::{mpsc::UnboundedSender, oneshot};

use super::{ApiCall, Input};
use crate::error_chain::chain;
use crate::{
    api_types::{
        ErrorReply, ExportRequest, GetReply, GetRequest, ShareReply, ShareRequest, Status,
    },
    store::{Store, StoreError},
};

/// What every handler needs.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) inputs: UnboundedSender<Input>,
    pub(crate) store: Store,
}

type Reply<T> = Result<Json<T>, (StatusCode, Json<ErrorReply>)>;

fn error(status: StatusCode, msg: impl Into<String>) -> (StatusCode, Json<ErrorReply>) {
    (status, Json(ErrorReply { error: msg.into() }))
}

/// The API routes.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/share", post(share))
        .route("/api/get", post(fetch))
        .route("/api/export", post(export))
        .route("/api/status", get(status))
        .with_state(state)
}

/// Sends a call to the actor and waits for its answer.
async fn ask<T>(
    state: &AppState,
    call: impl FnOnce(oneshot::Sender<T>) -> ApiCall,
) -> Result<T, (StatusCode, Json<ErrorReply>)> {
    let (tx, rx) = oneshot::channel();
    let gone = || error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    state
        .inputs
        .send(Input::Api(call(tx)))
        .map_err(|_| gone())?;
    rx.await.map_err(|_| gone())
}

async fn share(State(state): State<AppState>, Json(req): Json<ShareRequest>) -> Reply<ShareReply> {
    let path = PathBuf::from(&req.path);
    if !path.is_absolute() {
        return Err(error(StatusCode::BAD_REQUEST, "the path must be absolute"));
    }
    let store = state.store.clone();
    let imported = tokio::task::spawn_blocking(move || store.import_file(&path, &mut |_| {}))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match imported {
        Ok(artifact) => Ok(Json(
            ask(&state, |tx| ApiCall::AddSeed(Box::new(artifact), tx)).await?,
        )),
        // The node already has it open: hand out its ticket if it is complete.
        Err(StoreError::InUse(id)) => ask(&state, |tx| ApiCall::TicketFor(id, tx))
            .await?
            .map(Json)
            .map_err(|e| error(StatusCode::CONFLICT, e.to_string())),
        Err(err @ StoreError::Io { .. }) => {
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, chain(&err)))
        }
        Err(err) => Err(error(StatusCode::BAD_REQUEST, chain(&err))),
    }
}

async fn fetch(State(state): State<AppState>, Json(req): Json<GetRequest>) -> Reply<GetReply> {
    let ticket: Ticket = req
        .ticket
        .parse()
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid ticket: {e}")))?;
    ask(&state, |tx| ApiCall::Get(ticket, tx))
        .await?
        .map(Json)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn export(State(state): State<AppState>, Json(req): Json<ExportRequest>) -> Reply<()> {
    let id: ContentId = req
        .id
        .parse()
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("{e}")))?;
    let path = PathBuf::from(&req.path);
    if !path.is_absolute() {
        return Err(error(StatusCode::BAD_REQUEST, "the path must be absolute"));
    }
    ask(&state, |tx| ApiCall::Export(id, path, req.replace, tx))
        .await?
        .map(Json)
        .map_err(|e| error(StatusCode::CONFLICT, e.to_string()))
}

async fn status(State(state): State<AppState>) -> Reply<Status> {
    Ok(Json(ask(&state, ApiCall::Status).await?))
}
