//! Encoding messages to frames and decoding frames to messages.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::{
    BlockRef, DecodeError, EncodeError, Handshake, Kind, LEN_PREFIX, MAX_BLOCK_LEN, MAX_FRAME_LEN,
    Message, PROTOCOL_VERSION, split_frame,
};
use crate::wire::Invalid;

/// The payload of kinds whose fields are not already a plain struct.
#[derive(Serialize, Deserialize)]
struct ManifestRequestFields {
    first: u32,
    count: u32,
}

#[derive(Serialize, Deserialize)]
struct ManifestPartFields<'a> {
    first: u32,
    #[serde(borrow, with = "serde_bytes")]
    hashes: &'a [u8],
}

#[derive(Serialize, Deserialize)]
struct OpenChannelFields {
    channel: u32,
    swarm: crate::ContentId,
    answers: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct BytesFields<'a>(#[serde(borrow, with = "serde_bytes")] &'a [u8]);

#[derive(Serialize, Deserialize)]
struct BlockFields<'a> {
    piece: u32,
    offset: u32,
    #[serde(borrow, with = "serde_bytes")]
    data: &'a [u8],
}

/// Appends `msg` as one whole frame to `out`; on error `out` is left as it was.
pub fn encode(msg: &Message<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    msg.validate()?;
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    out.extend_from_slice(&[PROTOCOL_VERSION, msg.kind() as u8]);
    let written = match *msg {
        Message::Handshake(ref h) => put(h, out),
        Message::ManifestRequest { first, count } => {
            put(&ManifestRequestFields { first, count }, out)
        }
        Message::ManifestPart { first, hashes } => put(&ManifestPartFields { first, hashes }, out),
        Message::Bitfield { bits } => put(&BytesFields(bits), out),
        Message::Have { piece } => put(&piece, out),
        Message::Interested
        | Message::NotInterested
        | Message::Choke
        | Message::Unchoke
        | Message::HaveManifest
        | Message::ManifestRefused => Ok(()),
        Message::Request(ref r) | Message::Reject(ref r) | Message::Cancel(ref r) => put(r, out),
        Message::Block {
            piece,
            offset,
            data,
        } => put(
            &BlockFields {
                piece,
                offset,
                data,
            },
            out,
        ),
        Message::Gossip { payload } => put(&BytesFields(payload), out),
        Message::Channel { channel, frames } => {
            let written = put(&channel, out);
            out.extend_from_slice(frames);
            written
        }
        Message::OpenChannel {
            channel,
            swarm,
            answers,
        } => put(
            &OpenChannelFields {
                channel,
                swarm,
                answers,
            },
            out,
        ),
        Message::CloseChannel { channel } | Message::RefuseChannel { channel } => {
            put(&channel, out)
        }
    };
    finish_frame(out, start, written, 0)
}

/// Appends the header of a `Channel` frame whose `len` bytes of frames the caller sends right
/// after it: `header ++ frames` is what [`encode`] makes of the same message.
pub fn encode_channel_header(
    channel: u32,
    len: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if !(1..=MAX_FRAME_LEN).contains(&len) {
        return Err(Invalid::ChannelLen(len).into());
    }
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    out.extend_from_slice(&[PROTOCOL_VERSION, Kind::Channel as u8]);
    let written = put(&channel, out);
    finish_frame(out, start, written, len)
}

/// Encodes a message this crate built itself, which always respects the limits (a debug
/// build asserts it; a release build sends nothing rather than half a frame).
pub(crate) fn encode_own(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    if encode(msg, &mut out).is_err() {
        debug_assert!(false, "pollen-core built an invalid message: {msg:?}");
        out.clear();
    }
    out
}

/// Appends the header of a `Block` frame whose `len` data bytes the caller sends right after it.
///
/// `header ++ data` is byte for byte what [`encode`] makes of the same block, so a driver can
/// send block data straight from its buffer without copying it into the frame.
pub fn encode_block_header(
    piece: u32,
    offset: u32,
    len: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if !(1..=MAX_BLOCK_LEN).contains(&len) {
        return Err(Invalid::BlockLen(len).into());
    }
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    out.extend_from_slice(&[PROTOCOL_VERSION, Kind::Block as u8]);
    // postcard writes a byte string as its varint length followed by the bytes.
    let written = put(&(piece, offset, len), out);
    finish_frame(out, start, written, len)
}

/// Appends the postcard encoding of `value` to `out`.
pub(crate) fn put<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    postcard::serialize_with_flavor(value, AppendTo(out))
}

/// A postcard flavor that appends to a borrowed `Vec`.
struct AppendTo<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Writes the length prefix of the frame begun at `start`, counting `extra` bytes sent later.
fn finish_frame(
    out: &mut Vec<u8>,
    start: usize,
    written: Result<(), postcard::Error>,
    extra: usize,
) -> Result<(), EncodeError> {
    let frame_len = out.len() - start + extra;
    // Appending to a Vec cannot fail, and our types serialize infallibly; should that ever
    // change, the frame is refused rather than sent half-written.
    if written.is_err() || frame_len > MAX_FRAME_LEN {
        out.truncate(start);
        return Err(EncodeError::TooLarge(frame_len));
    }
    let body_len = (frame_len - LEN_PREFIX) as u32;
    out[start..start + LEN_PREFIX].copy_from_slice(&body_len.to_le_bytes());
    Ok(())
}

/// Where a `Block` frame's data starts, and what it holds: what [`decode_block_header`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// The block's piece, offset and length.
    pub block: BlockRef,
    /// Bytes of the frame body before the data.
    pub header_len: usize,
}

