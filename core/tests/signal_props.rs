//! Property tests of the signaling codec: valid messages round-trip, and no bytes make the
//! decoders panic or return a message outside the limits.

use pollen_core::{
    ContentId, PeerId,
    signal::{
        self, ErrorCode, FromServer, Limits, MAX_CANDIDATE, MAX_MESSAGE, MAX_SDP, Member, PeerKind,
        Signal, ToServer,
    },
};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = PeerKind> {
    prop_oneof![Just(PeerKind::Native), Just(PeerKind::Browser)]
}

fn signal_msg() -> impl Strategy<Value = Signal> {
    prop_oneof![
        ".{0,200}".prop_map(Signal::Offer),
        ".{0,200}".prop_map(Signal::Answer),
        (
            ".{0,100}",
            proptest::option::of(".{0,8}"),
            any::<Option<u16>>()
        )
            .prop_map(|(candidate, mid, mline_index)| Signal::Candidate {
                candidate,
                mid,
                mline_index
            }),
    ]
}

fn to_server() -> impl Strategy<Value = ToServer> {
    let id = any::<[u8; 32]>();
    prop_oneof![
        (id, kind()).prop_map(|(b, kind)| ToServer::Hello {
            peer: PeerId::from_bytes(b),
            kind
        }),
        id.prop_map(|b| ToServer::Join {
            swarm: ContentId::from_bytes(b)
        }),
        id.prop_map(|b| ToServer::Leave {
            swarm: ContentId::from_bytes(b)
        }),
        (id, id, signal_msg()).prop_map(|(s, p, signal)| ToServer::Relay {
            swarm: ContentId::from_bytes(s),
            to: PeerId::from_bytes(p),
            signal
        }),
        Just(ToServer::Ping),
    ]
}

fn from_server() -> impl Strategy<Value = FromServer> {
    let id = any::<[u8; 32]>();
    prop_oneof![
        Just(FromServer::Welcome {
            limits: Limits::default()
        }),
        (id, proptest::collection::vec((id, kind()), 0..40)).prop_map(|(s, m)| {
            FromServer::Members {
                swarm: ContentId::from_bytes(s),
                members: m
                    .into_iter()
                    .map(|(p, kind)| Member {
                        peer: PeerId::from_bytes(p),
                        kind,
                    })
                    .collect(),
            }
        }),
        (id, id, kind(), signal_msg()).prop_map(|(s, p, kind, signal)| FromServer::Relay {
            swarm: ContentId::from_bytes(s),
            from: PeerId::from_bytes(p),
            kind,
            signal
        }),
        Just(FromServer::Pong),
        ".{0,100}".prop_map(|text| FromServer::Error {
            code: ErrorCode::PeerBusy,
            text
        }),
    ]
}

fn within_limits(signal: &Signal) -> bool {
    match signal {
        Signal::Offer(s) | Signal::Answer(s) => s.len() <= MAX_SDP,
        Signal::Candidate { candidate, mid, .. } => {
            candidate.len() <= MAX_CANDIDATE
                && mid.as_ref().is_none_or(|m| m.len() <= MAX_CANDIDATE)
        }
    }
}

proptest! {
    #[test]
    fn messages_round_trip(to in to_server(), from in from_server()) {
        let bytes = signal::encode_to_server(&to).expect("encodes");
        prop_assert!(bytes.len() <= MAX_MESSAGE);
        prop_assert_eq!(signal::decode_to_server(&bytes), Ok(to));
        let bytes = signal::encode_from_server(&from).expect("encodes");
        prop_assert_eq!(signal::decode_from_server(&bytes), Ok(from));
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_escape_the_limits(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        versioned in any::<bool>(),
    ) {
        let mut bytes = bytes;
        if versioned {
            bytes.insert(0, signal::SIGNAL_VERSION);
        }
        if let Ok(ToServer::Relay { signal, .. }) = signal::decode_to_server(&bytes) {
            prop_assert!(within_limits(&signal));
        }
        if let Ok(FromServer::Members { members, .. }) = signal::decode_from_server(&bytes) {
            prop_assert!(members.len() <= signal::MAX_MEMBERS);
        }
    }

    #[test]
    fn truncated_messages_are_refused(to in to_server(), cut in any::<prop::sample::Index>()) {
        let bytes = signal::encode_to_server(&to).expect("encodes");
        let cut = cut.index(bytes.len());
        prop_assert!(signal::decode_to_server(&bytes[..cut]).is_err());
    }
}
