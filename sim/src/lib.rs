//! pollen-sim: a deterministic discrete-event simulator that runs the real pollen-core state
//! machines over simulated links.
//!
//! [`net::Net`] is the network (the swarm tests use it directly); [`scenario`] reads the TOML
//! scenario files, [`run`] runs one at one peer count and measures it against the lower
//! bound, and [`chart`] draws the results.

pub mod chart;
pub mod fair;
pub mod gossip;
pub mod gossip_bench;
pub mod link_table;
pub mod net;
pub mod queue;
pub mod run;
pub mod scenario;
