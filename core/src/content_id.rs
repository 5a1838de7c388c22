//! The content id: the plain BLAKE3 hash of an artifact.

use core::{fmt, str::FromStr};

use crate::hex::{self, HexError};

/// The BLAKE3 hash of a whole artifact; its hex form is exactly what `b3sum` prints.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ContentId([u8; 32]);

impl ContentId {
    /// Wraps 32 hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 hash bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Hashes a complete in-memory artifact.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }
}

impl From<blake3::Hash> for ContentId {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex::write_hex(f, &self.0)
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

/// Why a string is not a content id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid content id: {0}")]
pub struct ParseIdError(#[from] pub HexError);

impl FromStr for ContentId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(hex::parse_hex32(s)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn display_matches_blake3_hex() {
        let id = ContentId::of(b"hello");
        assert_eq!(id.to_string(), blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(id.to_string().parse::<ContentId>(), Ok(id));
        assert_eq!(id.to_string().to_uppercase().parse::<ContentId>(), Ok(id));
    }

    #[test]
    fn rejects_bad_strings() {
        assert!(matches!(
            "".parse::<ContentId>(),
            Err(ParseIdError(HexError::Length(0)))
        ));
        let mut s = ContentId::of(b"x").to_string();
        s.replace_range(10..11, "g");
        assert_eq!(
            s.parse::<ContentId>(),
            Err(ParseIdError(HexError::Digit { at: 10 }))
        );
        // A multi-byte character must not make the parser slice inside it.
        let odd = "é".repeat(32);
        assert!(odd.parse::<ContentId>().is_err());
    }
}
