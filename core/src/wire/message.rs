//! The messages of the swarm protocol.

use serde::{Deserialize, Serialize};

use super::{
    Invalid, MAX_BITFIELD_LEN, MAX_BLOCK_LEN, MAX_FRAME_LEN, MAX_GOSSIP_LEN, MAX_MANIFEST_PART,
};
use crate::{ContentId, PeerId};

/// One protocol message; byte fields borrow from the frame they were decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// First message on every link, in both directions.
    Handshake(Handshake),
    /// Asks for `count` piece hashes starting at piece `first`.
    ManifestRequest {
        /// First piece wanted.
        first: u32,
        /// Number of piece hashes wanted (1..=[`MAX_MANIFEST_PART`]).
        count: u32,
    },
    /// Piece hashes `first..first + hashes.len() / 32`, 32 bytes each.
    ManifestPart {
        /// Index of the first piece in `hashes`.
        first: u32,
        /// Concatenated 32-byte chaining values.
        hashes: &'a [u8],
    },
    /// Which pieces the sender holds, bit `i` of byte `i / 8` (most significant first).
    Bitfield {
        /// The packed bits.
        bits: &'a [u8],
    },
    /// The sender now holds piece `piece`.
    Have {
        /// The piece.
        piece: u32,
    },
    /// The sender wants pieces the receiver holds.
    Interested,
    /// The sender wants nothing from the receiver.
    NotInterested,
    /// The sender will not serve requests until it unchokes.
    Choke,
    /// The sender will serve requests.
    Unchoke,
    /// Asks for a block.
    Request(BlockRef),
    /// Block data: bytes `offset..offset + data.len()` of piece `piece`.
    Block {
        /// The piece.
        piece: u32,
        /// Byte offset within the piece.
        offset: u32,
        /// The bytes.
        data: &'a [u8],
    },
    /// The sender will not serve this request.
    Reject(BlockRef),
    /// The sender no longer wants this block.
    Cancel(BlockRef),
    /// An opaque payload of the membership protocol.
    Gossip {
        /// The payload.
        payload: &'a [u8],
    },
    /// The sender holds the manifest and serves it.
    HaveManifest,
    /// The sender will not serve the manifest request starting at piece 0 (nor its other
    /// parts): ask a peer that announced [`Message::HaveManifest`], or this one again later.
    ManifestRefused,
    /// Whole frames of one swarm on a connection shared by several: `frames` are the frames
    /// (length prefixes included) the sender sends on its channel `channel`. A channel's first
    /// frame is the swarm's [`Handshake`], which names the swarm.
    Channel {
        /// The sender's number for the channel.
        channel: u32,
        /// Whole frames, back to back.
        frames: &'a [u8],
    },
    /// The sender opens its channel `channel` for a swarm on a shared connection: alone, or
    /// answering the receiver's channel `answers`.
    OpenChannel {
        /// The sender's number for the channel.
        channel: u32,
        /// The swarm.
        swarm: ContentId,
        /// The receiver's channel this one answers, if it answers one.
        answers: Option<u32>,
    },
    /// The sender closed its channel `channel` and forgot the swarm's link.
    CloseChannel {
        /// The sender's number for the channel.
        channel: u32,
    },
    /// The sender holds no such swarm: it refuses the receiver's channel `channel`.
    RefuseChannel {
        /// The receiver's number for the channel.
        channel: u32,
    },
}

/// The handshake: who the sender is and which swarm the link serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// The sender's identity.
    pub peer_id: PeerId,
    /// The artifact this link exchanges, or `None` on a connection's own handshake (the first
    /// frame of a connection that carries swarms in [`Message::Channel`]s).
    pub swarm: Option<ContentId>,
    /// The TCP port the sender accepts links on, if any.
    pub listen_port: Option<u16>,
}

/// A block of a piece: `len` bytes from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    /// The piece.
    pub piece: u32,
    /// Byte offset within the piece.
    pub offset: u32,
    /// Length in bytes (1..=[`MAX_BLOCK_LEN`]).
    pub len: u32,
}

