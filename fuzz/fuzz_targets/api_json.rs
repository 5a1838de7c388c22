//! The JSON bodies of the node's HTTP API (`seed-node/src/api_types.rs`, compiled here as is)
//! on arbitrary bytes: the requests the node reads (as axum's `Json` extractor hands them to
//! its handlers, which then parse the ticket or the content id) and the replies the CLI reads.
//! Decoding never panics, and whatever decodes prints to JSON that decodes and prints the
//! same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pollen_core::{ContentId, Ticket};
use serde::{Serialize, de::DeserializeOwned};

#[allow(dead_code)]
#[path = "../../seed-node/src/api_types.rs"]
mod api_types;

use api_types::*;

fn decode<T: Serialize + DeserializeOwned>(data: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    let json = serde_json::to_vec(&value).expect("a decoded body prints");
    let back: T = serde_json::from_slice(&json).expect("a printed body decodes");
    assert_eq!(serde_json::to_vec(&back).expect("prints"), json);
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    if let Some(req) = decode::<GetRequest>(data)
        && let Ok(ticket) = req.ticket.parse::<Ticket>()
    {
        assert_eq!(ticket.to_string().parse::<Ticket>(), Ok(ticket));
    }
    if let Some(req) = decode::<ShareRequest>(data) {
        let _ = std::path::Path::new(&req.path).is_absolute();
    }
    if let Some(req) = decode::<ExportRequest>(data)
        && let Ok(id) = req.id.parse::<ContentId>()
    {
        assert_eq!(id.to_string().parse::<ContentId>(), Ok(id));
    }
    decode::<ShareReply>(data);
    decode::<GetReply>(data);
    decode::<RemoveReply>(data);
    decode::<ErrorReply>(data);
    decode::<Status>(data);
    decode::<ArtifactReply>(data);
});
