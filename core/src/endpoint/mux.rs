//! Carrying a swarm's frames in `Channel` frames of a shared connection, and back.

use alloc::vec::Vec;

use bytes::Bytes;

use crate::wire::{self, DecodeError, Kind, LEN_PREFIX, MAX_BLOCK_LEN, MAX_FRAME_LEN};

/// Room a `Channel` header takes in a frame (length prefix, version, kind, varint channel).
const CHANNEL_HEADER_MAX: usize = LEN_PREFIX + 2 + 5;

/// Most bytes of swarm frames one `Channel` frame carries.
const MAX_CHANNEL_PAYLOAD: usize = MAX_FRAME_LEN - CHANNEL_HEADER_MAX;

/// Bytes of swarm frames after which a `Channel` frame takes no more: one block and a few
/// small frames, so a receiver's block-sized buffers hold every `Channel` frame.
const GROUP_PAYLOAD: usize = MAX_BLOCK_LEN + 512;

/// What [`wrap`] made of one swarm transmit.
pub(crate) struct Wrapped {
    /// Whole `Channel` frames as segments (the swarm's bytes are shared, not copied).
    pub(crate) segments: Vec<Bytes>,
    /// Bytes of `segments` in all.
    pub(crate) len: u64,
    /// Whether a `Block` frame is among them.
    pub(crate) blocks: bool,
}

/// Wraps the whole frames of `segments` (as a swarm's `poll_transmit` gives them) into
/// `Channel` frames for `channel`, cutting only between frames: a frame joins the group
/// before it while the group stays within [`GROUP_PAYLOAD`].
/// Bytes after the last whole frame (a swarm never leaves any) are dropped.
pub(crate) fn wrap(channel: u32, segments: &[Bytes]) -> Wrapped {
    let mut out = Wrapped {
        segments: Vec::new(),
        len: 0,
        blocks: false,
    };
    let mut reader = Reader::new(segments);
    // The frames of the Channel frame being built, as (start, len) in the transmit's bytes.
    let mut group_start = 0usize;
    let mut group_len = 0usize;
    while let Some((len, kind)) = reader.next_frame() {
        if kind == Some(Kind::Block as u8) {
            out.blocks = true;
        }
        if group_len > 0 && group_len + len > GROUP_PAYLOAD {
            push_group(&mut out, channel, &reader, group_start, group_len);
            group_start += group_len;
            group_len = 0;
        }
        group_len += len;
    }
    if group_len > 0 {
        push_group(&mut out, channel, &reader, group_start, group_len);
    }
    out
}

fn push_group(out: &mut Wrapped, channel: u32, reader: &Reader<'_>, start: usize, len: usize) {
    let mut header = Vec::with_capacity(CHANNEL_HEADER_MAX);
    if wire::encode_channel_header(channel, len, &mut header).is_err() {
        // A group never exceeds MAX_CHANNEL_PAYLOAD and is never empty.
        debug_assert!(false, "a channel group of {len} bytes does not fit a frame");
        return;
    }
    out.len += (header.len() + len) as u64;
    out.segments.push(Bytes::from(header));
    reader.slices(start, len, &mut out.segments);
}

/// Walks the frames of a transmit's segments without copying them.
struct Reader<'a> {
    segments: &'a [Bytes],
    /// Bytes of the transmit walked so far.
    at: usize,
    total: usize,
}

impl<'a> Reader<'a> {
    fn new(segments: &'a [Bytes]) -> Self {
        Self {
            segments,
            at: 0,
            total: segments.iter().map(Bytes::len).sum(),
        }
    }

    /// The byte at `pos` of the transmit.
    fn byte(&self, mut pos: usize) -> Option<u8> {
        for s in self.segments {
            if pos < s.len() {
                return Some(s[pos]);
            }
            pos -= s.len();
        }
        None
    }

    /// The next whole frame's length (prefix included) and kind byte.
    fn next_frame(&mut self) -> Option<(usize, Option<u8>)> {
        let mut prefix = [0u8; LEN_PREFIX];
        for (i, b) in prefix.iter_mut().enumerate() {
            *b = self.byte(self.at + i)?;
        }
        let len = LEN_PREFIX + u32::from_le_bytes(prefix) as usize;
        if self.at + len > self.total || len > MAX_CHANNEL_PAYLOAD {
            return None;
        }
        let kind = self.byte(self.at + LEN_PREFIX + 1);
        self.at += len;
        Some((len, kind))
    }

    /// Appends the transmit's bytes `start..start + len` to `out` as slices of its segments.
    fn slices(&self, start: usize, len: usize, out: &mut Vec<Bytes>) {
        let end = start + len;
        let mut seg_start = 0;
        for s in self.segments {
            let seg_end = seg_start + s.len();
            let from = start.max(seg_start);
            let to = end.min(seg_end);
            if from < to {
                out.push(s.slice(from - seg_start..to - seg_start));
            }
            seg_start = seg_end;
            if seg_start >= end {
                break;
            }
        }
    }
}

/// The frame bodies inside a `Channel` frame's `frames`, as slices of `body` (the whole
/// `Channel` frame body). A partial frame is a protocol error.
pub(crate) fn unwrap(body: &Bytes, frames: &[u8]) -> Result<Vec<Bytes>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = frames;
    while !rest.is_empty() {
        let (inner, used) = wire::split_frame(rest)?.ok_or(DecodeError::Truncated)?;
        out.push(body.slice_ref(inner));
        rest = &rest[used..];
    }
    Ok(out)
}