/// Reads the header of a `Block` frame from the start of its body, without its data: for
/// drivers that carry block data apart from the frame (the simulator). The data length is
/// bounded like [`decode`] bounds it.
pub fn decode_block_header(body_start: &[u8]) -> Result<BlockHeader, DecodeError> {
    let [version, kind, payload @ ..] = body_start else {
        return Err(DecodeError::Truncated);
    };
    if *version != PROTOCOL_VERSION {
        return Err(DecodeError::Version(*version));
    }
    if *kind != Kind::Block as u8 {
        return Err(DecodeError::UnknownKind(*kind));
    }
    // postcard writes the data as its varint length followed by the bytes.
    let ((piece, offset, len), rest) = postcard::take_from_bytes::<(u32, u32, u32)>(payload)
        .map_err(|_| DecodeError::Malformed(Kind::Block))?;
    if !(1..=MAX_BLOCK_LEN).contains(&(len as usize)) {
        return Err(Invalid::BlockLen(len as usize).into());
    }
    Ok(BlockHeader {
        block: BlockRef { piece, offset, len },
        header_len: body_start.len() - rest.len(),
    })
}

/// Reads the header of a `Channel` frame from the start of its body: its channel number and
/// the bytes of the body before the frames it carries. For drivers that carry block data
/// apart from frames (the simulator), with [`decode_block_header`] for the blocks inside.
pub fn decode_channel_header(body_start: &[u8]) -> Result<(u32, usize), DecodeError> {
    let [version, kind, payload @ ..] = body_start else {
        return Err(DecodeError::Truncated);
    };
    if *version != PROTOCOL_VERSION {
        return Err(DecodeError::Version(*version));
    }
    if *kind != Kind::Channel as u8 {
        return Err(DecodeError::UnknownKind(*kind));
    }
    let (channel, rest) = postcard::take_from_bytes::<u32>(payload).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated,
        _ => DecodeError::Malformed(Kind::Channel),
    })?;
    Ok((channel, body_start.len() - rest.len()))
}

/// Decodes one frame body (as returned by [`split_frame`]) into a message.
pub fn decode(body: &[u8]) -> Result<Message<'_>, DecodeError> {
    let [version, kind, payload @ ..] = body else {
        return Err(DecodeError::Truncated);
    };
    if *version != PROTOCOL_VERSION {
        return Err(DecodeError::Version(*version));
    }
    let kind = Kind::from_byte(*kind).ok_or(DecodeError::UnknownKind(*kind))?;
    let msg = match kind {
        Kind::Handshake => Message::Handshake(take::<Handshake>(kind, payload)?),
        Kind::ManifestRequest => {
            let f: ManifestRequestFields = take(kind, payload)?;
            Message::ManifestRequest {
                first: f.first,
                count: f.count,
            }
        }
        Kind::ManifestPart => {
            let f: ManifestPartFields<'_> = take(kind, payload)?;
            Message::ManifestPart {
                first: f.first,
                hashes: f.hashes,
            }
        }
        Kind::Bitfield => Message::Bitfield {
            bits: take::<BytesFields<'_>>(kind, payload)?.0,
        },
        Kind::Have => Message::Have {
            piece: take(kind, payload)?,
        },
        Kind::Interested => take::<()>(kind, payload).map(|()| Message::Interested)?,
        Kind::NotInterested => take::<()>(kind, payload).map(|()| Message::NotInterested)?,
        Kind::Choke => take::<()>(kind, payload).map(|()| Message::Choke)?,
        Kind::Unchoke => take::<()>(kind, payload).map(|()| Message::Unchoke)?,
        Kind::Request => Message::Request(take::<BlockRef>(kind, payload)?),
        Kind::Reject => Message::Reject(take::<BlockRef>(kind, payload)?),
        Kind::Cancel => Message::Cancel(take::<BlockRef>(kind, payload)?),
        Kind::Block => {
            let f: BlockFields<'_> = take(kind, payload)?;
            Message::Block {
                piece: f.piece,
                offset: f.offset,
                data: f.data,
            }
        }
        Kind::Gossip => Message::Gossip {
            payload: take::<BytesFields<'_>>(kind, payload)?.0,
        },
        Kind::HaveManifest => take::<()>(kind, payload).map(|()| Message::HaveManifest)?,
        Kind::ManifestRefused => take::<()>(kind, payload).map(|()| Message::ManifestRefused)?,
        Kind::Channel => {
            let (channel, frames) =
                postcard::take_from_bytes::<u32>(payload).map_err(|e| match e {
                    postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated,
                    _ => DecodeError::Malformed(kind),
                })?;
            Message::Channel { channel, frames }
        }
        Kind::OpenChannel => {
            let f: OpenChannelFields = take(kind, payload)?;
            Message::OpenChannel {
                channel: f.channel,
                swarm: f.swarm,
                answers: f.answers,
            }
        }
        Kind::CloseChannel => Message::CloseChannel {
            channel: take(kind, payload)?,
        },
        Kind::RefuseChannel => Message::RefuseChannel {
            channel: take(kind, payload)?,
        },
    };
    msg.validate()?;
    Ok(msg)
}

/// Decodes the first frame of a stream buffer: the message and the bytes it used, or `None`
/// while the buffer holds less than a whole frame.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Message<'_>, usize)>, DecodeError> {
    match split_frame(buf)? {
        Some((body, used)) => Ok(Some((decode(body)?, used))),
        None => Ok(None),
    }
}

fn take<'a, T: Deserialize<'a>>(kind: Kind, payload: &'a [u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(DecodeError::Trailing(rest.len(), kind)),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(DecodeError::Truncated),
        Err(_) => Err(DecodeError::Malformed(kind)),
    }
}
