//! Sets of pieces, packed as the wire's `Bitfield` message carries them.

use alloc::{vec, vec::Vec};

/// Which of an artifact's pieces are present: bit `i` is bit `7 - i % 8` of byte `i / 8`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    count: u32,
}

/// Why packed bits are not a bitfield for a given piece count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    /// The byte length does not match the piece count.
    #[error("bitfield of {got} bytes for {pieces} pieces (expected {expected} bytes)")]
    Length {
        /// Pieces in the artifact.
        pieces: u32,
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// Bits past the last piece are set.
    #[error("bitfield has bits set past the last piece")]
    SpareBits,
}

impl Bitfield {
    /// An empty set over `len` pieces.
    pub fn new(len: u32) -> Self {
        Self {
            bytes: vec![0; byte_len(len)],
            len,
            count: 0,
        }
    }

    /// The full set over `len` pieces.
    pub fn full(len: u32) -> Self {
        let mut b = Self::new(len);
        for i in 0..len {
            b.insert(i);
        }
        b
    }

    /// Parses packed bits for `len` pieces, refusing a wrong length or stray spare bits.
    pub fn from_bytes(len: u32, bytes: &[u8]) -> Result<Self, BitfieldError> {
        let expected = byte_len(len);
        if bytes.len() != expected {
            return Err(BitfieldError::Length {
                pieces: len,
                expected,
                got: bytes.len(),
            });
        }
        let spare = (expected * 8) as u64 - u64::from(len);
        if spare > 0 && bytes[expected - 1] & ((1u8 << spare) - 1) != 0 {
            return Err(BitfieldError::SpareBits);
        }
        let count = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Self {
            bytes: bytes.to_vec(),
            len,
            count,
        })
    }

    /// The packed bits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of pieces the set ranges over.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the set ranges over no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pieces present.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether every piece is present.
    pub fn is_complete(&self) -> bool {
        self.count == self.len
    }

    /// Whether piece `i` is present; false past the end.
    pub fn contains(&self, i: u32) -> bool {
        i < self.len && self.bytes[(i / 8) as usize] & mask(i) != 0
    }

    /// Adds piece `i`; returns whether it was new. Ignores indices past the end.
    pub fn insert(&mut self, i: u32) -> bool {
        if i >= self.len || self.contains(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] |= mask(i);
        self.count += 1;
        true
    }

    /// Removes piece `i`; returns whether it was present.
    pub fn remove(&mut self, i: u32) -> bool {
        if !self.contains(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] &= !mask(i);
        self.count -= 1;
        true
    }

    /// Indices of the pieces present, in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| self.contains(i))
    }
}

impl core::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Bitfield({}/{})", self.count, self.len)
    }
}

fn byte_len(len: u32) -> usize {
    len.div_ceil(8) as usize
}

fn mask(i: u32) -> u8 {
    0x80 >> (i % 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_and_wire_form() {
        let mut b = Bitfield::new(10);
        assert!(b.insert(0) && b.insert(9) && !b.insert(9) && !b.insert(10));
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(b.count(), 2);
        assert_eq!(b.iter().collect::<Vec<_>>(), [0, 9]);
        assert_eq!(Bitfield::from_bytes(10, b.as_bytes()), Ok(b.clone()));
        assert!(b.remove(0) && !b.remove(0));
        assert!(Bitfield::full(10).is_complete());
        assert!(Bitfield::new(0).is_complete());
    }

    #[test]
    fn malformed_bits_are_refused() {
        assert_eq!(
            Bitfield::from_bytes(10, &[0]),
            Err(BitfieldError::Length {
                pieces: 10,
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            Bitfield::from_bytes(10, &[0, 0x20]),
            Err(BitfieldError::SpareBits)
        );
        assert!(Bitfield::from_bytes(16, &[0xff, 0xff]).is_ok_and(|b| b.is_complete()));
    }
}
