//! Frame decoding on arbitrary bytes: never panics, whatever decodes re-encodes to the same
//! frame and respects every limit, the header decoders agree with the whole frame's, and a
//! `FrameBuffer` fed the bytes in pieces hands out the frames `split_frame` finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pollen_core::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = wire::decode_block_header(data) {
        assert!((1..=wire::MAX_BLOCK_LEN as u32).contains(&h.block.len));
        assert!(h.header_len <= data.len());
    }
    if let Ok((channel, header_len)) = wire::decode_channel_header(data) {
        assert!(header_len <= data.len());
        if let Ok(wire::Message::Channel {
            channel: whole,
            frames,
        }) = wire::decode(data)
        {
            assert_eq!(whole, channel);
            assert_eq!(frames, &data[header_len..]);
        }
    }
    let mut rest = data;
    while let Ok(Some((msg, used))) = wire::decode_frame(rest) {
        assert!(msg.validate().is_ok());
        let mut again = Vec::new();
        wire::encode(&msg, &mut again).expect("a decoded message re-encodes");
        let (back, _) = wire::decode_frame(&again)
            .expect("re-encoded frame decodes")
            .expect("whole frame");
        assert_eq!(back, msg);
        rest = &rest[used..];
    }
    reassembly(data);
});

/// The frames of `data` as a stream, then as messages of a few bytes each (the first byte
/// says how many) through a `FrameBuffer`: the same frames, and the same error if any.
fn reassembly(data: &[u8]) {
    let mut whole = Vec::new();
    let mut rest = data;
    let whole_failed = loop {
        match wire::split_frame(rest) {
            Ok(Some((body, used))) => {
                whole.push(body.to_vec());
                rest = &rest[used..];
            }
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    let size = data.first().map_or(1, |b| usize::from(b % 16) + 1);
    let mut buffer = wire::FrameBuffer::new();
    let mut pieces = Vec::new();
    let mut failed = false;
    'messages: for message in data.chunks(size) {
        buffer.push(message);
        loop {
            match buffer.next_frame() {
                Ok(Some(body)) => pieces.push(body.to_vec()),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'messages;
                }
            }
        }
    }
    assert_eq!(pieces, whole);
    assert_eq!(failed, whole_failed);
    if !failed {
        assert_eq!(buffer.pending(), rest.len());
    }
}
