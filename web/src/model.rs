//! What the dashboard shows, read from the page's peer and the node's API into plain values
//! that the views render.

use std::collections::HashMap;

use wasm_bindgen::JsCast;

use crate::{
    format::{self, RateMeter},
    js,
};

/// Seconds a fetch may go without a peer before the page says so.
pub(crate) const NO_PEERS_AFTER_MS: f64 = 8_000.0;

/// Why this page holds an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Shared from this page.
    Sharing,
    /// Fetched by this page.
    Fetching,
}

/// One peer of an artifact.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PeerRow {
    pub(crate) peer: String,
    pub(crate) kind: String,
    pub(crate) connected: bool,
    pub(crate) pieces: u64,
    pub(crate) downloaded: u64,
    pub(crate) uploaded: u64,
    /// Rates as shown, so that rows compare equal when nothing visible changed.
    pub(crate) down_rate: String,
    pub(crate) up_rate: String,
    /// Its colour in the piece map, if it sent pieces.
    pub(crate) color: Option<&'static str>,
}

/// One artifact this page holds or fetches.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transfer {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) have_bytes: u64,
    pub(crate) pieces: u64,
    pub(crate) have_pieces: u64,
    pub(crate) peers: u64,
    pub(crate) complete: bool,
    /// Rates and time left as shown, so that a transfer compares equal when nothing visible
    /// changed (the page re-renders only what differs).
    pub(crate) down_rate: String,
    pub(crate) up_rate: String,
    pub(crate) eta: String,
    pub(crate) uploaded: u64,
    /// The link that opens this artifact in another browser.
    pub(crate) link: String,
    pub(crate) role: Role,
    pub(crate) map_svg: String,
    pub(crate) peer_rows: Vec<PeerRow>,
    pub(crate) save_url: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) notices: Vec<String>,
    /// A fetch that has had no peer for a while.
    pub(crate) lonely: bool,
}

/// What the page knows about an artifact beyond what the peer reports.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extra {
    pub(crate) role: Option<Role>,
    pub(crate) started_ms: f64,
    pub(crate) save_url: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) notices: Vec<String>,
    pub(crate) down: RateMeter,
    pub(crate) up: RateMeter,
    /// Per peer: what it sent us and what we sent it.
    pub(crate) peer_rates: HashMap<String, (RateMeter, RateMeter)>,
    /// A fetch of it is waiting for its bytes.
    pub(crate) in_flight: bool,
}

