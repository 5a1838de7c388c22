//! The signaling protocol: what a peer and a signaling server say to each other over one
//! WebSocket, shared by the server (pollen-signal), native nodes and browser peers.
//!
//! Signaling is for bootstrap only. A peer says who it is ([`ToServer::Hello`]), joins the
//! swarms of the artifacts it holds or wants ([`ToServer::Join`]), and receives a bounded
//! random sample of their members ([`FromServer::Members`]). It then sends WebRTC offers,
//! answers and ICE candidates ([`Signal`]) to members of a swarm both have joined; the server
//! relays those and nothing else. The peer that joins opens the connections; members already
//! there answer.
//!
//! Each message is one binary WebSocket message: `version:u8 | postcard payload`, at most
//! [`MAX_MESSAGE`] bytes. [`decode_to_server`] and [`decode_from_server`] check every bound
//! before returning anything.

use alloc::{string::String, vec::Vec};

use serde::{Deserialize, Serialize};

use crate::{ContentId, PeerId};

/// Version byte that starts every signaling message.
pub const SIGNAL_VERSION: u8 = 1;
/// Largest signaling message in bytes (the version byte included).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Largest session description in bytes.
pub const MAX_SDP: usize = 48 * 1024;
/// Largest ICE candidate line (and media id) in bytes.
pub const MAX_CANDIDATE: usize = 1024;
/// Most members in one [`FromServer::Members`].
pub const MAX_MEMBERS: usize = 256;
/// Largest error text in bytes.
pub const MAX_ERROR_TEXT: usize = 1024;

/// What kind of peer a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PeerKind {
    /// A native node (`pollen node`).
    Native,
    /// A browser peer (pollen-wasm).
    Browser,
}

/// A WebRTC negotiation message from one peer to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signal {
    /// A session description offering a connection.
    Offer(String),
    /// The session description answering an offer.
    Answer(String),
    /// One trickled ICE candidate.
    Candidate {
        /// The candidate line (`candidate:…`).
        candidate: String,
        /// The media stream id it belongs to.
        mid: Option<String>,
        /// The media line index it belongs to.
        mline_index: Option<u16>,
    },
}

/// A message from a peer to the signaling server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToServer {
    /// Names the peer; must come first, once.
    Hello {
        /// The peer's identity in the swarm.
        peer: PeerId,
        /// Native or browser.
        kind: PeerKind,
    },
    /// Joins a swarm (or asks again for a fresh sample of its members).
    Join {
        /// The artifact's content id.
        swarm: ContentId,
    },
    /// Leaves a swarm.
    Leave {
        /// The artifact's content id.
        swarm: ContentId,
    },
    /// Asks the server to relay a signal to a member of a swarm both peers joined.
    Relay {
        /// The swarm both peers joined.
        swarm: ContentId,
        /// The member to relay to.
        to: PeerId,
        /// What to relay.
        signal: Signal,
    },
    /// Keeps an idle connection open.
    Ping,
}

/// One member of a swarm, as the server reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's identity.
    pub peer: PeerId,
    /// Native or browser.
    pub kind: PeerKind,
}

/// The limits a server enforces on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest message in bytes.
    pub max_message: u32,
    /// Messages per second, sustained.
    pub rate_per_second: u32,
    /// Messages allowed in a burst above the sustained rate.
    pub burst: u32,
    /// Most swarms one connection may join.
    pub max_swarms: u32,
    /// Most members returned by one join.
    pub max_members: u32,
    /// Seconds without any message before the server closes the connection.
    pub idle_timeout_secs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: MAX_MESSAGE as u32,
            rate_per_second: 50,
            burst: 200,
            max_swarms: 64,
            max_members: 32,
            idle_timeout_secs: 60,
        }
    }
}

