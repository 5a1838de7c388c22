//! How an artifact is cut into pieces.
//!
//! The rule is a pure function of the artifact size, so every peer derives the same layout from
//! the size in a ticket and no peer has to trust another's choice:
//!
//! `piece_size = clamp(next_power_of_two(ceil(size / 1024)), 16 KiB, 16 MiB)`
//!
//! That yields about a thousand pieces (between 513 and 1024) for artifacts from 16 MiB to
//! 16 GiB, at most 1024 pieces of 16 KiB below that, and pieces of 16 MiB above it. Every piece
//! is a power of two of at least 16 BLAKE3 chunks and starts at a multiple of its size, so each
//! piece is a complete subtree of the artifact's BLAKE3 tree (the last one may be short).

use core::ops::Range;

/// Smallest piece size: 16 KiB.
pub const MIN_PIECE_SIZE: u64 = 16 * 1024;
/// Largest piece size: 16 MiB.
pub const MAX_PIECE_SIZE: u64 = 16 * 1024 * 1024;
/// Number of pieces the rule aims for.
pub const TARGET_PIECES: u64 = 1024;
/// Most pieces an artifact may have (one mebi-piece, so a manifest is at most 32 MiB).
pub const MAX_PIECES: u64 = 1 << 20;
/// Largest artifact Pollen accepts: 16 TiB.
pub const MAX_ARTIFACT_SIZE: u64 = MAX_PIECES * MAX_PIECE_SIZE;

/// The piece structure of an artifact of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PieceLayout {
    size: u64,
    piece_size: u64,
}

/// Why no layout exists for a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The artifact is larger than [`MAX_ARTIFACT_SIZE`].
    #[error("artifact of {0} bytes exceeds the limit of {MAX_ARTIFACT_SIZE} bytes (16 TiB)")]
    TooLarge(u64),
}

impl PieceLayout {
    /// The layout for an artifact of `size` bytes.
    pub fn for_size(size: u64) -> Result<Self, LayoutError> {
        if size > MAX_ARTIFACT_SIZE {
            return Err(LayoutError::TooLarge(size));
        }
        let piece_size = size
            .div_ceil(TARGET_PIECES)
            .next_power_of_two()
            .clamp(MIN_PIECE_SIZE, MAX_PIECE_SIZE);
        Ok(Self { size, piece_size })
    }

    /// Artifact size in bytes.
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// Size of every piece but possibly the last.
    pub const fn piece_size(&self) -> u64 {
        self.piece_size
    }

    /// Number of pieces; zero for an empty artifact.
    pub const fn piece_count(&self) -> u32 {
        // At most MAX_PIECES (2^20), so the cast is lossless.
        self.size.div_ceil(self.piece_size) as u32
    }

    /// Byte range of piece `index` within the artifact, or `None` past the end.
    pub fn piece_range(&self, index: u32) -> Option<Range<u64>> {
        if index >= self.piece_count() {
            return None;
        }
        let start = u64::from(index) * self.piece_size;
        Some(start..(start + self.piece_size).min(self.size))
    }

    /// Length of piece `index`, or `None` past the end.
    pub fn piece_len(&self, index: u32) -> Option<u64> {
        self.piece_range(index).map(|r| r.end - r.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_examples() {
        let kib = 1024;
        let mib = 1024 * kib;
        let gib = 1024 * mib;
        for (size, piece, count) in [
            (0, 16 * kib, 0),
            (1, 16 * kib, 1),
            (16 * kib, 16 * kib, 1),
            (16 * kib + 1, 16 * kib, 2),
            (16 * mib, 16 * kib, 1024),
            (16 * mib + 1, 32 * kib, 513),
            (gib, mib, 1024),
            (16 * gib, 16 * mib, 1024),
            (64 * gib, 16 * mib, 4096),
            (MAX_ARTIFACT_SIZE, MAX_PIECE_SIZE, 1 << 20),
        ] {
            let l = PieceLayout::for_size(size).expect("size within limit");
            assert_eq!(
                (l.piece_size(), l.piece_count()),
                (piece, count),
                "size {size}"
            );
        }
        assert_eq!(
            PieceLayout::for_size(MAX_ARTIFACT_SIZE + 1),
            Err(LayoutError::TooLarge(MAX_ARTIFACT_SIZE + 1))
        );
    }

    #[test]
    fn ranges_cover_the_artifact() {
        let l = PieceLayout::for_size(3 * 16 * 1024 + 5).expect("small");
        assert_eq!(l.piece_count(), 4);
        assert_eq!(l.piece_range(0), Some(0..16384));
        assert_eq!(l.piece_range(3), Some(49152..49157));
        assert_eq!(l.piece_len(3), Some(5));
        assert_eq!(l.piece_range(4), None);
    }
}
