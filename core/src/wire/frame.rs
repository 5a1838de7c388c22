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
