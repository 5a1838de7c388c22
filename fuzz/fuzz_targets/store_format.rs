//! The node's `manifest` and `have` files (`seed-node/src/store/format.rs`, compiled here as
//! is) on arbitrary bytes: the decoders never panic, and whatever decodes is within the
//! loader's bounds and encodes back to the very same file.
//!
//! The first byte says how to read the rest, the file: bit 0 fixes its checksum first (so the
//! fuzzer reaches the fields behind it), bit 1 takes the artifact id from the file itself
//! (else a fixed one), bit 2 takes the `have` file's piece count from the file itself (else
//! the first byte's top bits).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pollen_core::ContentId;

#[allow(dead_code)]
#[path = "../../seed-node/src/store/format.rs"]
mod format;

/// Bytes of the checksum at the end of both files.
const CHECKSUM_LEN: usize = 8;
/// Where the id starts in both files: magic and version before it.
const ID_AT: usize = 12;

fuzz_target!(|data: &[u8]| {
    let [mode, file @ ..] = data else {
        return;
    };
    let mut file = file.to_vec();
    if mode & 1 != 0 && file.len() >= CHECKSUM_LEN {
        let signed = file.len() - CHECKSUM_LEN;
        let sum = blake3::hash(&file[..signed]);
        file[signed..].copy_from_slice(&sum.as_bytes()[..CHECKSUM_LEN]);
    }
    let field = |at: usize| {
        file.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let id = match file.get(ID_AT..ID_AT + 32) {
        Some(b) if mode & 2 != 0 => ContentId::from_bytes(b.try_into().expect("32 bytes")),
        _ => ContentId::from_bytes([7; 32]),
    };
    if let Ok((manifest, name)) = format::decode_manifest(id, &file) {
        assert_eq!(manifest.id(), id);
        assert!(file.len() as u64 <= format::MAX_MANIFEST_LEN);
        assert_eq!(format::encode_manifest(&manifest, name.as_deref()), file);
    }
    let pieces = match field(ID_AT + 32) {
        Some(n) if mode & 4 != 0 => n,
        _ => u32::from(mode >> 3),
    };
    if let Ok(have) = format::decode_have(id, pieces, &file) {
        assert_eq!(have.len(), pieces);
        assert_eq!(file.len() as u64, format::have_len(pieces));
        assert_eq!(format::encode_have(id, &have), file);
    }
});
