//! The goosed daemon as a library: the sans-IO Raft core and its drivers.
#![deny(missing_docs)]

pub mod control;
pub mod raft;