/// Builds the transfer list from `peer.artifacts()`, `pieceMap` and `peers`.
pub(crate) fn transfers(
    peer: &pollen_wasm::Peer,
    extras: &mut HashMap<String, Extra>,
    now_ms: f64,
) -> Vec<Transfer> {
    let mut out = Vec::new();
    for art in peer.artifacts().iter() {
        let Some(id) = js::text(&art, "id") else {
            continue;
        };
        let extra = extras.entry(id.clone()).or_insert_with(|| Extra {
            started_ms: now_ms,
            ..Extra::default()
        });
        let size = js::num(&art, "size") as u64;
        let have_bytes = js::num(&art, "haveBytes") as u64;
        let downloaded = js::num(&art, "downloaded") as u64;
        let uploaded = js::num(&art, "uploaded") as u64;
        let down_rate = extra.down.sample(now_ms, downloaded);
        let up_rate = extra.up.sample(now_ms, uploaded);
        let complete = js::flag(&art, "complete");
        let role = extra.role.unwrap_or(if complete && downloaded == 0 {
            Role::Sharing
        } else {
            Role::Fetching
        });

        let map = peer.piece_map(id.clone());
        let pieces_js = js::field(&map, "pieces");
        let codes: Vec<u8> = pieces_js
            .dyn_ref::<js_sys::Uint8Array>()
            .map(js_sys::Uint8Array::to_vec)
            .unwrap_or_default();
        let senders: Vec<String> = js::field(&map, "peers")
            .dyn_ref::<js_sys::Array>()
            .map(|a| a.iter().filter_map(|v| v.as_string()).collect())
            .unwrap_or_default();
        let color_of = |peer: &str| {
            senders
                .iter()
                .position(|s| s == peer)
                .and_then(|i| u8::try_from(i).ok())
                .map(|i| format::piece_color(format::code::FIRST_PEER.saturating_add(i)))
        };
        let peer_rows: Vec<PeerRow> = peer
            .peers(id.clone())
            .iter()
            .map(|p| {
                let name = js::text(&p, "peer").unwrap_or_default();
                let downloaded = js::num(&p, "downloaded") as u64;
                let uploaded = js::num(&p, "uploaded") as u64;
                let (down, up) = extra.peer_rates.entry(name.clone()).or_default();
                PeerRow {
                    color: color_of(&name),
                    kind: js::text(&p, "kind").unwrap_or_else(|| "unknown".into()),
                    connected: js::flag(&p, "connected"),
                    pieces: js::num(&p, "pieces") as u64,
                    downloaded,
                    uploaded,
                    down_rate: format::rate(down.sample(now_ms, downloaded)),
                    up_rate: format::rate(up.sample(now_ms, uploaded)),
                    peer: name,
                }
            })
            .collect();
        extra
            .peer_rates
            .retain(|p, _| peer_rows.iter().any(|r| r.peer == *p));
        let peers = js::num(&art, "peers") as u64;
        out.push(Transfer {
            name: js::text(&art, "name").unwrap_or_else(|| format::short(&id).to_string()),
            size,
            have_bytes,
            pieces: js::num(&art, "pieces") as u64,
            have_pieces: js::num(&art, "havePieces") as u64,
            peers,
            complete,
            down_rate: format::rate(down_rate),
            up_rate: format::rate(up_rate),
            eta: if complete {
                "done".into()
            } else {
                format::eta(size.saturating_sub(have_bytes), down_rate)
            },
            uploaded,
            link: pollen_link(&js::text(&art, "ticket").unwrap_or_default()),
            role,
            map_svg: format::piece_map_svg(&codes),
            peer_rows,
            save_url: extra.save_url.clone(),
            error: extra.error.clone(),
            notices: extra.notices.clone(),
            lonely: !complete && peers == 0 && now_ms - extra.started_ms > NO_PEERS_AFTER_MS,
            id,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    out
}

/// The dashboard link of a ticket on this page's origin.
pub(crate) fn pollen_link(ticket: &str) -> String {
    format!("{}/#{ticket}", js::origin())
}

/// A member of the node's cluster.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MemberRow {
    pub(crate) peer: String,
    pub(crate) status: String,
    pub(crate) zone: String,
    pub(crate) addr: String,
    pub(crate) holds: usize,
}

/// An artifact the node holds or fetches.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeArtifact {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) have_bytes: u64,
    pub(crate) complete: bool,
    pub(crate) down_rate: String,
    pub(crate) up_rate: String,
    pub(crate) peers: usize,
    pub(crate) link: String,
    pub(crate) error: Option<String>,
}

/// The node this page is served by, from `GET /api/status`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeView {
    pub(crate) peer: String,
    pub(crate) zone: String,
    pub(crate) listen: String,
    pub(crate) members: Vec<MemberRow>,
    pub(crate) artifacts: Vec<NodeArtifact>,
}

/// Reads the node's status JSON.
pub(crate) fn node_view(v: &serde_json::Value) -> NodeView {
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let list = |v: &serde_json::Value, k: &str| v[k].as_array().cloned().unwrap_or_default();
    NodeView {
        peer: s(v, "peer_id"),
        zone: s(v, "zone"),
        listen: s(v, "advertise"),
        members: list(v, "members")
            .iter()
            .map(|m| MemberRow {
                peer: s(m, "peer_id"),
                status: s(m, "status"),
                zone: s(m, "zone"),
                addr: s(m, "addr"),
                holds: m["holds"].as_array().map_or(0, Vec::len),
            })
            .collect(),
        artifacts: list(v, "artifacts")
            .iter()
            .map(|a| NodeArtifact {
                id: s(a, "id"),
                name: a["name"]
                    .as_str()
                    .map_or_else(|| format::short(&s(a, "id")).to_string(), str::to_string),
                size: n(a, "size"),
                have_bytes: n(a, "have_bytes"),
                complete: a["complete"].as_bool().unwrap_or(false),
                down_rate: format::rate(n(a, "download_rate") as f64),
                up_rate: format::rate(n(a, "upload_rate") as f64),
                peers: a["peers"].as_array().map_or(0, Vec::len),
                link: pollen_link(&s(a, "ticket")),
                error: a["error"].as_str().map(str::to_string),
            })
            .collect(),
    }
}
