//! Property tests of the membership packet codec and of `Membership` on hostile input: valid
//! packets round-trip, and no bytes make the decoder or the state machine panic.

use std::time::Duration;

use pollen_core::{
    ContentId, Instant, PeerId,
    membership::{
        Holding, MAX_ADDR_LEN, MAX_ADDRS, MAX_HOLDINGS, MAX_ZONE_LEN, Membership, MembershipConfig,
        NodeState, Record, Role, Status,
        packet::{self, Body, Digest, Header, MAGIC, Packet, VERSION},
    },
};
use proptest::prelude::*;

/// Mostly a few ids (so records collide, and some are about the node under test), sometimes any.
fn peer_id() -> impl Strategy<Value = PeerId> {
    prop_oneof![
        3 => (0u8..6).prop_map(|b| PeerId::from_bytes([b; 32])),
        1 => any::<[u8; 32]>().prop_map(PeerId::from_bytes),
    ]
}

fn version() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..8,
        1 => any::<u64>(),
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Alive),
        Just(Status::Suspect),
        Just(Status::Dead),
        Just(Status::Left),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(b'a'..=b'z', 0..=max)
            .prop_map(|b| String::from_utf8(b).expect("ascii")),
        // Multi-byte characters, still within `max` bytes.
        proptest::collection::vec(any::<char>(), 0..=max / 4).prop_map(String::from_iter),
    ]
}

fn node_state() -> impl Strategy<Value = NodeState> {
    (
        proptest::collection::vec(text(MAX_ADDR_LEN), 0..=MAX_ADDRS),
        text(MAX_ZONE_LEN),
        prop_oneof![Just(Role::Seed), Just(Role::Browser)],
        any::<u64>(),
        0u8..=100,
        proptest::collection::vec(
            (0u8..4, any::<bool>()).prop_map(|(b, complete)| Holding {
                id: ContentId::from_bytes([b; 32]),
                complete,
            }),
            0..=MAX_HOLDINGS,
        ),
    )
        .prop_map(
            |(addrs, zone, role, upload_capacity, load, holdings)| NodeState {
                addrs,
                zone,
                role,
                upload_capacity,
                load,
                holdings,
            },
        )
}

/// A record that passes `Record::check`: present records carry a state, others none.
fn record() -> impl Strategy<Value = Record> {
    (peer_id(), version(), status(), peer_id(), node_state()).prop_map(
        |(id, version, status, by, state)| Record {
            id,
            version,
            status,
            by,
            state: status.is_present().then_some(state),
        },
    )
}

fn body() -> impl Strategy<Value = Body> {
    let digest = (peer_id(), version(), status()).prop_map(|(id, version, status)| Digest {
        id,
        version,
        status,
    });
    prop_oneof![
        Just(Body::Join),
        Just(Body::Welcome),
        any::<u32>().prop_map(|seq| Body::Ping { seq }),
        any::<u32>().prop_map(|seq| Body::Ack { seq }),
        (any::<u32>(), peer_id(), text(MAX_ADDR_LEN))
            .prop_map(|(seq, target, addr)| Body::PingReq { seq, target, addr }),
        Just(Body::Gossip),
        (
            peer_id(),
            proptest::option::of(peer_id()),
            proptest::collection::vec(digest, 0..16)
        )
            .prop_map(|(start, end, digest)| Body::SyncRequest {
                start,
                end,
                digest,
                full: false,
            }),
        proptest::collection::vec(peer_id(), 0..16).prop_map(|wants| Body::SyncReply { wants }),
        Just(Body::SyncPush),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    (peer_id(), body()).prop_map(|(sender, body)| Header { sender, body })
}

fn encode(header: &Header, records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    packet::start(header, &mut out);
    let encoded: Vec<Vec<u8>> = records.iter().map(packet::encode_record).collect();
    packet::push_records(encoded.iter().map(Vec::as_slice), &mut out);
    out
}

/// Raw bytes: anything, or anything after a valid magic and version.
fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
    let tail = proptest::collection::vec(any::<u8>(), 0..512);
    prop_oneof![
        tail.clone(),
        tail.prop_map(|t| {
            let mut out = MAGIC.to_vec();
            out.push(VERSION);
            out.extend(t);
            out
        }),
    ]
}

/// What the node under test is fed.
#[derive(Debug, Clone)]
enum Input {
    /// Arbitrary bytes.
    Raw(Vec<u8>),
    /// A well-formed packet with arbitrary contents.
    Packet(Header, Vec<Record>),
    /// A well-formed packet with one byte flipped.
    Flipped(Header, Vec<Record>, usize, u8),
    /// Time passes by this many milliseconds, then timers run.
    Wait(u16),
}

