//! Signaling messages from arbitrary bytes: the decoders never panic, and whatever decodes
//! encodes and decodes back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pollen_core::signal;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = signal::decode_to_server(data) {
        let bytes = signal::encode_to_server(&msg).expect("a decoded message encodes");
        assert_eq!(signal::decode_to_server(&bytes), Ok(msg));
    }
    if let Ok(msg) = signal::decode_from_server(data) {
        let bytes = signal::encode_from_server(&msg).expect("a decoded message encodes");
        assert_eq!(signal::decode_from_server(&bytes), Ok(msg));
    }
});
