//! `pollen node --config` files (`seed-node/src/config.rs` and the flags it checks against,
//! `seed-node/src/cli.rs`, compiled here as is) on arbitrary text: parsing the TOML into
//! flags and checking them as `pollen config check` does never panics, and a file that checks
//! stands for flags that each name a known key.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../seed-node/src/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "../../seed-node/src/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    let flags = config::text_flags(path, text, |_| false);
    if let Ok(n) = config::check_text(path, text) {
        let flags = flags.expect("a file that checks has flags");
        assert_eq!(n, flags.len());
        assert!(flags.iter().all(|f| f.starts_with("--")));
    }
});
