//! Lowercase hex for 32-byte identifiers.

use core::fmt;

/// Writes up to 32 `bytes` as lowercase hex.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 64];
    let bytes = &bytes[..bytes.len().min(32)];
    for (pair, b) in buf.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    // Every byte written is an ASCII hex digit.
    f.write_str(core::str::from_utf8(&buf[..2 * bytes.len()]).map_err(|_| fmt::Error)?)
}

/// Parses exactly 64 hex digits (either case) into 32 bytes.
pub(crate) fn parse_hex32(s: &str) -> Result<[u8; 32], HexError> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(HexError::Length(bytes.len()));
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0], 2 * i)? << 4) | nibble(pair[1], 2 * i + 1)?;
    }
    Ok(out)
}

fn nibble(c: u8, at: usize) -> Result<u8, HexError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(HexError::Digit { at }),
    }
}

/// Why a string is not 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The string does not have exactly 64 characters.
    #[error("expected 64 hex digits, got {0} bytes")]
    Length(usize),
    /// A character is not a hex digit.
    #[error("character {at} is not a hex digit")]
    Digit {
        /// Byte position of the offending character.
        at: usize,
    },
}
