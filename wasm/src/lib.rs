//! pollen-wasm: the browser peer of Pollen.
//!
//! [`driver`] holds the browser peer's swarms without the browser (artifacts in memory, links
//! as message streams) and builds and tests natively. The `browser` module (wasm32 only) binds
//! it to the page: a WebSocket to a signaling server, one RTCPeerConnection with an ordered,
//! reliable data channel per neighbour, timers from the browser, and the JavaScript API.

pub mod driver;
mod names;

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
pub use browser::{Peer, content_id, verify_throughput};
