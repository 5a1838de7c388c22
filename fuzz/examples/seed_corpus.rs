//! Writes the seed corpus of every fuzz target: a handful of valid inputs each, made by
//! encoding real messages and files (and, for `endpoint_input`, by recording a whole exchange
//! with a second endpoint). The output is deterministic, so running it again changes nothing
//! unless a format changed.
//!
//! ```sh
//! cargo +nightly run --manifest-path fuzz/Cargo.toml --example seed_corpus -- fuzz/corpus
//! ```
//!
//! It writes its own files over and leaves any other file in a target's directory (such as an
//! input that once crashed the target).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use bytes::Bytes;
use pollen_core::{
    Bitfield, ContentId, Hint, Instant, Manifest, PeerId, Ticket,
    endpoint::{Endpoint, EndpointConfig, Output},
    membership::{Holding, Membership, MembershipConfig, NodeState, Record, Status},
    signal::{self, ErrorCode, FromServer, Limits, Member, PeerKind, Signal, ToServer},
    swarm::{Action, Stored},
    wire::{self, BlockRef, Handshake, Message},
};
use pollen_fuzz::endpoint::{
    Artifacts, BLOCK_SIZE, Harness, fetch_swarm, op, peer, record, seed_swarm,
};

#[allow(dead_code)]
#[path = "../../seed-node/src/api_types.rs"]
mod api_types;
#[allow(dead_code)]
#[path = "../../seed-node/src/store/format.rs"]
mod format;

type Seeds = Vec<(&'static str, Vec<u8>)>;

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: seed_corpus DIR (fuzz/corpus)"),
    );
    let targets: [(&str, Seeds); 9] = [
        ("frame_decode", frames()),
        ("ticket_parse", tickets()),
        ("swarm_input", swarm_inputs()),
        ("membership_packet", membership_packets()),
        ("signal_decode", signals()),
        ("endpoint_input", endpoint_inputs()),
        ("store_format", store_files()),
        ("api_json", api_bodies()),
        ("config_file", config_files()),
    ];
    for (target, seeds) in targets {
        write(&out.join(target), &seeds);
    }
}

fn write(dir: &Path, seeds: &Seeds) {
    std::fs::create_dir_all(dir).expect("create the corpus directory");
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
    println!("{}: {} seeds", dir.display(), seeds.len());
}

fn frame(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode(msg, &mut out).expect("a valid message");
    out
}

