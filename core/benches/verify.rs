//! Piece verification throughput against raw `blake3::hash` on the same buffers, same run.
//!
//! `cargo bench -p pollen-core --bench verify` prints, per piece size, the best of several
//! rounds for both, and their ratio (verification throughput / raw hashing throughput; the goal
//! is >= 0.9). It also times building a manifest from a stream and checking an untrusted one.

use std::{hint::black_box, time::Instant};

use pollen_core::{Manifest, ManifestBuilder};
use pollen_tests::pseudo_random;

const MIB: usize = 1024 * 1024;
const ROUNDS: usize = 5;

fn best_of(mut f: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn gbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

fn main() {
    println!(
        "{:>10} {:>8} {:>9} {:>12} {:>12} {:>7}",
        "artifact", "piece", "pieces", "raw GB/s", "verify GB/s", "ratio"
    );
    for size in [16 * MIB, 256 * MIB, 1024 * MIB] {
        let data = pseudo_random(size, 1);
        let manifest = Manifest::of(&data).expect("within limits");
        let layout = *manifest.layout();
        let pieces: Vec<&[u8]> = data.chunks(layout.piece_size() as usize).collect();
        let raw = best_of(|| {
            for piece in &pieces {
                black_box(blake3::hash(black_box(piece)));
            }
        });
        let verify = best_of(|| {
            for (i, piece) in pieces.iter().enumerate() {
                manifest
                    .verify_piece(i as u32, black_box(piece))
                    .expect("pieces of the artifact verify");
            }
        });
        println!(
            "{:>7} MiB {:>4} KiB {:>9} {:>12.2} {:>12.2} {:>7.3}",
            size / MIB,
            layout.piece_size() / 1024,
            layout.piece_count(),
            gbps(size, raw),
            gbps(size, verify),
            raw / verify
        );
        if size == 1024 * MIB {
            let whole = best_of(|| {
                black_box(blake3::hash(black_box(&data)));
            });
            let build = best_of(|| {
                let mut b = ManifestBuilder::new(data.len() as u64).expect("within limits");
                for chunk in data.chunks(MIB) {
                    b.update(chunk).expect("declared size");
                }
                black_box(b.finish().expect("declared size"));
            });
            let check = best_of(|| {
                black_box(
                    Manifest::from_untrusted(
                        manifest.id(),
                        size as u64,
                        manifest.piece_cvs().to_vec(),
                    )
                    .expect("valid"),
                );
            });
            println!(
                "\nbuild manifest from 1 MiB chunks: {:.2} GB/s vs blake3::hash of the whole buffer {:.2} GB/s (ratio {:.3})",
                gbps(size, build),
                gbps(size, whole),
                whole / build
            );
            println!(
                "check an untrusted manifest of {} pieces: {:.3} ms",
                layout.piece_count(),
                check * 1e3
            );
        }
    }
}
