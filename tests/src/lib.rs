//! Test support for Duck Duck Goose: the deterministic cluster simulator and
//! the real-process cluster harness.
#![deny(missing_docs)]

pub mod bench;
pub mod cluster;
pub mod golden;
pub mod jobs;
pub mod sim;
