//! Typed errors of the wire codec.

use super::{MAX_BITFIELD_LEN, MAX_BLOCK_LEN, MAX_FRAME_LEN, MAX_GOSSIP_LEN, MAX_MANIFEST_PART};

/// A field outside the protocol's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Manifest request or part outside 1..=MAX_MANIFEST_PART hashes.
    #[error("manifest hash count {0} is outside 1..={MAX_MANIFEST_PART}")]
    ManifestCount(usize),
    /// Manifest part bytes not a multiple of 32.
    #[error("manifest part of {0} bytes is not a multiple of 32")]
    RaggedHashes(usize),
    /// Bitfield longer than the largest artifact needs.
    #[error("bitfield of {0} bytes exceeds {MAX_BITFIELD_LEN}")]
    BitfieldLen(usize),
    /// Block length outside 1..=MAX_BLOCK_LEN.
    #[error("block length {0} is outside 1..={MAX_BLOCK_LEN}")]
    BlockLen(usize),
    /// Gossip payload too long.
    #[error("gossip payload of {0} bytes exceeds {MAX_GOSSIP_LEN}")]
    GossipLen(usize),
    /// Channel frames empty or longer than a frame.
    #[error("channel payload of {0} bytes is outside 1..={MAX_FRAME_LEN}")]
    ChannelLen(usize),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A field is outside the protocol's limits.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The frame would exceed [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds {MAX_FRAME_LEN}")]
    TooLarge(usize),
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix announces more than [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds {MAX_FRAME_LEN}")]
    TooLarge(usize),
    /// The frame ends before its header or fields do.
    #[error("frame is truncated")]
    Truncated,
    /// The frame was written by another protocol version.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// A message kind this version does not know; skip the frame.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// The fields of a known kind do not decode.
    #[error("malformed {0:?} message")]
    Malformed(super::Kind),
    /// Bytes follow the fields of a message.
    #[error("{0} unexpected bytes after a {1:?} message")]
    Trailing(usize, super::Kind),
    /// A field is outside the protocol's limits.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl DecodeError {
    /// Whether the link should be dropped; only an unknown kind can be skipped.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, DecodeError::UnknownKind(_))
    }
}
