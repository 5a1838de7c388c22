//! pollen-sim: a deterministic discrete-event harness that runs the real pollen-core state
//! machines over simulated links.
//!
//! Today it is the in-memory network the swarm tests use ([`net::Net`]); the capacity-planning
//! simulator and its scenarios grow from it.

pub mod net;