fn frames_of(msgs: &[Message<'_>]) -> Vec<u8> {
    msgs.iter().flat_map(|m| frame(m)).collect()
}

fn id(n: u8) -> ContentId {
    ContentId::from_bytes([n; 32])
}

fn pid(n: u8) -> PeerId {
    PeerId::from_bytes([n; 32])
}

/// `frame_decode`: frames of every kind, a few to a file as a stream carries them.
fn frames() -> Seeds {
    let hs = |swarm| {
        Message::Handshake(Handshake {
            peer_id: pid(3),
            swarm,
            listen_port: Some(7711),
        })
    };
    let block = BlockRef {
        piece: 1,
        offset: 4096,
        len: 4096,
    };
    let inner = frames_of(&[hs(Some(id(5))), Message::Bitfield { bits: &[0xf0] }]);
    vec![
        ("handshake", frame(&hs(None))),
        (
            "swarm-opening",
            frames_of(&[
                hs(Some(id(5))),
                Message::Bitfield { bits: &[0xa0] },
                Message::HaveManifest,
                Message::Have { piece: 3 },
                Message::Interested,
                Message::Unchoke,
            ]),
        ),
        (
            "requests",
            frames_of(&[
                Message::Request(block),
                Message::Reject(block),
                Message::Cancel(block),
                Message::Block {
                    piece: 1,
                    offset: 0,
                    data: b"some block data",
                },
                Message::Choke,
                Message::NotInterested,
            ]),
        ),
        (
            "manifest",
            frames_of(&[
                Message::ManifestRequest { first: 0, count: 2 },
                Message::ManifestPart {
                    first: 0,
                    hashes: &[9; 64],
                },
                Message::ManifestRefused,
                Message::Gossip { payload: b"gossip" },
            ]),
        ),
        (
            "channels",
            frames_of(&[
                Message::OpenChannel {
                    channel: 1,
                    swarm: id(5),
                    answers: Some(0),
                },
                Message::Channel {
                    channel: 1,
                    frames: &inner,
                },
                Message::CloseChannel { channel: 1 },
                Message::RefuseChannel { channel: 2 },
            ]),
        ),
    ]
}

/// `ticket_parse`: tickets with and without names and hints, and a ticket link.
fn tickets() -> Seeds {
    let plain = Ticket::new(ContentId::of(b"artifact"), 1 << 30).expect("valid");
    let named = plain
        .clone()
        .with_name("release-1.2.tar.gz")
        .expect("valid name");
    let hinted = named
        .clone()
        .with_hint(Hint::Node("10.0.0.1:7711".parse().expect("an address")))
        .and_then(|t| t.with_hint(Hint::Signal("ws://10.0.0.1:7710/signal".into())))
        .expect("valid hints");
    let empty = Ticket::new(ContentId::of(b""), 0).expect("valid");
    vec![
        ("plain", plain.to_string().into_bytes()),
        ("named", named.to_string().into_bytes()),
        ("hinted", hinted.to_string().into_bytes()),
        ("empty-artifact", empty.to_string().into_bytes()),
        ("link", hinted.to_url("http://127.0.0.1:7710").into_bytes()),
    ]
}

/// `swarm_input`: records `op | link | len | payload` (see its harness) that link peers and
/// send the frames a seed or a fetcher would.
fn swarm_inputs() -> Seeds {
    // The artifact of the swarm_input harness.
    let data: Vec<u8> = (0..(3 * 16 * 1024 + 100))
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let manifest = Manifest::of(&data).expect("small");
    let pieces = manifest.layout().piece_count();
    let rec = |op: u8, link: u8, len: u8, payload: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(&[op, link, len]);
        out.extend_from_slice(payload);
    };
    let send = |link: u8, msg: &Message<'_>, out: &mut Vec<u8>| {
        let f = frame(msg);
        let body = &f[wire::LEN_PREFIX..];
        rec(5, link, body.len() as u8, body, out);
    };
    let hs = |n: u8| {
        Message::Handshake(Handshake {
            peer_id: pid(n),
            swarm: Some(manifest.id()),
            listen_port: Some(7711),
        })
    };
    let full = Bitfield::full(pieces);
    let none = Bitfield::new(pieces);

    // A seed's side of a link to the fetcher.
    let mut from_seed = Vec::new();
    rec(0, 0, 0, &[], &mut from_seed);
    send(0, &hs(3), &mut from_seed);
    send(
        0,
        &Message::Bitfield {
            bits: full.as_bytes(),
        },
        &mut from_seed,
    );
    send(0, &Message::HaveManifest, &mut from_seed);
    send(0, &Message::Unchoke, &mut from_seed);
    send(
        0,
        &Message::ManifestPart {
            first: 0,
            hashes: manifest.piece_cv_bytes(),
        },
        &mut from_seed,
    );
    rec(2, 0, 5, &[], &mut from_seed);
    send(0, &Message::Choke, &mut from_seed);
    rec(2, 0, 50, &[], &mut from_seed);

    // A fetcher's side of a link to the seed: it asks for blocks, the seed reads them.
    let mut from_fetcher = Vec::new();
    rec(0, 1, 0, &[], &mut from_fetcher);
    send(1, &hs(4), &mut from_fetcher);
    send(
        1,
        &Message::Bitfield {
            bits: none.as_bytes(),
        },
        &mut from_fetcher,
    );
    send(1, &Message::Interested, &mut from_fetcher);
    send(
        1,
        &Message::ManifestRequest {
            first: 0,
            count: pieces,
        },
        &mut from_fetcher,
    );
    for piece in 0..2 {
        send(
            1,
            &Message::Request(BlockRef {
                piece,
                offset: 0,
                len: 16 * 1024,
            }),
            &mut from_fetcher,
        );
        rec(3, 1, piece as u8, &[], &mut from_fetcher);
    }
    send(1, &Message::Have { piece: 0 }, &mut from_fetcher);
    send(
        1,
        &Message::Cancel(BlockRef {
            piece: 1,
            offset: 0,
            len: 16 * 1024,
        }),
        &mut from_fetcher,
    );
    rec(2, 1, 100, &[], &mut from_fetcher);
    rec(1, 1, 0, &[], &mut from_fetcher);

    // Two links, stored pieces and a disconnect.
    let mut two_links = Vec::new();
    rec(0, 0, 0, &[], &mut two_links);
    rec(0, 1, 0, &[], &mut two_links);
    send(0, &hs(3), &mut two_links);
    send(1, &hs(4), &mut two_links);
    send(
        0,
        &Message::Bitfield {
            bits: full.as_bytes(),
        },
        &mut two_links,
    );
    send(1, &Message::Have { piece: 2 }, &mut two_links);
    rec(4, 0, 2, &[], &mut two_links);
    rec(4, 0, 3, &[], &mut two_links);
    rec(1, 0, 0, &[], &mut two_links);
    rec(2, 1, 200, &[], &mut two_links);
    vec![
        ("from-seed", from_seed),
        ("from-fetcher", from_fetcher),
        ("two-links", two_links),
    ]
}

