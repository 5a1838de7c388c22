//! The errors that cross the actor's channels: answers to the HTTP API's calls, and the
//! disk worker's failures (kept in an artifact's status).
//!
//! Each error's `Display` is its whole message, causes included (a store error is rendered
//! with [`chain`]), exactly as clients and the status see it. So these errors expose no
//! `source()`: show them with `Display`, not with `chain` again.

use std::{io, sync::Arc};

use crate::error_chain::chain;
use crate::store::StoreError;

/// Why the actor (or an artifact's disk worker) refused or failed an [`super::ApiCall`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The node has no such artifact.
    #[error("the node does not hold this artifact")]
    NotHeld,
    /// A share of an artifact the node is still downloading, which the file did not complete.
    #[error(
        "this artifact is still being downloaded by the node, and the file does not hold its missing pieces"
    )]
    StillDownloading,
    /// An export of an artifact the node does not have whole.
    #[error("the artifact is not complete yet")]
    NotComplete,
    /// An export reached a disk worker whose artifact was never created.
    #[error("the artifact is not held yet")]
    NotCreated,
    /// A new download's ticket could not be saved, so it was not started.
    #[error("cannot save the ticket: {0}")]
    TicketNotSaved(io::Error),
    /// Writing the artifact to the export path failed.
    #[error("{}", chain(.0))]
    ExportFailed(StoreError),
    /// A cancel of an artifact that is complete (remove it instead).
    #[error("the artifact is complete, not being fetched; `pollen rm` deletes it")]
    Complete,
    /// A new fetch beyond the node's cap on fetches at once.
    #[error("the node is already fetching {0} artifacts (its --max-fetches); cancel one or wait")]
    TooManyFetches(usize),
    /// An artifact whose files are being deleted.
    #[error("the artifact is being removed; try again in a moment")]
    BeingRemoved,
    /// The pins file could not be saved.
    #[error("cannot save the pins: {0}")]
    Pins(String),
    /// A fetch larger than the node's storage limit.
    #[error("the artifact ({size} bytes) is larger than the node's --max-storage ({max} bytes)")]
    TooBig {
        /// The artifact's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A fetch that does not fit even after evicting what may be evicted.
    #[error(
        "no room: the artifact needs {size} bytes and the node's --max-storage ({max} bytes) is taken by pinned artifacts, fetches and artifacts being served"
    )]
    NoRoom {
        /// The artifact's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Deleting an artifact's files failed.
    #[error("cannot delete the artifact: {0}")]
    RemoveFailed(String),
    /// Filling in an artifact's missing pieces from a file failed.
    #[error("cannot repair the artifact from {0}")]
    Repair(String),
}

/// Why a disk worker could not store a piece or create an artifact, or why work could not
/// reach it; an artifact that meets one stops fetching and reports it in its status.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum DiskError {
    /// The store failed the operation (shared: one failed sync fails every piece of its
    /// batch).
    #[error("{}", chain(.0))]
    Store(Arc<StoreError>),
    /// A piece came to write before the download's artifact was created.
    #[error("the artifact was not created")]
    NotCreated,
    /// The piece was written, but a failed sync dropped it from the store.
    #[error("the piece was not made durable")]
    NotDurable,
    /// The store said the artifact exists, but then did not find it.
    #[error("artifact vanished")]
    Vanished,
    /// The worker (or its checker) thread is gone, so nothing sent to it will complete.
    #[error("the disk worker stopped")]
    WorkerStopped,
}

impl From<StoreError> for DiskError {
    fn from(err: StoreError) -> Self {
        Self::Store(Arc::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients and the status see these exact lines (they were plain strings before).
    #[test]
    fn messages_are_the_ones_clients_see() {
        let io = || io::Error::from_raw_os_error(28);
        let store = || StoreError::Io {
            action: "writing",
            path: "/data/x".into(),
            source: io(),
        };
        let cases: [(Box<dyn std::error::Error>, String); 11] = [
            (
                Box::new(ApiError::NotHeld),
                "the node does not hold this artifact".into(),
            ),
            (
                Box::new(ApiError::StillDownloading),
                "this artifact is still being downloaded by the node, and the file does not hold its missing pieces".into(),
            ),
            (
                Box::new(ApiError::NotComplete),
                "the artifact is not complete yet".into(),
            ),
            (
                Box::new(ApiError::NotCreated),
                "the artifact is not held yet".into(),
            ),
            (
                Box::new(ApiError::TicketNotSaved(io())),
                format!("cannot save the ticket: {}", io()),
            ),
            (Box::new(ApiError::ExportFailed(store())), chain(&store())),
            (Box::new(DiskError::from(store())), chain(&store())),
            (
                Box::new(DiskError::NotCreated),
                "the artifact was not created".into(),
            ),
            (
                Box::new(DiskError::NotDurable),
                "the piece was not made durable".into(),
            ),
            (Box::new(DiskError::Vanished), "artifact vanished".into()),
            (
                Box::new(DiskError::WorkerStopped),
                "the disk worker stopped".into(),
            ),
        ];
        for (err, old) in cases {
            assert_eq!(err.to_string(), old);
            assert!(
                err.source().is_none(),
                "{err}: the message already has its causes"
            );
        }
        assert_eq!(
            chain(&store()),
            format!("writing /data/x: {}", io()),
            "a store error's line names its cause"
        );
    }
}
