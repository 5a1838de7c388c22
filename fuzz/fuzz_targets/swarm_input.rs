//! The swarm state machine (a seed and a downloader) on arbitrary peer input: it never panics,
//! and only verified pieces reach storage.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pollen_core::{
    Bitfield, Instant, Manifest, PeerId, Ticket,
    swarm::{Action, LinkId, Stored, Swarm, SwarmConfig},
};

/// The artifact and its manifest, made once: hashing it on every run took three quarters of
/// the time.
fn artifact() -> &'static (Vec<u8>, Manifest) {
    static ARTIFACT: OnceLock<(Vec<u8>, Manifest)> = OnceLock::new();
    ARTIFACT.get_or_init(|| {
        let data: Vec<u8> = (0..(3 * 16 * 1024 + 100))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let manifest = Manifest::of(&data).expect("small");
        (data, manifest)
    })
}

fuzz_target!(|input: &[u8]| {
    let (data, manifest) = artifact();
    let pieces = manifest.layout().piece_count();
    let ticket = Ticket::new(manifest.id(), data.len() as u64).expect("valid");
    let cfg = SwarmConfig::new(PeerId::from_bytes([9; 32]));
    let swarms = [
        Swarm::with_manifest(
            cfg.clone(),
            manifest.clone(),
            Bitfield::full(pieces),
            Instant::ZERO,
            1,
        ),
        Swarm::new(cfg, &ticket, Instant::ZERO, 2),
    ];
    for mut swarm in swarms {
        let mut now = Instant::ZERO;
        // Each record: op, link, length, then `length` bytes.
        let mut rest = input;
        while let [op, link, len, tail @ ..] = rest {
            let take = usize::from(*len).min(tail.len());
            let (payload, tail) = tail.split_at(take);
            rest = tail;
            let link = LinkId(u64::from(link % 4));
            match op % 6 {
                0 => swarm.handle_connected(now, link),
                1 => swarm.handle_disconnected(now, link),
                2 => {
                    now = now + std::time::Duration::from_millis(u64::from(*len) * 100);
                    swarm.handle_timeout(now);
                }
                3 => {
                    let piece = u32::from(*len) % (pieces + 1);
                    let bytes = manifest.layout().piece_range(piece).map(|r| {
                        bytes::Bytes::copy_from_slice(&data[r.start as usize..r.end as usize])
                    });
                    swarm.handle_piece_read(now, piece, bytes);
                }
                4 => {
                    let stored = if *len % 2 == 0 {
                        Stored::Written
                    } else {
                        Stored::Failed
                    };
                    swarm.handle_piece_stored(now, u32::from(*len) % (pieces + 1), stored);
                }
                _ => swarm.handle_frame(now, link, bytes::Bytes::copy_from_slice(payload)),
            }
            while swarm.poll_transmit().is_some() {}
            while let Some(action) = swarm.poll_action() {
                match action {
                    Action::CheckPiece(check) => swarm.handle_piece_checked(now, check.run()),
                    Action::StorePiece { piece, data } => {
                        assert!(manifest.verify_piece(piece, &data.to_bytes()).is_ok());
                    }
                    _ => {}
                }
            }
            while swarm.poll_event().is_some() {}
        }
    }
});
