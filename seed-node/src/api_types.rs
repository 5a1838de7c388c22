//! The JSON bodies of the node's HTTP API, shared by the node and the CLI.
//!
//! The fuzz crate compiles this module too (`#[path]`, see `fuzz/README.md`): it uses serde
//! and nothing of this crate.

use serde::{Deserialize, Serialize};

/// `POST /api/share`: import a local file and seed it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ShareRequest {
    /// Absolute path of the file on the node's machine.
    pub(crate) path: String,
}

/// Reply to `POST /api/share`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ShareReply {
    /// Content id (hex).
    pub(crate) id: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// The ticket to hand to fetchers.
    pub(crate) ticket: String,
}

/// `POST /api/get`: fetch the artifact a ticket names.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GetRequest {
    /// The ticket (or ticket link).
    pub(crate) ticket: String,
}

/// Reply to `POST /api/get`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GetReply {
    /// Content id (hex).
    pub(crate) id: String,
}

/// `POST /api/export`: write a complete artifact to a path on the node's machine.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ExportRequest {
    /// Content id (hex).
    pub(crate) id: String,
    /// Absolute destination path.
    pub(crate) path: String,
    /// Replace a file at `path` (default); `false` refuses to.
    #[serde(default = "replace_by_default")]
    pub(crate) replace: bool,
}

fn replace_by_default() -> bool {
    true
}

/// Reply to `DELETE /api/artifacts/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RemoveReply {
    /// Content id (hex).
    pub(crate) id: String,
    /// Whether the node held it whole.
    pub(crate) was_complete: bool,
}

/// An error reply: `{"error": "..."}` with a 4xx or 5xx status.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ErrorReply {
    /// What went wrong, for a person.
    pub(crate) error: String,
}

/// `GET /api/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Status {
    /// This node's peer id (hex prefix).
    pub(crate) peer_id: String,
    /// Address peers connect to.
    pub(crate) listen: String,
    /// Address put in tickets.
    pub(crate) advertise: String,
    /// This node's locality label ("" when none was given).
    pub(crate) zone: String,
    /// The signaling server this node serves for browsers, if any.
    #[serde(default)]
    pub(crate) signal_url: Option<String>,
    /// Every artifact the node holds or fetches.
    pub(crate) artifacts: Vec<ArtifactStatus>,
    /// Every member of the cluster this node knows of (itself excluded).
    pub(crate) members: Vec<MemberStatus>,
    /// Open peer connections (TCP and WebRTC); each carries every artifact the two peers
    /// share.
    #[serde(default)]
    pub(crate) connections: usize,
}

/// One member of the cluster in `GET /api/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MemberStatus {
    /// Peer id (hex prefix).
    pub(crate) peer_id: String,
    /// `alive`, `suspect`, `dead` or `left`.
    pub(crate) status: String,
    /// Its locality label.
    pub(crate) zone: String,
    /// Where it accepts peer links and gossip.
    pub(crate) addr: Option<String>,
    /// Its configured upload capacity, bytes per second (0: not set).
    #[serde(default)]
    pub(crate) upload_capacity: u64,
    /// The share of that capacity in use, in percent (in steps of 25).
    #[serde(default)]
    pub(crate) load: u8,
    /// The artifacts it advertises.
    pub(crate) holds: Vec<HoldingStatus>,
}

/// One artifact a member advertises.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HoldingStatus {
    /// Content id (hex).
    pub(crate) id: String,
    /// Whether it holds every piece.
    pub(crate) complete: bool,
}

/// One artifact in `GET /api/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ArtifactStatus {
    /// Content id (hex).
    pub(crate) id: String,
    /// Suggested file name.
    pub(crate) name: Option<String>,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Pieces in the artifact.
    pub(crate) pieces: u32,
    /// Verified pieces held.
    pub(crate) have_pieces: u32,
    /// Verified bytes held.
    pub(crate) have_bytes: u64,
    /// Whether every piece is held and verified.
    pub(crate) complete: bool,
    /// Whether the manifest has been received and verified.
    pub(crate) has_manifest: bool,
    /// Payload bytes received from peers since the node started.
    pub(crate) downloaded: u64,
    /// Payload bytes sent to peers since the node started.
    pub(crate) uploaded: u64,
    /// Receive rate, bytes per second, over the last seconds.
    pub(crate) download_rate: u64,
    /// Send rate, bytes per second, over the last seconds.
    pub(crate) upload_rate: u64,
    /// Connected peers.
    pub(crate) peers: Vec<PeerStatus>,
    /// Peers banned for sending data that failed verification.
    pub(crate) banned: Vec<String>,
    /// The last storage error, if any (e.g. disk full).
    pub(crate) error: Option<String>,
    /// Pieces that were held but no longer verified on disk (bit rot, a change outside the
    /// node) since it started: dropped and fetched again.
    #[serde(default)]
    pub(crate) corrupt_on_disk: u32,
    /// Whether it is pinned (never evicted).
    #[serde(default)]
    pub(crate) pinned: bool,
    /// Whether the node serves it to peers (not after `--seed-copies` or `--seed-time`).
    #[serde(default)]
    pub(crate) serving: bool,
    /// The artifact's ticket.
    pub(crate) ticket: String,
    /// The addresses the node knows for it (ticket, `--peer`, gossip) and how dialing them
    /// went.
    #[serde(default)]
    pub(crate) sources: Vec<SourceStatus>,
}

/// One address an artifact's download knows, and how dialing it went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SourceStatus {
    /// The peer's address.
    pub(crate) addr: String,
    /// `linked`, `dialing`, `waiting` (to be dialed now), `retrying` (after `failures`, or
    /// left alone a while after it sent nothing), or `never` (ourselves, banned, stopped).
    pub(crate) state: String,
    /// Dials that failed in a row.
    pub(crate) failures: u32,
    /// The last dial error, if any.
    pub(crate) error: Option<String>,
}

/// `GET /api/artifacts/{id}`: one artifact's status, and the node's change counter.
///
/// With `?after=G`, the reply waits (up to `wait_ms`, at most 10 s) until the counter passes
/// `G`: the counter moves when a piece is stored, a peer links, the artifact completes or
/// fails.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ArtifactReply {
    /// The node's change counter when the status was taken.
    pub(crate) generation: u64,
    /// The artifact.
    pub(crate) artifact: ArtifactStatus,
}

/// One connected peer of an artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PeerStatus {
    /// Peer id (hex prefix).
    pub(crate) peer_id: String,
    /// The peer's zone, as gossip tells it.
    pub(crate) zone: Option<String>,
    /// Remote socket address.
    pub(crate) addr: String,
    /// Pieces the peer holds.
    pub(crate) pieces: u32,
    /// Payload bytes received from it.
    pub(crate) downloaded: u64,
    /// Payload bytes sent to it.
    pub(crate) uploaded: u64,
}