/// `membership_packet`: the packets three gossiping nodes send the harness's node (`[1; 32]`
/// at `n1`, which knows `[2; 32]` at `n2`).
fn membership_packets() -> Seeds {
    let now = Instant::ZERO;
    let state = |n: u8| NodeState {
        addrs: vec![format!("n{n}")],
        zone: if n.is_multiple_of(2) {
            "eu".into()
        } else {
            String::new()
        },
        upload_capacity: 1 << 20,
        load: 25,
        holdings: vec![Holding {
            id: id(n),
            complete: n == 2,
        }],
        ..NodeState::default()
    };
    let mut nodes: Vec<Membership> = (1..=3u8)
        .map(|n| {
            Membership::new(
                MembershipConfig::default(),
                pid(n),
                state(n),
                now,
                u64::from(n),
            )
            .expect("valid state")
        })
        .collect();
    nodes[0].insert_record(
        now,
        Record {
            id: pid(2),
            version: 1,
            status: Status::Alive,
            by: pid(2),
            state: Some(state(2)),
        },
    );
    nodes[1].join(now, vec!["n1".into()]);
    nodes[2].join(now, vec!["n2".into()]);
    let mut to_n1: Vec<Vec<u8>> = Vec::new();
    let mut t = now;
    for _ in 0..200 {
        t = t + Duration::from_millis(100);
        for n in &mut nodes {
            n.handle_timeout(t);
        }
        let mut packets = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            while let Some(p) = n.poll_transmit() {
                packets.push((format!("n{}", i + 1), p));
            }
            while n.poll_event().is_some() {}
        }
        for (from, p) in packets {
            let Some(to) = p
                .addr
                .strip_prefix('n')
                .and_then(|d| d.parse::<usize>().ok())
            else {
                continue;
            };
            if to == 1 && from == "n2" && !to_n1.contains(&p.payload) {
                to_n1.push(p.payload.clone());
            }
            if let Some(node) = nodes.get_mut(to - 1) {
                let _ = node.handle_packet(t, &from, &p.payload);
            }
        }
    }
    // A spread of them: the first ones (joins, pings, syncs) and some later.
    const NAMES: [&str; 8] = [
        "n2-0", "n2-1", "n2-2", "n2-3", "n2-4", "n2-5", "n2-6", "n2-7",
    ];
    let step = to_n1.len().div_ceil(NAMES.len()).max(1);
    to_n1
        .into_iter()
        .step_by(step)
        .zip(NAMES)
        .map(|(p, name)| (name, p))
        .collect()
}

