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
    /// Bytes of the `Channel` frames in all.
    pub(crate) len: u64,
    /// Whether a `Block` frame is among them.
    pub(crate) blocks: bool,
}

/// Wraps the whole frames of `segments` (as a swarm's `poll_transmit` gives them) into
/// `Channel` frames for `channel`, appended to `out` as segments (the swarm's bytes are
/// moved or shared, not copied), cutting only between frames: a frame joins the group before
/// it while the group stays within [`GROUP_PAYLOAD`].
/// Bytes after the last whole frame (a swarm never leaves any) are dropped.
pub(crate) fn wrap(channel: u32, segments: Vec<Bytes>, out: &mut Vec<Bytes>) -> Wrapped {
    let mut wrapped = Wrapped {
        len: 0,
        blocks: false,
    };
    let mut reader = Reader::new(segments);
    // The frames of the Channel frame being built, as (start, len) in the transmit's bytes.
    let mut group_start = 0usize;
    let mut group_len = 0usize;
    while let Some((len, kind)) = reader.next_frame() {
        if kind == Some(Kind::Block as u8) {
            wrapped.blocks = true;
        }
        if group_len > 0 && group_len + len > GROUP_PAYLOAD {
            push_group(
                &mut wrapped,
                out,
                channel,
                &mut reader,
                group_start,
                group_len,
            );
            group_start += group_len;
            group_len = 0;
        }
        group_len += len;
    }
    if group_len > 0 {
        push_group(
            &mut wrapped,
            out,
            channel,
            &mut reader,
            group_start,
            group_len,
        );
    }
    wrapped
}

fn push_group(
    wrapped: &mut Wrapped,
    out: &mut Vec<Bytes>,
    channel: u32,
    reader: &mut Reader,
    start: usize,
    len: usize,
) {
    let mut header = Vec::with_capacity(CHANNEL_HEADER_MAX);
    if wire::encode_channel_header(channel, len, &mut header).is_err() {
        // A group never exceeds MAX_CHANNEL_PAYLOAD and is never empty.
        debug_assert!(false, "a channel group of {len} bytes does not fit a frame");
        return;
    }
    wrapped.len += (header.len() + len) as u64;
    out.push(Bytes::from(header));
    reader.move_out(start, len, out);
}

/// Walks the frames of a transmit's segments, then hands them on without copying them.
struct Reader {
    segments: Vec<Bytes>,
    /// Bytes of the transmit walked so far.
    at: usize,
    total: usize,
    /// The first segment not yet wholly handed on, and where it starts in the transmit.
    next_seg: usize,
    next_seg_start: usize,
}

impl Reader {
    fn new(segments: Vec<Bytes>) -> Self {
        let total = segments.iter().map(Bytes::len).sum();
        Self {
            segments,
            at: 0,
            total,
            next_seg: 0,
            next_seg_start: 0,
        }
    }

    /// The byte at `pos` of the transmit (not in a segment handed on whole).
    fn byte(&self, pos: usize) -> Option<u8> {
        let mut pos = pos.checked_sub(self.next_seg_start)?;
        for s in &self.segments[self.next_seg..] {
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

    /// Appends the transmit's bytes `start..start + len` to `out`: segments wholly inside
    /// are moved, others sliced. Ranges come in order and do not overlap.
    fn move_out(&mut self, start: usize, len: usize, out: &mut Vec<Bytes>) {
        let end = start + len;
        let mut seg_start = self.next_seg_start;
        for i in self.next_seg..self.segments.len() {
            let s_len = self.segments[i].len();
            let seg_end = seg_start + s_len;
            let from = start.max(seg_start);
            let to = end.min(seg_end);
            if from == seg_start && to == seg_end && s_len > 0 {
                out.push(core::mem::take(&mut self.segments[i]));
            } else if from < to {
                out.push(self.segments[i].slice(from - seg_start..to - seg_start));
            }
            if seg_end <= end {
                // Handed on whole (or finished): later frames start after it.
                self.next_seg = i + 1;
                self.next_seg_start = seg_end;
            }
            seg_start = seg_end;
            if seg_start >= end {
                break;
            }
        }
    }
}

/// Checks that a `Channel` frame's `frames` are whole frames: a partial one is a protocol
/// error.
pub(crate) fn check(frames: &[u8]) -> Result<(), DecodeError> {
    let mut rest = frames;
    while !rest.is_empty() {
        let (_, used) = wire::split_frame(rest)?.ok_or(DecodeError::Truncated)?;
        rest = &rest[used..];
    }
    Ok(())
}

/// The frame bodies inside a `Channel` frame's `frames` (whole, as [`check`] found them), as
/// slices of `body` (the whole `Channel` frame body).
pub(crate) fn bodies<'a>(body: &'a Bytes, frames: &'a [u8]) -> impl Iterator<Item = Bytes> + 'a {
    let mut rest = frames;
    core::iter::from_fn(move || {
        let (inner, used) = wire::split_frame(rest).ok()??;
        rest = &rest[used..];
        Some(body.slice_ref(inner))
    })
}
