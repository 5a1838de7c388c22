//! Tickets: round trips, URL form, typed errors, and detection of corruption.

use std::net::SocketAddr;

use pollen_core::{
    ContentId, Hint, Ticket, TicketError,
    layout::MAX_ARTIFACT_SIZE,
    ticket::{MAX_HINTS, MAX_TICKET_LEN},
};
use proptest::prelude::*;

fn sample() -> Ticket {
    Ticket::new(ContentId::of(b"artifact"), 123_456_789)
        .and_then(|t| t.with_name("release-1.2.tar.gz"))
        .and_then(|t| t.with_hint(Hint::Node("127.0.0.1:7000".parse().expect("addr"))))
        .and_then(|t| t.with_hint(Hint::Node("[::1]:7001".parse().expect("addr"))))
        .and_then(|t| t.with_hint(Hint::Signal("ws://127.0.0.1:7002/signal".into())))
        .expect("valid ticket")
}

#[test]
fn round_trips_as_string_and_url() {
    let t = sample();
    let s = t.to_string();
    assert!(s.starts_with("pollen"), "{s}");
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{s}"
    );
    assert_eq!(s.parse::<Ticket>(), Ok(t.clone()));
    assert_eq!(format!("  {s}\n").parse::<Ticket>(), Ok(t.clone()));
    assert_eq!(s.to_uppercase().parse::<Ticket>(), Ok(t.clone()));
    let url = t.to_url("http://127.0.0.1:7070/");
    assert_eq!(url, format!("http://127.0.0.1:7070/#{s}"));
    assert_eq!(url.parse::<Ticket>(), Ok(t));
}

#[test]
fn a_minimal_ticket_is_short() {
    let t = Ticket::new(ContentId::of(b""), 0).expect("valid");
    let s = t.to_string();
    assert!(s.len() < 80, "{} characters: {s}", s.len());
    assert_eq!(s.parse::<Ticket>(), Ok(t));
}

#[test]
fn every_single_bit_flip_is_detected() {
    let s = sample().to_string();
    let original = sample();
    for i in 0..s.len() {
        for bit in 0..8 {
            let mut bytes = s.clone().into_bytes();
            bytes[i] ^= 1 << bit;
            let Ok(flipped) = String::from_utf8(bytes) else {
                continue; // not a string any more: cannot even be pasted
            };
            match flipped.parse::<Ticket>() {
                Err(_) => {}
                // Only a change of letter case may parse, and then to the very same ticket.
                Ok(t) => {
                    assert!(
                        flipped.eq_ignore_ascii_case(&s),
                        "byte {i} bit {bit}: {flipped}"
                    );
                    assert_eq!(t, original);
                }
            }
        }
    }
}

#[test]
fn malformed_input_gives_typed_errors() {
    let s = sample().to_string();
    assert_eq!("".parse::<Ticket>(), Err(TicketError::Prefix));
    assert_eq!("seed:abc".parse::<Ticket>(), Err(TicketError::Prefix));
    assert_eq!("pollen".parse::<Ticket>(), Err(TicketError::Checksum));
    assert_eq!("pollen!!".parse::<Ticket>(), Err(TicketError::Encoding(6)));
    assert_eq!(
        s[..s.len() - 3].parse::<Ticket>(),
        Err(TicketError::Checksum),
        "truncated"
    );
    assert_eq!(
        "http://host/no-fragment".parse::<Ticket>(),
        Err(TicketError::NoFragment)
    );
    let long = "x".repeat(MAX_TICKET_LEN + 1);
    assert_eq!(
        long.parse::<Ticket>(),
        Err(TicketError::TooLong(MAX_TICKET_LEN + 1))
    );
    // A multi-byte character where the prefix ends must not split a character.
    assert_eq!("pollé".parse::<Ticket>(), Err(TicketError::Prefix));
    assert!("pollenü".parse::<Ticket>().is_err());
}

#[test]
fn fields_are_validated_when_built() {
    let id = ContentId::of(b"x");
    assert!(matches!(
        Ticket::new(id, MAX_ARTIFACT_SIZE + 1),
        Err(TicketError::Size(_))
    ));
    let t = Ticket::new(id, 1).expect("valid");
    for bad in ["", ".", "..", "a/b", "a\\b", "a\nb", &"n".repeat(256)] {
        assert!(
            matches!(t.clone().with_name(bad), Err(TicketError::Name(_))),
            "{bad:?}"
        );
    }
    for bad in [
        "http://x",
        "ws://",
        "ws:///path",
        "wss://a b",
        "ws://a#b",
        &format!("ws://{}", "h".repeat(251)),
    ] {
        assert!(
            matches!(
                t.clone().with_hint(Hint::Signal(bad.into())),
                Err(TicketError::SignalUrl(_))
            ),
            "{bad:?}"
        );
    }
    let mut full = t;
    for port in 0..MAX_HINTS as u16 {
        full = full
            .with_hint(Hint::Node(SocketAddr::from(([127, 0, 0, 1], port))))
            .expect("within the limit");
    }
    assert_eq!(
        full.clone()
            .with_hint(Hint::Node(SocketAddr::from(([127, 0, 0, 1], 99)))),
        Err(TicketError::TooManyHints)
    );
    assert_eq!(full.to_string().parse::<Ticket>(), Ok(full));
}

fn hint() -> impl Strategy<Value = Hint> {
    prop_oneof![
        any::<SocketAddr>().prop_map(|a| match a {
            // Flow info and scope ids are not carried: tickets name reachable addresses.
            SocketAddr::V6(v6) => Hint::Node(SocketAddr::new((*v6.ip()).into(), v6.port())),
            v4 => Hint::Node(v4),
        }),
        "wss?://[a-z0-9.-]{1,40}(:[0-9]{1,5})?(/[a-z0-9/_-]{0,40})?".prop_map(Hint::Signal),
    ]
}

proptest! {
    #[test]
    fn any_valid_ticket_round_trips(
        id in any::<[u8; 32]>(),
        size in 0..=MAX_ARTIFACT_SIZE,
        name in proptest::option::of("[^/\\\\\\p{Cc}]{1,60}"),
        hints in proptest::collection::vec(hint(), 0..=MAX_HINTS),
    ) {
        let mut t = Ticket::new(ContentId::from_bytes(id), size).expect("size within limit");
        if let Some(name) = name.as_deref().filter(|n| *n != "." && *n != "..") {
            t = t.with_name(name).expect("valid name");
        }
        for h in hints {
            t = t.with_hint(h).expect("valid hint");
        }
        prop_assert_eq!(t.to_string().parse::<Ticket>(), Ok(t.clone()));
        prop_assert_eq!(t.to_url("https://pollen.example").parse::<Ticket>(), Ok(t));
    }

    #[test]
    fn parsing_arbitrary_strings_never_panics(s in "\\PC{0,300}") {
        let _ = s.parse::<Ticket>();
        let _ = format!("pollen{s}").parse::<Ticket>();
    }
}
