//! The endpoint (`Endpoint::handle_frame` and every other driver input) after a connection's
//! handshake, on arbitrary records of frames and driver inputs: it never panics, sends only
//! frames that decode, stores only verified pieces and the true manifest, and leaves no timer
//! in the past. The harness is `src/endpoint.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| pollen_fuzz::endpoint::run(input));
