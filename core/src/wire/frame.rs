//! Length-delimited framing for byte streams.

use super::{DecodeError, LEN_PREFIX, MAX_FRAME_LEN};

/// Splits the first frame off a stream buffer.
///
/// Returns the frame body (version, kind and payload) and the number of bytes the frame used, or
/// `None` while the buffer holds less than a whole frame. An oversized length is refused as soon
/// as the prefix arrives, so a reader never buffers more than [`MAX_FRAME_LEN`] bytes.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let Some((prefix, rest)) = buf.split_first_chunk::<LEN_PREFIX>() else {
        return Ok(None);
    };
    let body_len = u32::from_le_bytes(*prefix) as usize;
    let frame_len = body_len.saturating_add(LEN_PREFIX);
    if frame_len > MAX_FRAME_LEN {
        return Err(DecodeError::TooLarge(frame_len));
    }
    Ok(rest.get(..body_len).map(|body| (body, frame_len)))
}

/// Reassembles frames from the messages of a message transport (a WebRTC data channel), whose
/// boundaries need not match the frames'.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: alloc::vec::Vec<u8>,
    /// Bytes of `buf` already handed out as frames.
    consumed: usize,
}

impl FrameBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.consumed > 0 && self.consumed == self.buf.len() {
            self.buf.clear();
            self.consumed = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame's body, `None` until one has arrived, or the framing error that
    /// ends the link. Never holds more than one frame plus one message.
    pub fn next_frame(&mut self) -> Result<Option<bytes::Bytes>, DecodeError> {
        match split_frame(&self.buf[self.consumed..])? {
            None => {
                // Keep the unconsumed tail at the front, so the buffer does not grow.
                if self.consumed > 0 {
                    self.buf.drain(..self.consumed);
                    self.consumed = 0;
                }
                Ok(None)
            }
            Some((body, used)) => {
                let body = bytes::Bytes::copy_from_slice(body);
                self.consumed += used;
                Ok(Some(body))
            }
        }
    }

    /// Bytes received and not yet handed out.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.consumed
    }
}

/// Packs frame segments into messages of at most `max` bytes each (the last may be shorter),
/// for a transport with a message size limit. Segment boundaries are not kept.
pub fn pack_messages(
    segments: &[bytes::Bytes],
    max: usize,
) -> alloc::vec::Vec<alloc::vec::Vec<u8>> {
    let max = max.max(1);
    let mut remaining: usize = segments.iter().map(|s| s.len()).sum();
    let mut out = alloc::vec::Vec::with_capacity(remaining.div_ceil(max));
    let mut cur: alloc::vec::Vec<u8> = alloc::vec::Vec::new();
    for seg in segments {
        let mut rest = &seg[..];
        while !rest.is_empty() {
            if cur.len() == max {
                out.push(core::mem::take(&mut cur));
            }
            if cur.is_empty() {
                cur.reserve_exact(max.min(remaining));
            }
            let n = rest.len().min(max - cur.len());
            cur.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            remaining -= n;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn frames_reassemble_across_any_message_boundaries() {
        let bodies: Vec<Vec<u8>> = (0..20u8)
            .map(|i| alloc::vec![i; usize::from(i) * 37])
            .collect();
        let stream: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
        for chunk in [1, 3, 64, 1000, stream.len()] {
            let segments = [bytes::Bytes::from(stream.clone())];
            let messages = pack_messages(&segments, chunk);
            assert!(messages.iter().all(|m| m.len() <= chunk));
            assert_eq!(messages.concat(), stream);
            let mut buf = FrameBuffer::new();
            let mut got = Vec::new();
            for m in &messages {
                buf.push(m);
                while let Some(body) = buf.next_frame().expect("valid framing") {
                    got.push(body.to_vec());
                }
            }
            assert_eq!(got, bodies, "chunk {chunk}");
            assert_eq!(buf.pending(), 0);
        }
    }

    #[test]
    fn an_oversized_prefix_is_refused_at_once() {
        let mut buf = FrameBuffer::new();
        buf.push(&u32::MAX.to_le_bytes());
        assert!(buf.next_frame().is_err());
    }
}
