//! The control API over HTTP (axum), bound to localhost by default.
//!
//! `POST /api/share`, `POST /api/get`, `POST /api/export`, `GET /api/status` and
//! `GET /api/artifacts/{id}`; bodies are the types in [`crate::api_types`]. Errors are
//! `{"error": "..."}` with a 4xx/5xx status.

use std::{path::PathBuf, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
};
use pollen_core::{ContentId, Ticket};
use serde::Deserialize;
use tokio::sync::{mpsc::UnboundedSender, oneshot};

use super::{ApiCall, Input, errors::ApiError};
use crate::error_chain::chain;
use crate::{
    api_types::{
        ArtifactReply, ErrorReply, ExportRequest, GetReply, GetRequest, RemoveReply, ShareReply,
        ShareRequest, Status,
    },
    store::{Store, StoreError},
};

/// What every handler needs.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) inputs: UnboundedSender<Input>,
    pub(crate) store: Store,
    /// The node's metrics, for `GET /metrics`.
    pub(crate) metrics: std::sync::Arc<super::metrics::Metrics>,
}

/// The longest an artifact request waits for a change.
const MAX_WAIT: Duration = Duration::from_secs(10);

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
        .route("/metrics", get(metrics))
        .route("/api/artifacts/{id}", get(artifact).delete(remove))
        .route("/api/artifacts/{id}/pin", post(pin).delete(unpin))
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
    let source = path.clone();
    let imported = tokio::task::spawn_blocking(move || store.import_file(&source, &mut |_| {}))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match imported {
        Ok(artifact) => Ok(Json(
            ask(&state, |tx| ApiCall::AddSeed(Box::new(artifact), tx)).await?,
        )),
        // The node already has it open: hand out its ticket if it is complete; if pieces
        // are missing (a download, or pieces lost on disk), fill them in from the file.
        Err(StoreError::InUse(id)) => {
            let conflict = |e: ApiError| error(StatusCode::CONFLICT, e.to_string());
            match ask(&state, |tx| ApiCall::TicketFor(id, tx)).await? {
                Ok(reply) => return Ok(Json(reply)),
                Err(ApiError::StillDownloading) => {}
                Err(e) => return Err(conflict(e)),
            }
            ask(&state, |tx| ApiCall::Repair(id, path, tx))
                .await?
                .map_err(conflict)?;
            ask(&state, |tx| ApiCall::TicketFor(id, tx))
                .await?
                .map(Json)
                .map_err(conflict)
        }
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
        .map_err(|e| {
            let status = match e {
                ApiError::TooManyFetches(_) => StatusCode::SERVICE_UNAVAILABLE,
                ApiError::TooBig { .. } | ApiError::NoRoom { .. } => {
                    StatusCode::INSUFFICIENT_STORAGE
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string())
        })
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

/// `GET /metrics`: the Prometheus text format.
async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn status(State(state): State<AppState>) -> Reply<Status> {
    Ok(Json(ask(&state, ApiCall::Status).await?))
}

async fn pin(state: State<AppState>, id: Path<String>) -> Reply<()> {
    set_pin(state, id, true).await
}

async fn unpin(state: State<AppState>, id: Path<String>) -> Reply<()> {
    set_pin(state, id, false).await
}

async fn set_pin(State(state): State<AppState>, Path(id): Path<String>, pinned: bool) -> Reply<()> {
    let id: ContentId = id
        .parse()
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("{e}")))?;
    ask(&state, |tx| ApiCall::Pin(id, pinned, tx))
        .await?
        .map(Json)
        .map_err(|e| {
            let status = match e {
                ApiError::NotHeld => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string())
        })
}

/// The query of `DELETE /api/artifacts/{id}`.
#[derive(Debug, Deserialize)]
struct RemoveQuery {
    /// Refuse if the artifact is complete (a cancel of a fetch).
    #[serde(default)]
    only_incomplete: bool,
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Reply<RemoveReply> {
    let id: ContentId = id
        .parse()
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("{e}")))?;
    ask(&state, |tx| ApiCall::Remove(id, q.only_incomplete, tx))
        .await?
        .map(Json)
        .map_err(|e| {
            let status = match e {
                ApiError::NotHeld => StatusCode::NOT_FOUND,
                ApiError::Complete => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string())
        })
}

/// The query of `GET /api/artifacts/{id}`.
#[derive(Debug, Deserialize)]
struct WaitQuery {
    /// Wait until the change counter passes this.
    after: Option<u64>,
    /// For at most this many milliseconds (capped at [`MAX_WAIT`]).
    wait_ms: Option<u64>,
    /// Answer progress alone no sooner than this many milliseconds (completion and errors at
    /// once).
    min_ms: Option<u64>,
}

async fn artifact(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Reply<ArtifactReply> {
    let id: ContentId = id
        .parse()
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("{e}")))?;
    let missing = || {
        error(
            StatusCode::NOT_FOUND,
            "the node neither holds nor fetches it",
        )
    };
    let (reply, mut changes) = ask(&state, |tx| ApiCall::Artifact(id, tx))
        .await?
        .ok_or_else(missing)?;
    let Some(after) = q.after else {
        return Ok(Json(reply));
    };
    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_millis(q.wait_ms.unwrap_or(1000)).min(MAX_WAIT);
    let earliest = start + Duration::from_millis(q.min_ms.unwrap_or(0)).min(MAX_WAIT);
    let a = &reply.artifact;
    if a.complete || a.error.is_some() || (reply.generation != after && start >= earliest) {
        return Ok(Json(reply));
    }
    if reply.generation == after {
        // Nothing new yet: wait for news, or the end of the wait.
        let _ =
            tokio::time::timeout_at(deadline, changes.wait_for(|c| c.generation != after)).await;
    }
    // News came (or none by the deadline); progress alone waits for `earliest`, settling
    // does not. The status is taken once more, at the end.
    let _ = tokio::time::timeout_at(earliest.min(deadline), changes.wait_for(|c| c.settled)).await;
    ask(&state, |tx| ApiCall::Artifact(id, tx))
        .await?
        .map(|(reply, _)| Json(reply))
        .ok_or_else(missing)
}
