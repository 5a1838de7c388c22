//! Content ids and manifests agree with BLAKE3 at every size boundary, and catch corruption.

use pollen_core::{
    BuildError, ContentId, Manifest, ManifestBuilder, ManifestError, PieceError, PieceLayout,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sizes around every boundary the design cares about.
fn boundary_sizes() -> Vec<usize> {
    let mut sizes = vec![0, 1, 1023, 1024, 1025, 2048, 3 * MIB + 12345];
    for boundary in [16 * KIB, 32 * KIB, 3 * 16 * KIB, 64 * KIB, 16 * MIB] {
        sizes.extend([boundary - 1, boundary, boundary + 1]);
    }
    sizes
}

#[test]
fn content_id_is_plain_blake3_and_every_piece_verifies() {
    for (i, size) in boundary_sizes().into_iter().enumerate() {
        let data = pseudo_random(size, i as u64);
        let manifest = Manifest::of(&data).expect("size within limits");
        assert_eq!(
            manifest.id(),
            ContentId::from(blake3::hash(&data)),
            "size {size}"
        );
        let layout = manifest.layout();
        assert_eq!(layout.size(), size as u64);
        assert_eq!(manifest.piece_cvs().len(), layout.piece_count() as usize);
        for index in 0..layout.piece_count() {
            let range = layout.piece_range(index).expect("in range");
            let piece = &data[range.start as usize..range.end as usize];
            assert_eq!(
                manifest.verify_piece(index, piece),
                Ok(()),
                "size {size} piece {index}"
            );
        }
        let again =
            Manifest::from_untrusted(manifest.id(), size as u64, manifest.piece_cvs().to_vec());
        assert_eq!(again.as_ref(), Ok(&manifest), "size {size}");
    }
}

#[test]
fn builder_gives_the_same_manifest_for_any_chunking() {
    let data = pseudo_random(5 * 16 * KIB + 777, 7);
    let whole = Manifest::of(&data).expect("small");
    for chunk in [1, 7, 1000, 1024, 16 * KIB, 16 * KIB + 1, 65537] {
        let mut builder = ManifestBuilder::new(data.len() as u64).expect("small");
        for part in data.chunks(chunk) {
            builder.update(part).expect("within the declared size");
        }
        assert_eq!(builder.position(), data.len() as u64);
        assert_eq!(builder.finish().as_ref(), Ok(&whole), "chunk {chunk}");
    }
}

#[test]
fn builder_refuses_the_wrong_number_of_bytes() {
    let mut short = ManifestBuilder::new(100).expect("small");
    short.update(&[0; 99]).expect("fits");
    assert_eq!(
        short.finish().err(),
        Some(BuildError::TooShort {
            expected: 100,
            got: 99
        })
    );
    let mut long = ManifestBuilder::new(100).expect("small");
    long.update(&[0; 60]).expect("fits");
    assert_eq!(
        long.update(&[0; 41]),
        Err(BuildError::TooLong { expected: 100 })
    );
}

#[test]
fn pieces_of_the_wrong_shape_are_refused() {
    let data = pseudo_random(3 * 16 * KIB + 5, 3);
    let m = Manifest::of(&data).expect("small");
    assert_eq!(
        m.verify_piece(4, &[1]),
        Err(PieceError::OutOfRange { index: 4, count: 4 })
    );
    assert_eq!(
        m.verify_piece(3, &data[..4]),
        Err(PieceError::Length {
            index: 3,
            expected: 5,
            got: 4
        })
    );
    // The right bytes at the wrong index: the offset is part of every chaining value.
    assert_eq!(
        m.verify_piece(1, &data[..16 * KIB]),
        Err(PieceError::Mismatch { index: 1 })
    );
}

#[test]
fn every_single_bit_flip_of_a_piece_is_detected() {
    // One-piece artifact (verified as the root) and the short last piece of a multi-piece one.
    for (size, index) in [(700, 0u32), (2 * 16 * KIB + 300, 2)] {
        let data = pseudo_random(size, size as u64);
        let m = Manifest::of(&data).expect("small");
        let range = m.layout().piece_range(index).expect("in range");
        let mut piece = data[range.start as usize..range.end as usize].to_vec();
        for bit in 0..piece.len() * 8 {
            piece[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                m.verify_piece(index, &piece),
                Err(PieceError::Mismatch { index }),
                "size {size} bit {bit}"
            );
            piece[bit / 8] ^= 1 << (bit % 8);
        }
        assert_eq!(m.verify_piece(index, &piece), Ok(()));
    }
}

#[test]
fn every_single_bit_flip_of_a_manifest_entry_is_detected() {
    for size in [16 * KIB, 5 * 16 * KIB + 1] {
        let data = pseudo_random(size, 11);
        let m = Manifest::of(&data).expect("small");
        let mut cvs = m.piece_cvs().to_vec();
        for entry in 0..cvs.len() {
            for bit in 0..256 {
                cvs[entry][bit / 8] ^= 1 << (bit % 8);
                assert_eq!(
                    Manifest::from_untrusted(m.id(), size as u64, cvs.clone()).err(),
                    Some(ManifestError::RootMismatch),
                    "size {size} entry {entry} bit {bit}"
                );
                cvs[entry][bit / 8] ^= 1 << (bit % 8);
            }
        }
    }
}

#[test]
fn untrusted_manifests_of_the_wrong_shape_are_refused() {
    let data = pseudo_random(3 * 16 * KIB, 5);
    let m = Manifest::of(&data).expect("small");
    let size = data.len() as u64;
    assert_eq!(
        Manifest::from_untrusted(m.id(), size, m.piece_cvs()[..2].to_vec()).err(),
        Some(ManifestError::PieceCount {
            expected: 3,
            got: 2
        })
    );
    assert_eq!(
        Manifest::from_untrusted_bytes(m.id(), size, &m.piece_cv_bytes()[..95]).err(),
        Some(ManifestError::Ragged(95))
    );
    // The right hashes under a size with another piece count.
    assert_eq!(
        Manifest::from_untrusted(m.id(), size - 16 * KIB as u64, m.piece_cvs().to_vec()).err(),
        Some(ManifestError::PieceCount {
            expected: 2,
            got: 3
        })
    );
    // A size with the same tree shape merges to the same root (the hashes bind the shape, not
    // the exact length), but then no bytes satisfy the last piece: nothing wrong is accepted.
    let wrong =
        Manifest::from_untrusted(m.id(), size - 1, m.piece_cvs().to_vec()).expect("same shape");
    assert!(matches!(
        wrong.verify_piece(2, &data[2 * 16 * KIB..size as usize - 1]),
        Err(PieceError::Mismatch { index: 2 })
    ));
    assert!(matches!(
        wrong.verify_piece(2, &data[2 * 16 * KIB..]),
        Err(PieceError::Length { .. })
    ));
    let other = ContentId::of(b"other");
    assert_eq!(
        Manifest::from_untrusted(other, size, m.piece_cvs().to_vec()).err(),
        Some(ManifestError::RootMismatch)
    );
    // An empty artifact has exactly one valid id.
    assert!(Manifest::from_untrusted(ContentId::of(b""), 0, vec![]).is_ok());
    assert!(Manifest::from_untrusted(other, 0, vec![]).is_err());
}

#[test]
fn layout_of_a_multi_gib_artifact_is_about_a_thousand_pieces() {
    let layout = PieceLayout::for_size(3 * 1024 * MIB as u64 + 1).expect("within limits");
    assert_eq!(layout.piece_size(), 4 * MIB as u64);
    assert_eq!(layout.piece_count(), 769);
}
