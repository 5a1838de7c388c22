//! Harnesses shared by the fuzz targets and the seed corpus generator
//! (`examples/seed_corpus.rs`), so that what the generator records replays exactly.

pub mod endpoint;
