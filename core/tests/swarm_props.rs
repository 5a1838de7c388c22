//! Whatever peers send, in any order, the swarm neither panics nor breaks its invariants.

use pollen_core::{
    Bitfield, ContentId, Instant, Manifest, PeerId, Ticket,
    swarm::{Action, LinkId, Stored, Swarm, SwarmConfig},
    wire::{self, BlockRef, Handshake, Message},
};
use proptest::prelude::*;

const PIECE: usize = 16 * 1024;

fn artifact() -> Vec<u8> {
    (0..(3 * PIECE + 100))
        .map(|i| (i * 31 % 251) as u8)
        .collect()
}

/// One input a peer (or time) can give the swarm.
#[derive(Debug, Clone)]
enum Input {
    Connect(u8),
    Dial(u8),
    Disconnect(u8),
    Frame(u8, Frame),
    Garbage(u8, Vec<u8>),
    Tick(u16),
    PieceRead(u8, bool),
    PieceStored(u8, bool),
}

/// A message with fields drawn near the interesting ranges.
#[derive(Debug, Clone)]
enum Frame {
    Handshake { peer: u8, ours: bool },
    ManifestRequest(u32, u32),
    ManifestPart(u32, Vec<u8>),
    Bitfield(Vec<u8>),
    Have(u32),
    Interested,
    NotInterested,
    Choke,
    Unchoke,
    Request(u32, u32, u32),
    Block(u32, u32, Vec<u8>),
    Reject(u32, u32, u32),
    Cancel(u32, u32, u32),
    HaveManifest,
    ManifestRefused,
}

fn small() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..6, Just(u32::MAX), any::<u32>()]
}

fn offset() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(PIECE as u32 / 2),
        Just(PIECE as u32),
        any::<u32>()
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (0u8..4, any::<bool>()).prop_map(|(peer, ours)| Frame::Handshake { peer, ours }),
        (small(), small()).prop_map(|(f, c)| Frame::ManifestRequest(f, c)),
        (small(), proptest::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(f, h)| Frame::ManifestPart(f, h)),
        proptest::collection::vec(any::<u8>(), 0..3).prop_map(Frame::Bitfield),
        small().prop_map(Frame::Have),
        Just(Frame::Interested),
        Just(Frame::NotInterested),
        Just(Frame::Choke),
        Just(Frame::Unchoke),
        (small(), offset(), offset()).prop_map(|(p, o, l)| Frame::Request(p, o, l)),
        (
            small(),
            offset(),
            proptest::collection::vec(any::<u8>(), 1..300)
        )
            .prop_map(|(p, o, d)| Frame::Block(p, o, d)),
        (small(), offset(), offset()).prop_map(|(p, o, l)| Frame::Reject(p, o, l)),
        (small(), offset(), offset()).prop_map(|(p, o, l)| Frame::Cancel(p, o, l)),
        Just(Frame::HaveManifest),
        Just(Frame::ManifestRefused),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        1 => (0u8..4).prop_map(Input::Connect),
        1 => (0u8..4).prop_map(Input::Dial),
        1 => (0u8..4).prop_map(Input::Disconnect),
        6 => (0u8..4, frame()).prop_map(|(l, f)| Input::Frame(l, f)),
        1 => (0u8..4, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(l, g)| Input::Garbage(l, g)),
        1 => any::<u16>().prop_map(Input::Tick),
        1 => (0u8..5, any::<bool>()).prop_map(|(p, ok)| Input::PieceRead(p, ok)),
        1 => (0u8..5, any::<bool>()).prop_map(|(p, ok)| Input::PieceStored(p, ok)),
    ]
}

