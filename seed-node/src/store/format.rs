//! The byte formats of the `manifest` and `have` files (described in the module docs of
//! [`super`]): pure functions from values to bytes and back. Reading and writing the files is
//! [`super::files`]'s.
//!
//! This module is self-contained (std, pollen-core, blake3 and thiserror only, nothing of this
//! crate) because the fuzz crate compiles it too (`#[path]`, see `fuzz/README.md`): keep it so.

use pollen_core::{
    Bitfield, BitfieldError, ContentId, Manifest, ManifestError,
    layout::MAX_PIECES,
    ticket::{self, MAX_NAME_LEN},
};

const MANIFEST_MAGIC: &[u8; 8] = b"POLLNMAN";
const HAVE_MAGIC: &[u8; 8] = b"POLLNHAV";
/// Format version of both files.
const VERSION: u32 = 1;
const CHECKSUM_LEN: usize = 8;
/// Magic and version.
const PREFIX_LEN: usize = 8 + 4;
/// Everything before the name: prefix, id, size, piece count, name length.
const MANIFEST_HEADER_LEN: usize = PREFIX_LEN + 32 + 8 + 4 + 2;
/// The longest valid manifest file, which bounds what is read from disk.
pub(super) const MAX_MANIFEST_LEN: u64 =
    (MANIFEST_HEADER_LEN + MAX_NAME_LEN + CHECKSUM_LEN) as u64 + 32 * MAX_PIECES;

/// What is wrong with a `manifest` or `have` file (or with `data`, for [`FormatError::DataFile`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormatError {
    /// The file does not exist.
    #[error("file is missing")]
    Missing,
    /// The file is too short, too long, or its fields do not add up to its length.
    #[error("file has the wrong length")]
    Length,
    /// The magic bytes are wrong.
    #[error("not a Pollen {0} file")]
    Magic(&'static str),
    /// The format version is not supported.
    #[error("unsupported format version {0}")]
    Version(u32),
    /// The trailing checksum does not match: a torn write or corruption.
    #[error("checksum mismatch (torn write or corruption)")]
    Checksum,
    /// The file belongs to another artifact.
    #[error("file belongs to artifact {0}")]
    WrongArtifact(ContentId),
    /// The stored name is not a valid artifact name.
    #[error("invalid stored name")]
    Name,
    /// The piece count does not match the manifest.
    #[error("lists {got} pieces, the manifest has {expected}")]
    PieceCount {
        /// Pieces in the manifest.
        expected: u32,
        /// Pieces in the file.
        got: u32,
    },
    /// The chaining values do not make the content id.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The stored bits are malformed.
    #[error(transparent)]
    Bitfield(#[from] BitfieldError),
    /// The data file was missing or had the wrong length, so the held set was discarded.
    #[error("data file is missing or has the wrong length")]
    DataFile,
}

/// Encodes a manifest file. `name` must have passed [`ticket::check_name`].
pub(super) fn encode_manifest(manifest: &Manifest, name: Option<&str>) -> Vec<u8> {
    let name = name.unwrap_or("").as_bytes();
    let cvs = manifest.piece_cv_bytes();
    let mut out = Vec::with_capacity(MANIFEST_HEADER_LEN + name.len() + cvs.len() + CHECKSUM_LEN);
    out.extend_from_slice(MANIFEST_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(manifest.id().as_bytes());
    out.extend_from_slice(&manifest.layout().size().to_le_bytes());
    out.extend_from_slice(&manifest.layout().piece_count().to_le_bytes());
    // Names are at most MAX_NAME_LEN (255) bytes, so this cannot truncate.
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(cvs);
    seal(out)
}

/// Decodes a manifest file of artifact `id` and checks it against the id.
pub(super) fn decode_manifest(
    id: ContentId,
    bytes: &[u8],
) -> Result<(Manifest, Option<String>), FormatError> {
    let mut r = Reader(open_envelope(bytes, MANIFEST_MAGIC, "manifest")?);
    let file_id = ContentId::from_bytes(r.array()?);
    if file_id != id {
        return Err(FormatError::WrongArtifact(file_id));
    }
    let size = u64::from_le_bytes(r.array()?);
    let pieces = u32::from_le_bytes(r.array()?);
    let name_len = u16::from_le_bytes(r.array()?);
    let name = r.take(usize::from(name_len))?;
    let cvs = r.take(
        (pieces as usize)
            .checked_mul(32)
            .ok_or(FormatError::Length)?,
    )?;
    r.end()?;
    let name = if name.is_empty() {
        None
    } else {
        let name = std::str::from_utf8(name).map_err(|_| FormatError::Name)?;
        ticket::check_name(name).map_err(|_| FormatError::Name)?;
        Some(name.to_owned())
    };
    // Checks the piece count against the size, and that the values merge into the id.
    let manifest = Manifest::from_untrusted_bytes(id, size, cvs)?;
    Ok((manifest, name))
}

/// Encodes a have file.
pub(super) fn encode_have(id: ContentId, have: &Bitfield) -> Vec<u8> {
    let bits = have.as_bytes();
    let mut out = Vec::with_capacity(PREFIX_LEN + 32 + 4 + bits.len() + CHECKSUM_LEN);
    out.extend_from_slice(HAVE_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&have.len().to_le_bytes());
    out.extend_from_slice(bits);
    seal(out)
}

/// Decodes a have file of artifact `id`, which has `pieces` pieces.
pub(super) fn decode_have(
    id: ContentId,
    pieces: u32,
    bytes: &[u8],
) -> Result<Bitfield, FormatError> {
    let mut r = Reader(open_envelope(bytes, HAVE_MAGIC, "have")?);
    let file_id = ContentId::from_bytes(r.array()?);
    if file_id != id {
        return Err(FormatError::WrongArtifact(file_id));
    }
    let got = u32::from_le_bytes(r.array()?);
    if got != pieces {
        return Err(FormatError::PieceCount {
            expected: pieces,
            got,
        });
    }
    let bits = r.take(pieces.div_ceil(8) as usize)?;
    r.end()?;
    Ok(Bitfield::from_bytes(pieces, bits)?)
}

/// The length of the have file of an artifact of `pieces` pieces.
pub(super) fn have_len(pieces: u32) -> u64 {
    (PREFIX_LEN + 32 + 4 + pieces.div_ceil(8) as usize + CHECKSUM_LEN) as u64
}

/// Appends the checksum of `out` to it.
fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&out);
    out.extend_from_slice(&sum);
    out
}

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut sum = [0; CHECKSUM_LEN];
    sum.copy_from_slice(&blake3::hash(bytes).as_bytes()[..CHECKSUM_LEN]);
    sum
}

