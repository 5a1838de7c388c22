//! Ticket parsing on arbitrary strings: never panics, and whatever parses prints back to a
//! string that parses to the same ticket.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pollen_core::Ticket;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for candidate in [s.to_string(), format!("pollen{s}")] {
        if let Ok(ticket) = candidate.parse::<Ticket>() {
            assert_eq!(ticket.to_string().parse::<Ticket>(), Ok(ticket));
        }
    }
});