/// `signal_decode`: every message to and from a signaling server.
fn signals() -> Seeds {
    let to = |m: ToServer| signal::encode_to_server(&m).expect("valid");
    let from = |m: FromServer| signal::encode_from_server(&m).expect("valid");
    let member = |n: u8, kind| Member { peer: pid(n), kind };
    vec![
        (
            "hello",
            to(ToServer::Hello {
                peer: pid(3),
                kind: PeerKind::Browser,
            }),
        ),
        ("join", to(ToServer::Join { swarm: id(5) })),
        ("leave", to(ToServer::Leave { swarm: id(5) })),
        (
            "relay-offer",
            to(ToServer::Relay {
                swarm: id(5),
                to: pid(4),
                signal: Signal::Offer("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".into()),
            }),
        ),
        (
            "relay-candidate",
            to(ToServer::Relay {
                swarm: id(5),
                to: pid(4),
                signal: Signal::Candidate {
                    candidate: "candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host".into(),
                    mid: Some("0".into()),
                    mline_index: Some(0),
                },
            }),
        ),
        ("ping", to(ToServer::Ping)),
        (
            "welcome",
            from(FromServer::Welcome {
                limits: Limits::default(),
            }),
        ),
        (
            "members",
            from(FromServer::Members {
                swarm: id(5),
                members: vec![member(3, PeerKind::Native), member(4, PeerKind::Browser)],
            }),
        ),
        (
            "relayed-answer",
            from(FromServer::Relay {
                swarm: id(5),
                from: pid(4),
                kind: PeerKind::Native,
                signal: Signal::Answer("v=0\r\n".into()),
            }),
        ),
        ("pong", from(FromServer::Pong)),
        (
            "error",
            from(FromServer::Error {
                code: ErrorCode::RateLimited,
                text: "slow down".into(),
            }),
        ),
    ]
}

/// `endpoint_input`: a whole exchange with a second endpoint recorded as the harness's
/// records (each artifact fetched by the one that lacks it), and a few short sequences.
fn endpoint_inputs() -> Seeds {
    let session = record_session();
    let mut other = Vec::new();
    // A second connection from another peer: it opens the seeded swarm's channel and sends
    // the swarm's handshake in it; then a duplicate connection from peer 2, and time passes.
    let a = Artifacts::get();
    let swarm_hs = frame(&Message::Handshake(Handshake {
        peer_id: pid(3),
        swarm: Some(a.seeded.id()),
        listen_port: None,
    }));
    let mut in_channel = vec![0];
    in_channel.extend_from_slice(&swarm_hs[wire::LEN_PREFIX..]);
    record(op::CONNECT, 0, &[], &mut other);
    record(op::HANDSHAKE, 1, &[2], &mut other);
    record(op::OPEN, 1, &[0, 0, 0, 0], &mut other);
    record(op::CHANNEL_FRAME, 1, &in_channel, &mut other);
    let interested = frame(&Message::Interested);
    let mut in_channel = vec![0];
    in_channel.extend_from_slice(&interested[wire::LEN_PREFIX..]);
    record(op::CHANNEL_FRAME, 1, &in_channel, &mut other);
    record(op::CONNECT, 1, &[], &mut other);
    record(op::HANDSHAKE, 2, &[1], &mut other);
    record(op::TICK, 0, &[20], &mut other);
    record(op::TICK, 0, &[200], &mut other);

    // Refusals and protocol errors: an unknown swarm, a second handshake, a close of a
    // channel never opened, a replaced swarm.
    let mut errors = Vec::new();
    record(op::OPEN, 0, &[0, 2, 0, 0], &mut errors);
    record(op::OPEN_SWARM, 0, &[0], &mut errors);
    record(op::REPLACE_SWARM, 0, &[0], &mut errors);
    record(op::OPEN_SWARM, 0, &[1], &mut errors);
    record(op::REPLACE_SWARM, 0, &[3], &mut errors);
    let close = frame(&Message::CloseChannel { channel: 7 });
    record(op::FRAME, 0, &close[wire::LEN_PREFIX..], &mut errors);
    record(op::SENT, 0, &[0], &mut errors);
    record(op::HANDSHAKE, 0, &[1], &mut errors);
    record(op::CLOSED, 0, &[], &mut errors);
    vec![
        ("session", session),
        ("second-connection", other),
        ("refusals", errors),
    ]
}