/// Checks magic, version and checksum; returns the fields between the version and the checksum.
fn open_envelope<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    kind: &'static str,
) -> Result<&'a [u8], FormatError> {
    if bytes.len() < PREFIX_LEN + CHECKSUM_LEN {
        return Err(FormatError::Length);
    }
    let (signed, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    let (prefix, fields) = signed.split_at(PREFIX_LEN);
    let (file_magic, version) = prefix.split_at(8);
    if file_magic != magic {
        return Err(FormatError::Magic(kind));
    }
    let mut v = [0; 4];
    v.copy_from_slice(version);
    let version = u32::from_le_bytes(v);
    // The version comes before the checksum, so that a future version may change the checksum.
    if version != VERSION {
        return Err(FormatError::Version(version));
    }
    if checksum(signed) != sum {
        return Err(FormatError::Checksum);
    }
    Ok(fields)
}

/// Reads fields front to back; running out of bytes is [`FormatError::Length`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if n > self.0.len() {
            return Err(FormatError::Length);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn end(&self) -> Result<(), FormatError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(FormatError::Length)
        }
    }
}

#[cfg(test)]
mod tests {
    use pollen_core::{ManifestError, layout::MIN_PIECE_SIZE};

    use super::*;

    fn sample() -> Manifest {
        let data: Vec<u8> = (0..3 * MIN_PIECE_SIZE + 5).map(|i| (i * 7) as u8).collect();
        Manifest::of(&data).expect("small")
    }

    #[test]
    fn manifest_round_trips_with_and_without_name() {
        let m = sample();
        for name in [None, Some("release.tar.gz")] {
            let bytes = encode_manifest(&m, name);
            let (back, back_name) = decode_manifest(m.id(), &bytes).expect("valid");
            assert_eq!(back, m);
            assert_eq!(back_name.as_deref(), name);
        }
        let empty = Manifest::of(&[]).expect("empty");
        let bytes = encode_manifest(&empty, None);
        assert_eq!(decode_manifest(empty.id(), &bytes).map(|r| r.0), Ok(empty));
    }

    #[test]
    fn every_bit_flip_of_a_manifest_file_is_refused() {
        let m = sample();
        let bytes = encode_manifest(&m, Some("a"));
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_manifest(m.id(), &b).is_err(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            assert!(decode_manifest(m.id(), &bytes[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn resealed_manifest_is_still_checked_against_the_id() {
        let m = sample();
        let mut bytes = encode_manifest(&m, None);
        bytes.truncate(bytes.len() - CHECKSUM_LEN);
        // Change one chaining value and fix the checksum: only the root check can catch it.
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let bytes = seal(bytes);
        assert_eq!(
            decode_manifest(m.id(), &bytes),
            Err(FormatError::Manifest(ManifestError::RootMismatch))
        );
        let other = ContentId::of(b"other");
        assert_eq!(
            decode_manifest(other, &encode_manifest(&m, None)),
            Err(FormatError::WrongArtifact(m.id()))
        );
    }

    #[test]
    fn have_round_trips_and_refuses_damage() {
        let id = ContentId::of(b"x");
        let mut have = Bitfield::new(11);
        have.insert(0);
        have.insert(10);
        let bytes = encode_have(id, &have);
        assert_eq!(decode_have(id, 11, &bytes), Ok(have.clone()));
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_have(id, 11, &b).is_err(), "bit {bit}");
        }
        assert_eq!(
            decode_have(id, 12, &bytes),
            Err(FormatError::PieceCount {
                expected: 12,
                got: 11
            })
        );
        assert_eq!(
            decode_have(ContentId::of(b"y"), 11, &bytes),
            Err(FormatError::WrongArtifact(id))
        );
        assert_eq!(decode_have(id, 11, b"garbage"), Err(FormatError::Length));
        let mut future = bytes.clone();
        future[8] = 2;
        assert_eq!(decode_have(id, 11, &future), Err(FormatError::Version(2)));
    }
}
