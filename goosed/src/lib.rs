//! The goosed daemon as a library: the sans-IO Raft core and its drivers.
#![deny(missing_docs)]

pub mod clock;
pub mod config;
pub mod control;
pub mod demo;
pub mod driver;
pub mod health;
pub mod hooks;
pub mod net;
pub mod raft;
pub mod storage;