/// The kind byte of each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Kind {
    Handshake = 0,
    ManifestRequest = 1,
    ManifestPart = 2,
    Bitfield = 3,
    Have = 4,
    Interested = 5,
    NotInterested = 6,
    Choke = 7,
    Unchoke = 8,
    Request = 9,
    Block = 10,
    Reject = 11,
    Cancel = 12,
    Gossip = 13,
    HaveManifest = 14,
    ManifestRefused = 15,
    Channel = 16,
    OpenChannel = 17,
    CloseChannel = 18,
    RefuseChannel = 19,
}

impl Kind {
    /// The kind for a byte, if this version knows it.
    pub fn from_byte(b: u8) -> Option<Self> {
        use Kind::*;
        [
            Handshake,
            ManifestRequest,
            ManifestPart,
            Bitfield,
            Have,
            Interested,
            NotInterested,
            Choke,
            Unchoke,
            Request,
            Block,
            Reject,
            Cancel,
            Gossip,
            HaveManifest,
            ManifestRefused,
            Channel,
            OpenChannel,
            CloseChannel,
            RefuseChannel,
        ]
        .get(usize::from(b))
        .copied()
    }
}

impl Message<'_> {
    /// The message's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Handshake(_) => Kind::Handshake,
            Message::ManifestRequest { .. } => Kind::ManifestRequest,
            Message::ManifestPart { .. } => Kind::ManifestPart,
            Message::Bitfield { .. } => Kind::Bitfield,
            Message::Have { .. } => Kind::Have,
            Message::Interested => Kind::Interested,
            Message::NotInterested => Kind::NotInterested,
            Message::Choke => Kind::Choke,
            Message::Unchoke => Kind::Unchoke,
            Message::Request(_) => Kind::Request,
            Message::Block { .. } => Kind::Block,
            Message::Reject(_) => Kind::Reject,
            Message::Cancel(_) => Kind::Cancel,
            Message::Gossip { .. } => Kind::Gossip,
            Message::HaveManifest => Kind::HaveManifest,
            Message::ManifestRefused => Kind::ManifestRefused,
            Message::Channel { .. } => Kind::Channel,
            Message::OpenChannel { .. } => Kind::OpenChannel,
            Message::CloseChannel { .. } => Kind::CloseChannel,
            Message::RefuseChannel { .. } => Kind::RefuseChannel,
        }
    }

    /// Checks the limits every message must respect, on both encode and decode.
    pub fn validate(&self) -> Result<(), Invalid> {
        match *self {
            Message::ManifestRequest { count, .. } => {
                check_len(count as usize, 1, MAX_MANIFEST_PART, Invalid::ManifestCount)
            }
            Message::ManifestPart { hashes, .. } => {
                if hashes.len() % 32 != 0 {
                    return Err(Invalid::RaggedHashes(hashes.len()));
                }
                check_len(
                    hashes.len() / 32,
                    1,
                    MAX_MANIFEST_PART,
                    Invalid::ManifestCount,
                )
            }
            Message::Bitfield { bits } => {
                check_len(bits.len(), 0, MAX_BITFIELD_LEN, Invalid::BitfieldLen)
            }
            Message::Request(r) | Message::Reject(r) | Message::Cancel(r) => {
                check_len(r.len as usize, 1, MAX_BLOCK_LEN, Invalid::BlockLen)
            }
            Message::Block { data, .. } => {
                check_len(data.len(), 1, MAX_BLOCK_LEN, Invalid::BlockLen)
            }
            Message::Gossip { payload } => {
                check_len(payload.len(), 0, MAX_GOSSIP_LEN, Invalid::GossipLen)
            }
            Message::Channel { frames, .. } => {
                check_len(frames.len(), 1, MAX_FRAME_LEN, Invalid::ChannelLen)
            }
            Message::Handshake(_)
            | Message::OpenChannel { .. }
            | Message::CloseChannel { .. }
            | Message::RefuseChannel { .. }
            | Message::Have { .. }
            | Message::Interested
            | Message::NotInterested
            | Message::Choke
            | Message::Unchoke
            | Message::HaveManifest
            | Message::ManifestRefused => Ok(()),
        }
    }
}

fn check_len(n: usize, min: usize, max: usize, err: fn(usize) -> Invalid) -> Result<(), Invalid> {
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(err(n))
    }
}