/// The bodies of the whole frames in `bytes`.
fn bodies(bytes: &[u8]) -> Vec<Bytes> {
    let mut rest = bytes;
    let mut out = Vec::new();
    while let Some((body, used)) = wire::split_frame(rest).expect("a frame") {
        out.push(Bytes::copy_from_slice(body));
        rest = &rest[used..];
    }
    assert!(rest.is_empty(), "whole frames");
    out
}

fn step(h: &mut Harness, rec: &mut Vec<u8>, op: u8, arg: u8, payload: &[u8]) {
    record(op, arg, payload, rec);
    h.step(op, arg, payload);
}

/// Drives the harness's endpoint against a second one (peer `[2; 32]`, which seeds the
/// harness's fetched artifact and fetches its seeded one) on connection 0 until both are
/// complete, recording what the second sends as records.
fn record_session() -> Vec<u8> {
    let a = Artifacts::get();
    let mut rec = Vec::new();
    let mut h = Harness::new();
    let now = h.now();
    let mut b = Endpoint::new(EndpointConfig {
        listen_port: Some(7712),
        report_sent: true,
        ..EndpointConfig::new(peer())
    });
    b.add_swarm(now, seed_swarm(peer(), &a.fetched, now, 11));
    b.add_swarm(now, fetch_swarm(peer(), &a.seeded, now, 12));
    let bconn = b.connect(now, false);
    // What B holds: seeded (fetching), fetched (all).
    let mut held = [
        Bitfield::new(a.seeded.pieces()),
        Bitfield::full(a.fetched.pieces()),
    ];
    // B's channel numbers and their swarms, from its opens.
    let mut channels: BTreeMap<u32, bool> = BTreeMap::new();
    // B's own handshake is not recorded: the harness gave the endpoint peer 2's.
    let mut skip_handshake = true;
    step(&mut h, &mut rec, op::OPEN_SWARM, 0, &[1]);
    b.open_swarm(now, bconn, a.seeded.id());
    for _ in 0..2000 {
        let now = h.now();
        let mut moved = false;
        for (_, bytes) in h.take_sent() {
            for body in bodies(&bytes) {
                b.handle_frame(now, bconn, body);
            }
            moved = true;
        }
        if moved {
            step(&mut h, &mut rec, op::SENT, 0, &[0]);
        }
        while let Some(out) = b.poll_output() {
            match out {
                Output::Transmit(_, segments) => {
                    let bytes: Vec<u8> = segments.concat();
                    b.handle_sent(bconn, bytes.len() as u64);
                    for body in bodies(&bytes) {
                        if std::mem::take(&mut skip_handshake) {
                            continue;
                        }
                        replay(&mut h, &mut rec, &body, &mut channels);
                        moved = true;
                    }
                }
                Output::Action(id, action) => {
                    let which = usize::from(id == a.fetched.id());
                    let art = a.pick(which == 1);
                    let s = b.swarm_mut(&id).expect("B's swarm");
                    match action {
                        Action::ReadPiece { piece } => {
                            let bytes = art
                                .piece(piece)
                                .filter(|_| held[which].contains(piece))
                                .map(Bytes::copy_from_slice);
                            s.handle_piece_read(now, piece, bytes);
                        }
                        Action::CheckPiece(check) => s.handle_piece_checked(now, check.run()),
                        Action::StorePiece { piece, .. } => {
                            held[which].insert(piece);
                            s.handle_piece_stored(now, piece, Stored::Written);
                        }
                        Action::StoreManifest(_) | Action::Disconnect { .. } => {}
                    }
                }
                Output::Close(..) | Output::Event(_) => {}
            }
        }
        if h.fetched_complete() && held[0].is_complete() && !moved {
            return rec;
        }
        if !moved {
            step(&mut h, &mut rec, op::TICK, 0, &[1]);
            b.handle_timeout(h.now());
        }
    }
    panic!("the recorded exchange did not complete");
}