fn encode(frame: &Frame, id: ContentId, me: PeerId) -> Vec<u8> {
    let block = |piece, offset, len| BlockRef { piece, offset, len };
    let msg = match frame {
        Frame::Handshake { peer, ours } => Message::Handshake(Handshake {
            peer_id: if *ours {
                me
            } else {
                PeerId::from_bytes([*peer; 32])
            },
            swarm: Some(id),
            listen_port: None,
        }),
        Frame::ManifestRequest(first, count) => Message::ManifestRequest {
            first: *first,
            count: *count,
        },
        Frame::ManifestPart(first, hashes) => Message::ManifestPart {
            first: *first,
            hashes,
        },
        Frame::Bitfield(bits) => Message::Bitfield { bits },
        Frame::Have(piece) => Message::Have { piece: *piece },
        Frame::Interested => Message::Interested,
        Frame::NotInterested => Message::NotInterested,
        Frame::Choke => Message::Choke,
        Frame::Unchoke => Message::Unchoke,
        Frame::Request(p, o, l) => Message::Request(block(*p, *o, *l)),
        Frame::Block(piece, offset, data) => Message::Block {
            piece: *piece,
            offset: *offset,
            data,
        },
        Frame::Reject(p, o, l) => Message::Reject(block(*p, *o, *l)),
        Frame::Cancel(p, o, l) => Message::Cancel(block(*p, *o, *l)),
        Frame::HaveManifest => Message::HaveManifest,
        Frame::ManifestRefused => Message::ManifestRefused,
    };
    let mut out = Vec::new();
    // Messages outside the wire's limits cannot be sent; send nothing for them.
    if wire::encode(&msg, &mut out).is_err() {
        return Vec::new();
    }
    out[wire::LEN_PREFIX..].to_vec()
}

/// Runs the inputs through a swarm, draining its outputs as a driver would.
fn run(mut swarm: Swarm, inputs: &[Input], manifest: &Manifest, data: &[u8]) {
    let id = manifest.id();
    let me = swarm.peer_id();
    let mut now = Instant::ZERO;
    for input in inputs {
        match input {
            Input::Connect(l) => swarm.handle_connected(now, LinkId(u64::from(*l))),
            Input::Dial(l) => swarm.handle_dialed(now, LinkId(u64::from(*l))),
            Input::Disconnect(l) => swarm.handle_disconnected(now, LinkId(u64::from(*l))),
            Input::Frame(l, f) => {
                let body = encode(f, id, me);
                if !body.is_empty() {
                    swarm.handle_frame(now, LinkId(u64::from(*l)), body.into());
                }
            }
            Input::Garbage(l, g) => {
                swarm.handle_frame(now, LinkId(u64::from(*l)), g.clone().into())
            }
            Input::Tick(ms) => {
                now = now + std::time::Duration::from_millis(u64::from(*ms) * 10);
                swarm.handle_timeout(now);
                // Whatever was due is done: a timer in the past would spin the driver.
                assert!(
                    swarm.poll_timeout().is_none_or(|at| at > now),
                    "a timeout at or before {now:?} after handling it"
                );
            }
            Input::PieceRead(p, ok) => {
                let piece = u32::from(*p);
                let bytes = manifest
                    .layout()
                    .piece_range(piece)
                    .filter(|_| *ok)
                    .map(|r| {
                        bytes::Bytes::copy_from_slice(&data[r.start as usize..r.end as usize])
                    });
                swarm.handle_piece_read(now, piece, bytes);
            }
            Input::PieceStored(p, ok) => {
                let stored = if *ok { Stored::Written } else { Stored::Failed };
                swarm.handle_piece_stored(now, u32::from(*p), stored);
            }
        }
        while swarm.poll_transmit().is_some() {}
        while let Some(action) = swarm.poll_action() {
            if let Action::StorePiece { piece, data: bytes } = action {
                // The invariant that matters: only verified bytes ever reach storage.
                assert_eq!(
                    manifest.verify_piece(piece, &bytes.to_bytes()),
                    Ok(()),
                    "stored an unverified piece"
                );
            }
        }
        while swarm.poll_event().is_some() {}
        let _ = swarm.poll_timeout();
        let stats = swarm.stats();
        assert!(stats.have <= stats.pieces);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_seed_survives_any_peer_input(inputs in proptest::collection::vec(input(), 0..80)) {
        let data = artifact();
        let manifest = Manifest::of(&data).expect("small");
        let have = Bitfield::full(manifest.layout().piece_count());
        let swarm = Swarm::with_manifest(SwarmConfig::new(PeerId::from_bytes([9; 32])), manifest.clone(), have, Instant::ZERO, 1);
        run(swarm, &inputs, &manifest, &data);
    }

    #[test]
    fn a_downloader_survives_any_peer_input(inputs in proptest::collection::vec(input(), 0..80)) {
        let data = artifact();
        let manifest = Manifest::of(&data).expect("small");
        let ticket = Ticket::new(manifest.id(), data.len() as u64).expect("valid");
        let swarm = Swarm::new(SwarmConfig::new(PeerId::from_bytes([9; 32])), &ticket, Instant::ZERO, 2);
        run(swarm, &inputs, &manifest, &data);
    }
}
