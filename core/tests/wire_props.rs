//! Property tests of the wire codec: round trips, framing, limits, and hostile input.

use pollen_core::{
    ContentId, PeerId,
    wire::{
        self, BlockRef, DecodeError, EncodeError, Handshake, Invalid, LEN_PREFIX, MAX_BLOCK_LEN,
        MAX_FRAME_LEN, Message, PROTOCOL_VERSION,
    },
};
use proptest::prelude::*;

/// An owned description of a message, from which a borrowed [`Message`] is made.
#[derive(Debug, Clone)]
enum Owned {
    Handshake(Handshake),
    ManifestRequest(u32, u32),
    ManifestPart(u32, Vec<u8>),
    Bitfield(Vec<u8>),
    Have(u32),
    Interested,
    NotInterested,
    Choke,
    Unchoke,
    Request(BlockRef),
    Block(u32, u32, Vec<u8>),
    Reject(BlockRef),
    Cancel(BlockRef),
    Gossip(Vec<u8>),
    HaveManifest,
    ManifestRefused,
}

impl Owned {
    fn message(&self) -> Message<'_> {
        match self {
            Owned::Handshake(h) => Message::Handshake(*h),
            Owned::ManifestRequest(first, count) => Message::ManifestRequest {
                first: *first,
                count: *count,
            },
            Owned::ManifestPart(first, hashes) => Message::ManifestPart {
                first: *first,
                hashes,
            },
            Owned::Bitfield(bits) => Message::Bitfield { bits },
            Owned::Have(piece) => Message::Have { piece: *piece },
            Owned::Interested => Message::Interested,
            Owned::NotInterested => Message::NotInterested,
            Owned::Choke => Message::Choke,
            Owned::Unchoke => Message::Unchoke,
            Owned::Request(r) => Message::Request(*r),
            Owned::Block(piece, offset, data) => Message::Block {
                piece: *piece,
                offset: *offset,
                data,
            },
            Owned::Reject(r) => Message::Reject(*r),
            Owned::Cancel(r) => Message::Cancel(*r),
            Owned::Gossip(payload) => Message::Gossip { payload },
            Owned::HaveManifest => Message::HaveManifest,
            Owned::ManifestRefused => Message::ManifestRefused,
        }
    }
}

fn block_ref() -> impl Strategy<Value = BlockRef> {
    (any::<u32>(), any::<u32>(), 1..=MAX_BLOCK_LEN as u32)
        .prop_map(|(piece, offset, len)| BlockRef { piece, offset, len })
}

fn handshake() -> impl Strategy<Value = Handshake> {
    (
        any::<[u8; 32]>(),
        proptest::option::of(any::<[u8; 32]>()),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(|(peer, swarm, listen_port)| Handshake {
            peer_id: PeerId::from_bytes(peer),
            swarm: swarm.map(ContentId::from_bytes),
            listen_port,
        })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        handshake().prop_map(Owned::Handshake),
        (any::<u32>(), 1..=4096u32).prop_map(|(f, c)| Owned::ManifestRequest(f, c)),
        (any::<u32>(), 1..=64usize, any::<u8>())
            .prop_map(|(f, n, b)| Owned::ManifestPart(f, vec![b; 32 * n])),
        bytes(512).prop_map(Owned::Bitfield),
        any::<u32>().prop_map(Owned::Have),
        Just(Owned::Interested),
        Just(Owned::NotInterested),
        Just(Owned::Choke),
        Just(Owned::Unchoke),
        block_ref().prop_map(Owned::Request),
        (
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 1..2048)
        )
            .prop_map(|(p, o, d)| Owned::Block(p, o, d)),
        block_ref().prop_map(Owned::Reject),
        block_ref().prop_map(Owned::Cancel),
        bytes(512).prop_map(Owned::Gossip),
        Just(Owned::HaveManifest),
        Just(Owned::ManifestRefused),
    ]
}

fn encoded(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode(msg, &mut out).expect("valid message");
    out
}

