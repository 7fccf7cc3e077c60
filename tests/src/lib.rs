//! Test support for Duck Duck Goose: the deterministic cluster simulator and
//! the real-process cluster harness.

pub mod cluster;
