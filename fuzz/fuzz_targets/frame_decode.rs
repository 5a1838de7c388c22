//! Frame decoding on arbitrary bytes: never panics, and whatever decodes re-encodes to the
//! same frame and respects every limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pollen_core::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = wire::decode_block_header(data) {
        assert!((1..=wire::MAX_BLOCK_LEN as u32).contains(&h.block.len));
        assert!(h.header_len <= data.len());
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
});