fn input() -> impl Strategy<Value = Input> {
    let records = || proptest::collection::vec(record(), 0..6);
    prop_oneof![
        1 => raw_bytes().prop_map(Input::Raw),
        4 => (header(), records()).prop_map(|(h, r)| Input::Packet(h, r)),
        1 => (header(), records(), any::<usize>(), 1u8..=255)
            .prop_map(|(h, r, at, x)| Input::Flipped(h, r, at, x)),
        2 => any::<u16>().prop_map(Input::Wait),
    ]
}

/// The node under test: id `[1; 32]`, knowing `[2; 32]` and `[3; 32]`.
fn node() -> Membership {
    let state = |n: u8| NodeState {
        addrs: vec![format!("n{n}")],
        ..NodeState::default()
    };
    let mut m = Membership::new(
        MembershipConfig::default(),
        PeerId::from_bytes([1; 32]),
        state(1),
        Instant::ZERO,
        7,
    )
    .expect("valid");
    for n in [2u8, 3] {
        m.insert_record(
            Instant::ZERO,
            Record {
                id: PeerId::from_bytes([n; 32]),
                version: 1,
                status: Status::Alive,
                by: PeerId::from_bytes([n; 32]),
                state: Some(state(n)),
            },
        );
    }
    m
}

/// Drains the node, checking what it says is consistent.
fn drain(m: &mut Membership) -> Result<(), TestCaseError> {
    while let Some(t) = m.poll_transmit() {
        let p = packet::decode(&t.payload);
        prop_assert!(
            p.is_ok(),
            "the node sent a packet it cannot decode: {:?}",
            p
        );
        prop_assert!(t.payload.len() <= MembershipConfig::default().max_packet);
    }
    while m.poll_event().is_some() {}
    let present = m.members().filter(|i| i.status.is_present()).count();
    prop_assert_eq!(m.present_count(), present);
    prop_assert!(m.members().all(|i| i.id != m.local_id()), "lists itself");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in raw_bytes()) {
        if let Ok(p) = packet::decode(&bytes) {
            // Whatever decodes is within bounds and re-encodes to an equal packet.
            prop_assert!(p.records.iter().all(Record::check));
            let again = encode(&p.header, &p.records);
            prop_assert_eq!(packet::decode(&again), Ok(p));
        }
    }

    #[test]
    fn valid_packets_round_trip(header in header(), records in proptest::collection::vec(record(), 0..8)) {
        let bytes = encode(&header, &records);
        let expected = Packet { header, records };
        prop_assert_eq!(packet::decode(&bytes), Ok(expected));
        // Every strict prefix is refused.
        for cut in 0..bytes.len() {
            prop_assert!(packet::decode(&bytes[..cut]).is_err(), "prefix of {} bytes decoded", cut);
        }
    }

    #[test]
    fn a_record_encodes_to_what_its_length_says(record in record()) {
        let encoded = packet::encode_record(&record);
        let bytes = encode(&Header { sender: record.id, body: Body::Gossip }, std::slice::from_ref(&record));
        let decoded = packet::decode(&bytes).expect("valid");
        prop_assert_eq!(decoded.records, vec![record]);
        prop_assert!(bytes.ends_with(&encoded));
    }

    #[test]
    fn membership_survives_any_input(inputs in proptest::collection::vec(input(), 1..24)) {
        let mut m = node();
        let mut now = Instant::ZERO;
        let mut version = m.version();
        for input in inputs {
            let bytes = match input {
                Input::Wait(ms) => {
                    now = now + Duration::from_millis(u64::from(ms));
                    m.handle_timeout(now);
                    drain(&mut m)?;
                    continue;
                }
                Input::Raw(bytes) => bytes,
                Input::Packet(h, r) => encode(&h, &r),
                Input::Flipped(h, r, at, x) => {
                    let mut bytes = encode(&h, &r);
                    let i = at % bytes.len();
                    bytes[i] ^= x;
                    bytes
                }
            };
            let well_formed = packet::decode(&bytes).is_ok();
            let result = m.handle_packet(now, "n2", &bytes);
            prop_assert_eq!(result.is_ok(), well_formed);
            drain(&mut m)?;
            prop_assert!(m.version() >= version, "our version went back");
            version = m.version();
        }
    }
}