/// Why the server refused something; sent in [`FromServer::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The message could not be decoded.
    Malformed,
    /// The message exceeded the size limit.
    TooLarge,
    /// Messages came faster than the rate limit; this one was dropped.
    RateLimited,
    /// The connection already joined the most swarms allowed.
    TooManySwarms,
    /// Something other than `Hello` came first, or `Hello` came twice.
    HelloFirst,
    /// Another connection already uses this peer id.
    DuplicatePeer,
    /// The sender has not joined the swarm it names.
    NotJoined,
    /// The addressee is not a member of that swarm.
    UnknownPeer,
    /// The addressee is not reading its messages; the signal was dropped.
    PeerBusy,
    /// The connection was idle too long and is being closed.
    Idle,
}

/// A message from the signaling server to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromServer {
    /// Accepts the `Hello` and states the server's limits.
    Welcome {
        /// What the server enforces.
        limits: Limits,
    },
    /// A random sample of a swarm's members (the recipient excluded), answering a `Join`.
    Members {
        /// The swarm.
        swarm: ContentId,
        /// At most [`Limits::max_members`] of its members.
        members: Vec<Member>,
    },
    /// A signal relayed from another member of a swarm.
    Relay {
        /// The swarm both peers joined.
        swarm: ContentId,
        /// Who sent it.
        from: PeerId,
        /// What kind of peer sent it.
        kind: PeerKind,
        /// The signal.
        signal: Signal,
    },
    /// Answers a `Ping`.
    Pong,
    /// Something was refused; the connection stays open unless the code says otherwise.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A human-readable explanation.
        text: String,
    },
}

/// Why bytes are not a valid signaling message, or a message cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// Longer than [`MAX_MESSAGE`].
    #[error("signaling message of {0} bytes exceeds {MAX_MESSAGE}")]
    TooLarge(usize),
    /// Empty, or not starting with [`SIGNAL_VERSION`].
    #[error("signaling message has version {0:?}; this peer speaks {SIGNAL_VERSION}")]
    Version(Option<u8>),
    /// The payload is not a message of this version.
    #[error("signaling message is malformed: {0}")]
    Malformed(postcard::Error),
    /// Bytes left over after the message.
    #[error("signaling message has {0} trailing bytes")]
    Trailing(usize),
    /// A field exceeds its limit.
    #[error("signaling message field {field} is {len} long; the limit is {max}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Encodes a message to the server.
pub fn encode_to_server(msg: &ToServer) -> Result<Vec<u8>, SignalError> {
    check_to_server(msg)?;
    encode(msg)
}

/// Encodes a message from the server.
pub fn encode_from_server(msg: &FromServer) -> Result<Vec<u8>, SignalError> {
    check_from_server(msg)?;
    encode(msg)
}

/// Decodes and bounds-checks a message to the server.
pub fn decode_to_server(bytes: &[u8]) -> Result<ToServer, SignalError> {
    let msg = decode(bytes)?;
    check_to_server(&msg)?;
    Ok(msg)
}

/// Decodes and bounds-checks a message from the server.
pub fn decode_from_server(bytes: &[u8]) -> Result<FromServer, SignalError> {
    let msg = decode(bytes)?;
    check_from_server(&msg)?;
    Ok(msg)
}

fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, SignalError> {
    let mut out = Vec::with_capacity(64);
    out.push(SIGNAL_VERSION);
    let out = postcard::to_extend(msg, out).map_err(SignalError::Malformed)?;
    if out.len() > MAX_MESSAGE {
        return Err(SignalError::TooLarge(out.len()));
    }
    Ok(out)
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, SignalError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(SignalError::TooLarge(bytes.len()));
    }
    match bytes.split_first() {
        Some((&SIGNAL_VERSION, payload)) => {
            let (msg, rest) = postcard::take_from_bytes(payload).map_err(SignalError::Malformed)?;
            if !rest.is_empty() {
                return Err(SignalError::Trailing(rest.len()));
            }
            Ok(msg)
        }
        Some((&v, _)) => Err(SignalError::Version(Some(v))),
        None => Err(SignalError::Version(None)),
    }
}

