//! Manifests: one BLAKE3 chaining value per piece, checked against the content id.
//!
//! Each piece is a complete subtree of the artifact's BLAKE3 tree (see [`crate::PieceLayout`]),
//! so its chaining value can be computed from the piece alone, and the content id can be rebuilt
//! from the chaining values alone. A manifest from an untrusted peer is therefore accepted only
//! if its values merge into the content id; after that, each piece is checked in O(piece size).
//!
//! The size comes from the ticket, next to the content id, not from the peer that sends the
//! hashes. The hashes bind the tree's shape but not the exact length: a manifest checked against
//! a wrong size of the same shape still merges to the id, but then no bytes ever verify as the
//! last piece (its chaining value encodes its true length), so a wrong size can stall a
//! download but never make it accept wrong data.
//!
//! An artifact of one piece has no non-root chaining value to check against: its single entry is
//! the content id itself, and its piece is verified by hashing it as the root.

use alloc::vec::Vec;

use blake3::hazmat::{self, HasherExt, Mode};

use crate::{ContentId, LayoutError, PieceLayout};

/// A BLAKE3 chaining value: the non-root hash of a subtree.
pub type ChainingValue = [u8; 32];

/// A verified manifest: the content id, the layout and one chaining value per piece.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    id: ContentId,
    layout: PieceLayout,
    piece_cvs: Vec<ChainingValue>,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The claimed size has no layout.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The number of piece values does not match the size.
    #[error("manifest lists {got} pieces, the size implies {expected}")]
    PieceCount {
        /// Pieces implied by the size.
        expected: u32,
        /// Pieces listed.
        got: usize,
    },
    /// The piece hash bytes are not a whole number of 32-byte values.
    #[error("piece hash list of {0} bytes is not a multiple of 32")]
    Ragged(usize),
    /// The piece values do not merge into the content id.
    #[error("piece hashes do not match the content id")]
    RootMismatch,
}

/// Why a piece was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PieceError {
    /// No such piece in this artifact.
    #[error("piece {index} is out of range ({count} pieces)")]
    OutOfRange {
        /// Requested piece.
        index: u32,
        /// Pieces in the artifact.
        count: u32,
    },
    /// The piece has the wrong length.
    #[error("piece {index} has {got} bytes, expected {expected}")]
    Length {
        /// The piece.
        index: u32,
        /// Length the layout prescribes.
        expected: u64,
        /// Length received.
        got: usize,
    },
    /// The bytes do not hash to the manifest's value.
    #[error("piece {index} does not match its hash")]
    Mismatch {
        /// The piece.
        index: u32,
    },
}

impl Manifest {
    /// Accepts piece values from anyone, only if they merge into `id` for an artifact of `size`.
    pub fn from_untrusted(
        id: ContentId,
        size: u64,
        piece_cvs: Vec<ChainingValue>,
    ) -> Result<Self, ManifestError> {
        let layout = PieceLayout::for_size(size)?;
        if piece_cvs.len() != layout.piece_count() as usize {
            return Err(ManifestError::PieceCount {
                expected: layout.piece_count(),
                got: piece_cvs.len(),
            });
        }
        if root_of(&layout, &piece_cvs) != id {
            return Err(ManifestError::RootMismatch);
        }
        Ok(Self {
            id,
            layout,
            piece_cvs,
        })
    }

    /// Like [`Manifest::from_untrusted`], from piece values concatenated as bytes.
    pub fn from_untrusted_bytes(
        id: ContentId,
        size: u64,
        bytes: &[u8],
    ) -> Result<Self, ManifestError> {
        let (cvs, rest) = bytes.as_chunks::<32>();
        if !rest.is_empty() {
            return Err(ManifestError::Ragged(bytes.len()));
        }
        Self::from_untrusted(id, size, cvs.to_vec())
    }

    /// Builds the manifest of an artifact held in memory.
    pub fn of(data: &[u8]) -> Result<Self, LayoutError> {
        let mut builder = ManifestBuilder::new(data.len() as u64)?;
        builder
            .update(data)
            .expect("the builder was sized for exactly these bytes");
        Ok(builder
            .finish()
            .expect("the builder was fed exactly its declared size"))
    }

    /// The content id.
    pub fn id(&self) -> ContentId {
        self.id
    }

    /// The piece layout.
    pub fn layout(&self) -> &PieceLayout {
        &self.layout
    }

    /// All piece values in order.
    pub fn piece_cvs(&self) -> &[ChainingValue] {
        &self.piece_cvs
    }

    /// All piece values concatenated, as sent on the wire.
    pub fn piece_cv_bytes(&self) -> &[u8] {
        self.piece_cvs.as_flattened()
    }

    /// Checks that `data` is exactly piece `index` of the artifact.
    pub fn verify_piece(&self, index: u32, data: &[u8]) -> Result<(), PieceError> {
        self.expectation(index)?.verify(data)
    }

    /// What piece `index` must hash to: enough to verify it elsewhere (another thread, say)
    /// without the whole manifest.
    pub fn expectation(&self, index: u32) -> Result<PieceExpectation, PieceError> {
        let count = self.layout.piece_count();
        let range = self
            .layout
            .piece_range(index)
            .ok_or(PieceError::OutOfRange { index, count })?;
        Ok(PieceExpectation {
            index,
            offset: range.start,
            len: range.end - range.start,
            expected: self.piece_cvs[index as usize],
            root: count == 1,
        })
    }
}

/// What one piece must hash to; see [`Manifest::expectation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceExpectation {
    index: u32,
    offset: u64,
    len: u64,
    expected: ChainingValue,
    /// The artifact has one piece, which is then hashed as the root.
    root: bool,
}

