//! The membership protocol's packets: one datagram (or one `Gossip` frame) each.
//!
//! ```text
//! packet = MAGIC:2 | VERSION:u8 | postcard(Header) | postcard(Vec<Record>)
//! ```
//!
//! Records are encoded once, when they become news, and copied into packets as bytes; the
//! decoder checks every bound before anything is trusted.

use alloc::{string::String, vec::Vec};

use serde::{Deserialize, Serialize};

use super::state::{Record, Status};
use crate::PeerId;

/// First bytes of every packet.
pub const MAGIC: [u8; 2] = *b"PG";
/// Version of the packet format.
pub const VERSION: u8 = 1;
/// Largest packet accepted (the configured packet size must not exceed it).
pub const MAX_PACKET: usize = 64 * 1024;
/// Most digest entries in one sync request.
pub const MAX_DIGEST: usize = 1024;

/// A member as a sync request lists it: enough to tell who knows more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// The member.
    pub id: PeerId,
    /// The version known.
    pub version: u64,
    /// The status known.
    pub status: Status,
}

/// What a packet asks or answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A new node announces itself (its record is among the packet's records).
    Join,
    /// A member welcomes a joining node with what it knows.
    Welcome,
    /// Are you alive? Answer with `Ack { seq }`.
    Ping {
        /// Matches the answer to the question.
        seq: u32,
    },
    /// Yes: answers `Ping { seq }`, directly or relayed.
    Ack {
        /// The ping's `seq`.
        seq: u32,
    },
    /// Please ping `target` at `addr` for me, and relay its answer as `Ack { seq }`.
    PingReq {
        /// The requester's probe.
        seq: u32,
        /// Who to ping.
        target: PeerId,
        /// Where.
        addr: String,
    },
    /// Only rumors.
    Gossip,
    /// Anti-entropy: here is what I know of every member with an id in `start..end`.
    SyncRequest {
        /// First id of the range.
        start: PeerId,
        /// End of the range (exclusive), or `None` for the end of the id space.
        end: Option<PeerId>,
        /// Every member the requester knows in the range.
        digest: Vec<Digest>,
        /// The requester remembers no more members: send only news of those listed.
        full: bool,
    },
    /// Anti-entropy answer: the records are what the requester lacked; send me these.
    SyncReply {
        /// Members the requester knows better.
        wants: Vec<PeerId>,
    },
    /// Anti-entropy: the records asked for by `SyncReply::wants`.
    SyncPush,
}

/// Everything before a packet's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Who sends the packet.
    pub sender: PeerId,
    /// What it asks or answers.
    pub body: Body,
}

/// A decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sender and body.
    pub header: Header,
    /// Records: rumors, or what a join or sync carries.
    pub records: Vec<Record>,
}

/// Why a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Longer than [`MAX_PACKET`].
    #[error("packet of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// Not a membership packet, or a version we do not speak.
    #[error("not a membership packet of version {VERSION}")]
    BadMagic,
    /// The postcard payload is malformed or has trailing bytes.
    #[error("malformed packet")]
    Malformed,
    /// A digest, address, zone or holdings list beyond its bound, or a present record
    /// without state.
    #[error("a field exceeds its bound")]
    OutOfBounds,
}

/// Starts a packet in `out`: magic, version and header. Append records with
/// [`push_records`].
pub fn start(header: &Header, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    // Appending to a Vec cannot fail and the header has no fallible fields.
    let _ = crate::wire::put(header, out);
}

/// Appends the record list: a varint count, then each record's encoding (from [`encode_record`]).
pub fn push_records<'a>(records: impl ExactSizeIterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    let mut n = records.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    for r in records {
        out.extend_from_slice(r);
    }
}

/// The postcard encoding of one record.
pub fn encode_record(record: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = crate::wire::put(record, &mut out);
    out
}

/// Bytes a varint count of `n` takes.
pub fn count_len(n: usize) -> usize {
    let bits = usize::BITS - n.leading_zeros();
    (bits.max(1) as usize).div_ceil(7)
}