proptest! {
    #[test]
    fn decode_inverts_encode(owned in owned()) {
        let msg = owned.message();
        let frame = encoded(&msg);
        prop_assert!(frame.len() <= MAX_FRAME_LEN);
        let (decoded, used) = wire::decode_frame(&frame).expect("valid").expect("whole frame");
        prop_assert_eq!(used, frame.len());
        prop_assert_eq!(decoded, msg);
    }

    #[test]
    fn a_stream_of_frames_splits_back_into_its_messages(
        owned in proptest::collection::vec(owned(), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        for o in &owned {
            wire::encode(&o.message(), &mut stream).expect("valid");
        }
        // Any strict prefix of the first frame is "not yet", never an error.
        let first_len = encoded(&owned[0].message()).len();
        let partial = &stream[..cut.index(first_len)];
        prop_assert_eq!(wire::decode_frame(partial), Ok(None));
        let mut rest = &stream[..];
        for o in &owned {
            let (msg, used) = wire::decode_frame(rest).expect("valid").expect("whole frame");
            prop_assert_eq!(msg, o.message());
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn block_header_plus_data_is_the_encoded_block(
        piece in any::<u32>(), offset in any::<u32>(),
        data in proptest::collection::vec(any::<u8>(), 1..4096),
    ) {
        let mut framed = Vec::new();
        wire::encode_block_header(piece, offset, data.len(), &mut framed).expect("valid");
        framed.extend_from_slice(&data);
        prop_assert_eq!(framed, encoded(&Message::Block { piece, offset, data: &data }));
    }

    #[test]
    fn a_block_header_decodes_without_its_data(
        piece in any::<u32>(), offset in any::<u32>(), len in 1..=wire::MAX_BLOCK_LEN,
    ) {
        let mut header = Vec::new();
        wire::encode_block_header(piece, offset, len, &mut header).expect("valid");
        let body = &header[wire::LEN_PREFIX..];
        let decoded = wire::decode_block_header(body).expect("decodes");
        prop_assert_eq!(decoded.block, BlockRef { piece, offset, len: len as u32 });
        prop_assert_eq!(decoded.header_len, body.len());
        // Its data may follow or not: the header alone is enough.
        let mut whole = header.clone();
        whole.extend(std::iter::repeat_n(7u8, len));
        prop_assert_eq!(wire::decode_block_header(&whole[wire::LEN_PREFIX..]).ok(), Some(decoded));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(buf in bytes(600)) {
        let _ = wire::decode(&buf);
        let _ = wire::decode_frame(&buf);
        if let Ok(h) = wire::decode_block_header(&buf) {
            prop_assert!((1..=wire::MAX_BLOCK_LEN as u32).contains(&h.block.len));
            prop_assert!(h.header_len <= buf.len());
        }
    }

    #[test]
    fn decoding_corrupted_frames_never_panics(owned in owned(), flips in proptest::collection::vec(any::<(prop::sample::Index, u8)>(), 1..4)) {
        let mut frame = encoded(&owned.message());
        for (at, mask) in flips {
            let i = at.index(frame.len());
            frame[i] ^= mask;
        }
        if let Ok(Some((msg, _))) = wire::decode_frame(&frame) {
            // Whatever still decodes must respect every limit.
            prop_assert_eq!(msg.validate(), Ok(()));
        }
    }
}

#[test]
fn oversized_frames_are_refused_from_the_prefix_alone() {
    let body_len = (MAX_FRAME_LEN - LEN_PREFIX + 1) as u32;
    assert_eq!(
        wire::split_frame(&body_len.to_le_bytes()),
        Err(DecodeError::TooLarge(MAX_FRAME_LEN + 1))
    );
    assert_eq!(
        wire::split_frame(&u32::MAX.to_le_bytes()),
        Err(DecodeError::TooLarge(u32::MAX as usize + LEN_PREFIX))
    );
}

#[test]
fn messages_beyond_the_limits_are_not_encoded() {
    let big = vec![0u8; MAX_BLOCK_LEN + 1];
    let mut out = vec![9u8];
    let block = Message::Block {
        piece: 0,
        offset: 0,
        data: &big,
    };
    assert_eq!(
        wire::encode(&block, &mut out),
        Err(EncodeError::Invalid(Invalid::BlockLen(MAX_BLOCK_LEN + 1)))
    );
    assert_eq!(
        out,
        vec![9u8],
        "a refused message leaves the buffer as it was"
    );
    assert!(wire::encode_block_header(0, 0, 0, &mut out).is_err());
    let ragged = Message::ManifestPart {
        first: 0,
        hashes: &[0; 33],
    };
    assert_eq!(
        wire::encode(&ragged, &mut out),
        Err(EncodeError::Invalid(Invalid::RaggedHashes(33)))
    );
    // The largest legal block fits in a frame.
    let max = vec![1u8; MAX_BLOCK_LEN];
    wire::encode(
        &Message::Block {
            piece: u32::MAX,
            offset: u32::MAX,
            data: &max,
        },
        &mut out,
    )
    .expect("largest block fits");
}

#[test]
fn unknown_kinds_and_versions_are_reported() {
    let mut frame = encoded(&Message::Choke);
    frame[LEN_PREFIX + 1] = 200;
    let err = wire::decode_frame(&frame).expect_err("unknown kind");
    assert_eq!(err, DecodeError::UnknownKind(200));
    assert!(!err.is_fatal(), "an unknown kind is skipped, not fatal");
    // The frame can still be skipped by its length.
    assert_eq!(
        wire::split_frame(&frame).map(|f| f.map(|(_, n)| n)),
        Ok(Some(frame.len()))
    );

    let mut frame = encoded(&Message::Choke);
    frame[LEN_PREFIX] = PROTOCOL_VERSION + 1;
    let err = wire::decode_frame(&frame).expect_err("future version");
    assert_eq!(err, DecodeError::Version(PROTOCOL_VERSION + 1));
    assert!(err.is_fatal());
}

#[test]
fn trailing_bytes_and_truncation_are_typed_errors() {
    let frame = encoded(&Message::Have { piece: 300 });
    let body = &frame[LEN_PREFIX..];
    let mut longer = body.to_vec();
    longer.push(0);
    assert!(matches!(
        wire::decode(&longer),
        Err(DecodeError::Trailing(1, _))
    ));
    assert_eq!(
        wire::decode(&body[..body.len() - 1]),
        Err(DecodeError::Truncated)
    );
    assert_eq!(wire::decode(&[]), Err(DecodeError::Truncated));
}

#[test]
fn block_payloads_are_borrowed_not_copied() {
    let data = vec![7u8; 1000];
    let frame = encoded(&Message::Block {
        piece: 1,
        offset: 2,
        data: &data,
    });
    let (msg, _) = wire::decode_frame(&frame).expect("valid").expect("whole");
    let Message::Block { data: decoded, .. } = msg else {
        panic!("decoded {msg:?}");
    };
    let frame_range = frame.as_ptr_range();
    assert!(
        frame_range.contains(&decoded.as_ptr()),
        "payload points into the frame"
    );
}
