//! Test support for Duck Duck Goose: the deterministic cluster simulator.
#![deny(missing_docs)]

pub mod sim;
