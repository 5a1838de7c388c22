//! The wire protocol: the only bytes that cross a process boundary.
//!
//! Every transport (TCP, WebRTC data channels, simulated links) carries the same frames:
//!
//! ```text
//! frame = len:u32-le | version:u8 | kind:u8 | payload
//! ```
//!
//! `len` counts the bytes after itself, and a whole frame is at most [`MAX_FRAME_LEN`] bytes.
//! The payload is the [postcard] encoding of the kind's fields. Decoding borrows from the frame
//! (block payloads are never copied) and allocates nothing. A frame of a kind this version does
//! not know decodes to [`DecodeError::UnknownKind`], which is not fatal: the frame length is known,
//! so the caller skips it.

mod codec;
mod error;
mod frame;
mod message;

pub use codec::{
    BlockHeader, decode, decode_block_header, decode_channel_header, decode_frame, encode,
    encode_block_header, encode_channel_header,
};
pub(crate) use codec::{encode_own, put};
pub use error::{DecodeError, EncodeError, Invalid};
pub use frame::{FrameBuffer, pack_messages, split_frame};
pub use message::{BlockRef, Handshake, Kind, Message};

/// Protocol version carried in every frame.
pub const PROTOCOL_VERSION: u8 = 1;
/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// Largest frame, length prefix included (256 KiB: the largest WebRTC message Pollen sends).
pub const MAX_FRAME_LEN: usize = 256 * 1024;
/// Largest block payload.
pub const MAX_BLOCK_LEN: usize = 128 * 1024;
/// Most piece hashes in one manifest part (128 KiB of hashes).
pub const MAX_MANIFEST_PART: usize = 4096;
/// Largest bitfield: one bit per piece of the largest artifact.
pub const MAX_BITFIELD_LEN: usize = (crate::layout::MAX_PIECES / 8) as usize;
/// Largest gossip payload.
pub const MAX_GOSSIP_LEN: usize = 128 * 1024;