/// Decodes and bounds-checks a packet.
pub fn decode(bytes: &[u8]) -> Result<Packet, PacketError> {
    if bytes.len() > MAX_PACKET {
        return Err(PacketError::TooLarge(bytes.len()));
    }
    let rest = match bytes {
        [a, b, v, rest @ ..] if [*a, *b] == MAGIC && *v == VERSION => rest,
        _ => return Err(PacketError::BadMagic),
    };
    let (header, rest) =
        postcard::take_from_bytes::<Header>(rest).map_err(|_| PacketError::Malformed)?;
    let records = match postcard::take_from_bytes::<Vec<Record>>(rest) {
        Ok((records, [])) => records,
        _ => return Err(PacketError::Malformed),
    };
    let digest_ok = match &header.body {
        Body::SyncRequest { digest, .. } => digest.len() <= MAX_DIGEST,
        Body::SyncReply { wants } => wants.len() <= MAX_DIGEST,
        Body::PingReq { addr, .. } => addr.len() <= super::state::MAX_ADDR_LEN,
        _ => true,
    };
    if !digest_ok || !records.iter().all(Record::check) {
        return Err(PacketError::OutOfBounds);
    }
    Ok(Packet { header, records })
}

#[cfg(test)]
mod tests {
    use alloc::{string::ToString, vec};

    use super::*;
    use crate::membership::state::{Holding, NodeState};

    fn record(n: u8, status: Status) -> Record {
        Record {
            id: PeerId::from_bytes([n; 32]),
            version: u64::from(n) * 1000,
            status,
            by: PeerId::from_bytes([0; 32]),
            state: status.is_present().then(|| NodeState {
                addrs: vec!["127.0.0.1:7711".to_string()],
                zone: "a".to_string(),
                holdings: vec![Holding {
                    id: crate::ContentId::from_bytes([n; 32]),
                    complete: true,
                }],
                ..NodeState::default()
            }),
        }
    }

    fn packet(body: Body, records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        let header = Header {
            sender: PeerId::from_bytes([9; 32]),
            body,
        };
        start(&header, &mut out);
        let encoded: Vec<Vec<u8>> = records.iter().map(encode_record).collect();
        push_records(encoded.iter().map(Vec::as_slice), &mut out);
        out
    }

    #[test]
    fn packets_round_trip() {
        let records = [record(1, Status::Alive), record(2, Status::Dead)];
        let body = Body::SyncRequest {
            start: PeerId::from_bytes([0; 32]),
            end: None,
            digest: vec![Digest {
                id: PeerId::from_bytes([3; 32]),
                version: 7,
                status: Status::Suspect,
            }],
            full: false,
        };
        let bytes = packet(body.clone(), &records);
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.header.body, body);
        assert_eq!(decoded.records, records);
    }

    #[test]
    fn count_lengths_match_postcard() {
        for n in [0usize, 1, 127, 128, 16_383, 16_384, 1 << 21] {
            let mut out = Vec::new();
            push_records(core::iter::repeat_n(&[][..], n), &mut out);
            assert_eq!(out.len(), count_len(n), "n = {n}");
        }
    }

    #[test]
    fn bad_packets_are_refused() {
        assert_eq!(decode(b"XX\x01"), Err(PacketError::BadMagic));
        let good = packet(Body::Gossip, &[record(1, Status::Alive)]);
        assert_eq!(decode(&good[..good.len() - 1]), Err(PacketError::Malformed));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(PacketError::Malformed));
        // An alive record without state is refused.
        let mut stateless = record(1, Status::Alive);
        stateless.state = None;
        assert_eq!(
            decode(&packet(Body::Gossip, &[stateless])),
            Err(PacketError::OutOfBounds)
        );
        let mut long_zone = record(1, Status::Alive);
        if let Some(state) = long_zone.state.as_mut() {
            state.zone = "z".repeat(super::super::state::MAX_ZONE_LEN + 1);
        }
        assert_eq!(
            decode(&packet(Body::Gossip, &[long_zone])),
            Err(PacketError::OutOfBounds)
        );
        assert_eq!(
            decode(&vec![0; MAX_PACKET + 1]),
            Err(PacketError::TooLarge(MAX_PACKET + 1))
        );
    }
}