impl PieceExpectation {
    /// The piece's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Checks that `data` is exactly this piece.
    pub fn verify(&self, data: &[u8]) -> Result<(), PieceError> {
        self.verify_parts([data])
    }

    /// Checks that `parts`, joined in order, are exactly this piece (without joining them).
    pub fn verify_parts<'a>(
        &self,
        parts: impl IntoIterator<Item = &'a [u8]> + Clone,
    ) -> Result<(), PieceError> {
        let index = self.index;
        let got: usize = parts.clone().into_iter().map(<[u8]>::len).sum();
        if got as u64 != self.len {
            return Err(PieceError::Length {
                index,
                expected: self.len,
                got,
            });
        }
        let mut hasher = blake3::Hasher::new();
        if !self.root {
            hasher.set_input_offset(self.offset);
        }
        for part in parts {
            hasher.update(part);
        }
        let actual = if self.root {
            *hasher.finalize().as_bytes()
        } else {
            hasher.finalize_non_root()
        };
        if actual == self.expected {
            Ok(())
        } else {
            Err(PieceError::Mismatch { index })
        }
    }
}

impl core::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Manifest")
            .field("id", &self.id)
            .field("size", &self.layout.size())
            .field("piece_size", &self.layout.piece_size())
            .field("pieces", &self.piece_cvs.len())
            .finish()
    }
}

/// Rebuilds the content id from piece values; `cvs.len()` must equal the piece count.
fn root_of(layout: &PieceLayout, cvs: &[ChainingValue]) -> ContentId {
    match cvs {
        [] => ContentId::of(&[]),
        [only] => ContentId::from_bytes(*only),
        _ => {
            let (left, right) = split(layout, cvs, layout.size());
            ContentId::from(hazmat::merge_subtrees_root(&left, &right, Mode::Hash))
        }
    }
}

/// Chaining value of the subtree made of `cvs`, which covers `len` bytes.
fn subtree_cv(layout: &PieceLayout, cvs: &[ChainingValue], len: u64) -> ChainingValue {
    match cvs {
        [only] => *only,
        _ => {
            let (left, right) = split(layout, cvs, len);
            hazmat::merge_subtrees_non_root(&left, &right, Mode::Hash)
        }
    }
}

/// Chaining values of the two children of the subtree made of `cvs` (at least two pieces).
fn split(layout: &PieceLayout, cvs: &[ChainingValue], len: u64) -> (ChainingValue, ChainingValue) {
    // BLAKE3's left child is a power of two >= piece size here, so it ends on a piece boundary.
    let left_len = hazmat::left_subtree_len(len);
    let (left, right) = cvs.split_at((left_len / layout.piece_size()) as usize);
    (
        subtree_cv(layout, left, left_len),
        subtree_cv(layout, right, len - left_len),
    )
}

/// Builds a manifest from an artifact streamed in chunks of any size.
#[derive(Clone)]
pub struct ManifestBuilder {
    layout: PieceLayout,
    hasher: blake3::Hasher,
    position: u64,
    piece_cvs: Vec<ChainingValue>,
}

/// Why the streamed bytes did not make the declared artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// More bytes arrived than the declared size.
    #[error("artifact is longer than the declared {expected} bytes")]
    TooLong {
        /// Declared size.
        expected: u64,
    },
    /// Fewer bytes arrived than the declared size.
    #[error("artifact ended after {got} bytes, expected {expected}")]
    TooShort {
        /// Declared size.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
}

impl ManifestBuilder {
    /// Starts a manifest for an artifact of exactly `size` bytes.
    pub fn new(size: u64) -> Result<Self, LayoutError> {
        let layout = PieceLayout::for_size(size)?;
        Ok(Self {
            layout,
            hasher: blake3::Hasher::new(),
            position: 0,
            piece_cvs: Vec::with_capacity(layout.piece_count() as usize),
        })
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The layout of the artifact being built.
    pub fn layout(&self) -> &PieceLayout {
        &self.layout
    }

    /// Feeds the next bytes of the artifact.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), BuildError> {
        let size = self.layout.size();
        if data.len() as u64 > size - self.position {
            return Err(BuildError::TooLong { expected: size });
        }
        let multi_piece = self.layout.piece_count() > 1;
        while !data.is_empty() {
            let piece_end =
                (self.position / self.layout.piece_size() + 1) * self.layout.piece_size();
            let take = (piece_end.min(size) - self.position).min(data.len() as u64) as usize;
            self.hasher.update(&data[..take]);
            self.position += take as u64;
            data = &data[take..];
            if multi_piece && (self.position == piece_end || self.position == size) {
                self.piece_cvs.push(self.hasher.finalize_non_root());
                self.hasher = blake3::Hasher::new();
                if self.position < size {
                    // A piece boundary: a multiple of the piece size, hence of the chunk size.
                    self.hasher.set_input_offset(self.position);
                }
            }
        }
        Ok(())
    }

    /// Finishes the manifest; fails unless exactly the declared size was fed.
    pub fn finish(mut self) -> Result<Manifest, BuildError> {
        let size = self.layout.size();
        if self.position != size {
            return Err(BuildError::TooShort {
                expected: size,
                got: self.position,
            });
        }
        let id = match self.layout.piece_count() {
            0 => ContentId::of(&[]),
            1 => {
                let id = ContentId::from(self.hasher.finalize());
                self.piece_cvs.push(*id.as_bytes());
                id
            }
            _ => root_of(&self.layout, &self.piece_cvs),
        };
        Ok(Manifest {
            id,
            layout: self.layout,
            piece_cvs: self.piece_cvs,
        })
    }
}