/// Feeds one frame of the second endpoint to the harness as records.
fn replay(h: &mut Harness, rec: &mut Vec<u8>, body: &[u8], channels: &mut BTreeMap<u32, bool>) {
    let a = Artifacts::get();
    let small = |n: u32| u8::try_from(n).expect("a small number");
    match wire::decode(body).expect("B sends valid frames") {
        Message::Channel { channel, frames } => {
            let fetched = channels.get(&channel).copied().unwrap_or(false);
            for inner in bodies(frames) {
                match wire::decode(&inner).expect("valid inner frames") {
                    Message::Block {
                        piece,
                        offset,
                        data,
                        ..
                    } => {
                        let flags = u8::from(fetched);
                        let payload = [
                            small(channel),
                            flags,
                            small(piece),
                            small(offset / BLOCK_SIZE),
                        ];
                        let art = a.pick(fetched);
                        let p = art.piece(piece).expect("a piece");
                        assert_eq!(&p[offset as usize..offset as usize + data.len()], data);
                        step(h, rec, op::BLOCK, 0, &payload);
                    }
                    Message::ManifestPart { first, hashes } => {
                        let payload = [
                            small(channel),
                            u8::from(fetched),
                            small(first),
                            small(hashes.len() as u32 / 32),
                        ];
                        step(h, rec, op::MANIFEST_PART, 0, &payload);
                    }
                    _ => {
                        let mut payload = vec![small(channel)];
                        payload.extend_from_slice(&inner);
                        step(h, rec, op::CHANNEL_FRAME, 0, &payload);
                    }
                }
            }
        }
        msg => {
            if let Message::OpenChannel { channel, swarm, .. } = msg {
                channels.insert(channel, swarm == a.fetched.id());
            }
            step(h, rec, op::FRAME, 0, body);
        }
    }
}

/// `store_format`: the first byte is the harness's mode (bit 1: the id from the file; bit 2:
/// the piece count from the file), then a file.
fn store_files() -> Seeds {
    let a = Artifacts::get();
    let with = |mode: u8, file: Vec<u8>| [vec![mode], file].concat();
    let mut some = Bitfield::new(a.fetched.pieces());
    some.insert(0);
    some.insert(2);
    let empty = Manifest::of(&[]).expect("empty");
    vec![
        (
            "manifest-named",
            with(
                2,
                format::encode_manifest(&a.fetched.manifest, Some("data.bin")),
            ),
        ),
        (
            "manifest",
            with(2, format::encode_manifest(&a.seeded.manifest, None)),
        ),
        (
            "manifest-empty-artifact",
            with(2, format::encode_manifest(&empty, None)),
        ),
        (
            "have-some",
            with(6, format::encode_have(a.fetched.id(), &some)),
        ),
        (
            "have-all",
            with(
                6,
                format::encode_have(a.seeded.id(), &Bitfield::full(a.seeded.pieces())),
            ),
        ),
    ]
}

