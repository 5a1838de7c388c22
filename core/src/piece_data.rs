//! A piece's bytes, kept as the segments they arrived in, so nothing is copied to join them.

use alloc::vec::Vec;

use bytes::Bytes;

/// The bytes of one piece, as one or more segments in order (blocks as they arrived, or one
/// buffer read from disk).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PieceData {
    segments: Vec<Bytes>,
    len: usize,
}

impl PieceData {
    /// A piece made of `segments`, in order.
    pub fn from_segments(segments: Vec<Bytes>) -> Self {
        let len = segments.iter().map(Bytes::len).sum();
        Self { segments, len }
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the piece has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    /// Bytes `offset..offset + len` as zero-copy slices of the segments, or `None` if the range
    /// is out of bounds.
    pub fn slice(&self, offset: usize, len: usize) -> Option<Vec<Bytes>> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        let mut out = Vec::new();
        let mut start = 0;
        for seg in &self.segments {
            let seg_end = start + seg.len();
            if seg_end > offset && start < end {
                let from = offset.max(start) - start;
                let to = end.min(seg_end) - start;
                out.push(seg.slice(from..to));
            }
            start = seg_end;
            if start >= end {
                break;
            }
        }
        Some(out)
    }

    /// The bytes in one contiguous buffer (copies unless there is a single segment).
    pub fn to_bytes(&self) -> Bytes {
        match self.segments.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut v = Vec::with_capacity(self.len);
                for s in many {
                    v.extend_from_slice(s);
                }
                Bytes::from(v)
            }
        }
    }
}

impl From<Bytes> for PieceData {
    fn from(bytes: Bytes) -> Self {
        Self::from_segments(alloc::vec![bytes])
    }
}

impl From<Vec<u8>> for PieceData {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_span_segments_without_copying() {
        let d = PieceData::from_segments(alloc::vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"defg"),
            Bytes::from_static(b"h"),
        ]);
        assert_eq!(d.len(), 8);
        let join = |v: Vec<Bytes>| {
            v.iter()
                .flat_map(|b| b.iter().copied())
                .collect::<Vec<u8>>()
        };
        assert_eq!(join(d.slice(0, 8).expect("in range")), b"abcdefgh");
        assert_eq!(join(d.slice(2, 3).expect("in range")), b"cde");
        assert_eq!(join(d.slice(7, 1).expect("in range")), b"h");
        assert_eq!(d.slice(3, 4).expect("in range").len(), 1);
        assert_eq!(d.slice(0, 0).expect("in range").len(), 0);
        assert!(d.slice(5, 4).is_none());
        assert_eq!(&d.to_bytes()[..], b"abcdefgh");
    }
}
