//! Membership packets on arbitrary bytes: the decoder never panics and whatever it accepts
//! is within bounds and re-encodes to an equal packet; a fresh `Membership` that is fed the
//! bytes never panics and only ever sends packets it could decode itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pollen_core::{
    Instant, PeerId,
    membership::{
        Membership, MembershipConfig, NodeState, Record, Status,
        packet::{self, Header},
    },
};

fn node(n: u8) -> Membership {
    let state = |n: u8| NodeState {
        addrs: vec![format!("n{n}")],
        ..NodeState::default()
    };
    let mut m = Membership::new(
        MembershipConfig::default(),
        PeerId::from_bytes([n; 32]),
        state(n),
        Instant::ZERO,
        u64::from(n),
    )
    .expect("valid state");
    // One member, so probes, syncs and gossip have someone to go to.
    m.insert_record(
        Instant::ZERO,
        Record {
            id: PeerId::from_bytes([n + 1; 32]),
            version: 1,
            status: Status::Alive,
            by: PeerId::from_bytes([n + 1; 32]),
            state: Some(state(n + 1)),
        },
    );
    m
}

fuzz_target!(|data: &[u8]| {
    let decoded = packet::decode(data);
    if let Ok(p) = &decoded {
        assert!(p.records.iter().all(Record::check));
        let mut again = Vec::new();
        packet::start(
            &Header {
                sender: p.header.sender,
                body: p.header.body.clone(),
            },
            &mut again,
        );
        let records: Vec<Vec<u8>> = p.records.iter().map(packet::encode_record).collect();
        packet::push_records(records.iter().map(Vec::as_slice), &mut again);
        assert_eq!(packet::decode(&again).as_ref(), Ok(p));
    }
    // Node [1; 32] knowing [2; 32]: the small ids fuzzed packets are likeliest to name.
    let mut m = node(1);
    let result = m.handle_packet(Instant::ZERO, "n2", data);
    assert_eq!(result.is_ok(), decoded.is_ok());
    let later = Instant::ZERO + std::time::Duration::from_secs(30);
    m.handle_timeout(later);
    while let Some(t) = m.poll_transmit() {
        assert!(
            packet::decode(&t.payload).is_ok(),
            "sent an undecodable packet"
        );
    }
    while m.poll_event().is_some() {}
    assert_eq!(
        m.present_count(),
        m.members().filter(|i| i.status.is_present()).count()
    );
});