fn bound(field: &'static str, len: usize, max: usize) -> Result<(), SignalError> {
    if len > max {
        return Err(SignalError::Field { field, len, max });
    }
    Ok(())
}

fn check_signal(signal: &Signal) -> Result<(), SignalError> {
    match signal {
        Signal::Offer(sdp) | Signal::Answer(sdp) => bound("sdp", sdp.len(), MAX_SDP),
        Signal::Candidate { candidate, mid, .. } => {
            bound("candidate", candidate.len(), MAX_CANDIDATE)?;
            bound("mid", mid.as_ref().map_or(0, String::len), MAX_CANDIDATE)
        }
    }
}

fn check_to_server(msg: &ToServer) -> Result<(), SignalError> {
    match msg {
        ToServer::Relay { signal, .. } => check_signal(signal),
        ToServer::Hello { .. }
        | ToServer::Join { .. }
        | ToServer::Leave { .. }
        | ToServer::Ping => Ok(()),
    }
}

fn check_from_server(msg: &FromServer) -> Result<(), SignalError> {
    match msg {
        FromServer::Members { members, .. } => bound("members", members.len(), MAX_MEMBERS),
        FromServer::Relay { signal, .. } => check_signal(signal),
        FromServer::Error { text, .. } => bound("error text", text.len(), MAX_ERROR_TEXT),
        FromServer::Welcome { .. } | FromServer::Pong => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use alloc::{string::ToString, vec};

    use super::*;

    fn peer(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    #[test]
    fn messages_round_trip() {
        let swarm = ContentId::from_bytes([7; 32]);
        let to = [
            ToServer::Hello {
                peer: peer(1),
                kind: PeerKind::Browser,
            },
            ToServer::Join { swarm },
            ToServer::Relay {
                swarm,
                to: peer(2),
                signal: Signal::Candidate {
                    candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".to_string(),
                    mid: Some("0".to_string()),
                    mline_index: Some(0),
                },
            },
            ToServer::Ping,
        ];
        for msg in to {
            let bytes = encode_to_server(&msg).expect("encodes");
            assert_eq!(bytes[0], SIGNAL_VERSION);
            assert_eq!(decode_to_server(&bytes), Ok(msg));
        }
        let from = FromServer::Members {
            swarm,
            members: vec![Member {
                peer: peer(3),
                kind: PeerKind::Native,
            }],
        };
        let bytes = encode_from_server(&from).expect("encodes");
        assert_eq!(decode_from_server(&bytes), Ok(from));
    }

    #[test]
    fn bounds_are_checked_both_ways() {
        let swarm = ContentId::from_bytes([7; 32]);
        let big = ToServer::Relay {
            swarm,
            to: peer(2),
            signal: Signal::Offer("v".repeat(MAX_SDP + 1)),
        };
        assert!(matches!(
            encode_to_server(&big),
            Err(SignalError::Field { field: "sdp", .. })
        ));
        // Encoded without the check, the same message is refused on decode.
        let bytes = encode(&big).expect("fits in a message");
        assert!(matches!(
            decode_to_server(&bytes),
            Err(SignalError::Field { field: "sdp", .. })
        ));
        assert_eq!(
            decode_to_server(&[0u8; MAX_MESSAGE + 1]),
            Err(SignalError::TooLarge(MAX_MESSAGE + 1))
        );
        assert_eq!(decode_to_server(&[]), Err(SignalError::Version(None)));
        assert_eq!(
            decode_to_server(&[9, 0]),
            Err(SignalError::Version(Some(9)))
        );
        let mut ping = encode_to_server(&ToServer::Ping).expect("encodes");
        ping.push(0);
        assert_eq!(decode_to_server(&ping), Err(SignalError::Trailing(1)));
        let many = FromServer::Members {
            swarm,
            members: vec![
                Member {
                    peer: peer(1),
                    kind: PeerKind::Browser
                };
                MAX_MEMBERS + 1
            ],
        };
        assert!(encode_from_server(&many).is_err());
    }
}