/// `api_json`: the requests the node reads and the replies the CLI reads, as they print.
fn api_bodies() -> Seeds {
    use api_types::*;
    let a = Artifacts::get();
    let ticket = a.fetched.ticket.to_string();
    let artifact = ArtifactStatus {
        id: a.fetched.id().to_string(),
        name: Some("data.bin".into()),
        size: a.fetched.data.len() as u64,
        pieces: 3,
        have_pieces: 1,
        have_bytes: 16384,
        complete: false,
        has_manifest: true,
        downloaded: 16384,
        uploaded: 0,
        download_rate: 1000,
        upload_rate: 0,
        peers: vec![PeerStatus {
            peer_id: "0202020202020202".into(),
            zone: Some("eu".into()),
            addr: "10.0.0.2:7711".into(),
            pieces: 3,
            downloaded: 16384,
            uploaded: 0,
        }],
        banned: vec!["0303030303030303".into()],
        error: None,
        corrupt_on_disk: 0,
        pinned: true,
        serving: true,
        ticket: ticket.clone(),
        sources: vec![SourceStatus {
            addr: "10.0.0.2:7711".into(),
            state: "linked".into(),
            failures: 1,
            error: Some("connection refused".into()),
        }],
    };
    let status = Status {
        peer_id: "0101010101010101".into(),
        listen: "0.0.0.0:7711".into(),
        advertise: "10.0.0.1:7711".into(),
        zone: "eu".into(),
        signal_url: Some("ws://10.0.0.1:7710/signal".into()),
        artifacts: vec![artifact.clone()],
        members: vec![MemberStatus {
            peer_id: "0202020202020202".into(),
            status: "alive".into(),
            zone: "eu".into(),
            addr: Some("10.0.0.2:7711".into()),
            upload_capacity: 1 << 20,
            load: 25,
            holds: vec![HoldingStatus {
                id: a.fetched.id().to_string(),
                complete: true,
            }],
        }],
        connections: 1,
    };
    vec![
        ("get", json(&GetRequest { ticket })),
        (
            "share",
            json(&ShareRequest {
                path: "/srv/data.bin".into(),
            }),
        ),
        (
            "export",
            json(&ExportRequest {
                id: a.fetched.id().to_string(),
                path: "/tmp/data.bin".into(),
                replace: false,
            }),
        ),
        (
            "export-default",
            format!(r#"{{"id":"{}","path":"/tmp/x"}}"#, a.seeded.id()).into_bytes(),
        ),
        (
            "share-reply",
            json(&ShareReply {
                id: a.seeded.id().to_string(),
                size: 17384,
                ticket: a.seeded.ticket.to_string(),
            }),
        ),
        (
            "remove-reply",
            json(&RemoveReply {
                id: a.seeded.id().to_string(),
                was_complete: true,
            }),
        ),
        (
            "error-reply",
            json(&ErrorReply {
                error: "invalid ticket: a ticket starts with 'pollen'".into(),
            }),
        ),
        ("status", json(&status)),
        (
            "artifact-reply",
            json(&ArtifactReply {
                generation: 42,
                artifact,
            }),
        ),
    ]
}

fn json<T: serde::Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(body).expect("a body prints")
}

/// `config_file`: settings files of every shape of value, and one `config check` refuses.
fn config_files() -> Seeds {
    vec![
        (
            "full",
            b"data = \"/var/lib/pollen\"\nlisten = \"0.0.0.0:7711\"\napi = \"127.0.0.1:7710\"\n\
advertise = \"10.0.0.1:7711\"\njoin = [\"10.0.0.2:7711\", \"10.0.0.3:7711\"]\nzone = \"eu-west\"\n\
peer = [\"10.0.0.4:7711\"]\nmax-upload-rate = \"20M\"\nmax-fetches = 8\nmax-storage = \"2Ti\"\n\
evict-after = \"7d\"\nseed-copies = 3\nseed-time = \"2h\"\nno-signal = false\n\
signal = [\"ws://10.0.0.1:7710/signal\"]\nice-server = [\"stun:stun.example:3478\"]\n\
log-format = \"json\"\nturn-credentials = \"user:secret\"\n"
                .to_vec(),
        ),
        (
            "minimal",
            b"data = \"/d\"\nzone = \"eu\"\njoin = [\"1.2.3.4:7711\"]\n".to_vec(),
        ),
        (
            "switches",
            b"# a comment\ndata = '/d'\nno-signal = true\nmax-fetches = 0x10\nmax-upload-rate = 1500000\n"
                .to_vec(),
        ),
        (
            "refused",
            b"data = \"/d\"\nmax-uplod-rate = \"1M\"\nno-signal = \"yes\"\n[table]\nkey = 1.5\n"
                .to_vec(),
        ),
    ]
}
