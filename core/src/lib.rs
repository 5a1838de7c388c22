//! pollen-core: the sans-IO heart of Pollen.
//!
//! This crate holds everything that must behave identically on a native seed node, in a browser
//! and in the simulator: content addressing and piece verification ([`ContentId`],
//! [`PieceLayout`], [`Manifest`]), tickets ([`Ticket`]) and the wire protocol ([`wire`]).
//!
//! It performs no IO, reads no clock and draws no randomness of its own: callers pass time and
//! random values in, and take bytes out. It is `#![no_std]` with `alloc`, and builds for
//! `wasm32-unknown-unknown`.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod bitfield;
mod content_id;
pub mod endpoint;
mod hex;
pub mod layout;
mod manifest;
pub mod membership;
mod peer_id;
mod piece_data;
pub mod policy;
pub mod signal;
pub mod swarm;
pub mod ticket;
mod time;
pub mod wire;

pub use bitfield::{Bitfield, BitfieldError};
pub use content_id::{ContentId, ParseIdError};
pub use layout::{LayoutError, PieceLayout};
pub use manifest::{
    BuildError, ChainingValue, Manifest, ManifestBuilder, ManifestError, PieceError,
    PieceExpectation,
};
pub use peer_id::PeerId;
pub use piece_data::PieceData;
pub use ticket::{Hint, Ticket, TicketError};
pub use time::Instant;
