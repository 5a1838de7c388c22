//! The dashboard's static files, served at the API address's other paths.
//!
//! The files are built apart (`./scripts/run` builds pollen-web and pollen-wasm into
//! `target/pollen-www`); the node serves whatever directory it is given, or finds that one
//! next to its own binary. Without one, `/` explains how to build it.

use std::path::{Path, PathBuf};

use axum::{
    Router,
    http::{HeaderValue, StatusCode, header},
    response::IntoResponse,
};
use tower_http::{services::ServeDir, set_header::SetResponseHeaderLayer};

/// Where the dashboard's files are: `explicit`, or `pollen-www` beside the binary's
/// directory (`target/pollen-www` for `target/release/pollen`) or inside it.
pub(crate) fn find_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        return Some(dir.to_path_buf());
    }
    let exe = std::env::current_exe().ok()?;
    let bin_dir = exe.parent()?;
    [
        bin_dir.parent().map(|d| d.join("pollen-www")),
        Some(bin_dir.join("pollen-www")),
    ]
    .into_iter()
    .flatten()
    .find(|d| d.join("index.html").is_file())
}

/// Routes serving `dir` (or an explanation when there is none) for every path the API and
/// signaling do not take.
pub(crate) fn router(dir: Option<&Path>) -> Router {
    match dir {
        Some(dir) => Router::new()
            .fallback_service(ServeDir::new(dir))
            // The page's script and its wasm must come from the same build: revalidate.
            .layer(SetResponseHeaderLayer::overriding(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            ))
            // Other sites may link to a ticket, but not frame the page.
            .layer(SetResponseHeaderLayer::overriding(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            )),
        None => Router::new().fallback(not_built),
    }
}

async fn not_built() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "The Pollen dashboard is not built. Run ./scripts/run from the repository, or build it \
         with `source scripts/lib.sh; build_www` and start the node with --web target/pollen-www.\n",
    )
}
