//! The sans-IO Raft core with goose leases.
//!
//! Everything enters through [`Node::step`] and leaves through one [`Ready`]
//! value. The core never reads a clock (time is an argument), never touches
//! the network or the disk, and draws randomness only from the seeded
//! generator it was built with, so the simulator in `tests/` drives exactly
//! the code the daemon runs, and a seed replays a run exactly.
//!
//! A driver loop looks like this:
//!
//! ```text
//! let mut node = Node::new(config, storage.load()?, seed, clock.now())?;
//! loop {
//!     let input = wait_for(datagram | control request | node's next_deadline);
//!     let ready = node.step(clock.now(), input);
//!     storage.persist(&ready.persist)?;   // durable before anything is sent
//!     for message in ready.messages { transport.send(message) }
//!     for event in ready.events { hooks_and_waiters.deliver(event) }
//!     // sleep until ready.next_deadline at the latest
//! }
//! ```
//!
//! "Am I the goose?" is [`Node::goose`], answered from a fresh clock read
//! at the moment of asking (design.md §2).

mod election;
pub(crate) mod eligibility;
mod lease;
mod log;
mod membership;
mod node;
mod quorum;
mod replication;
mod types;

pub use node::{Node, PeerFaults, RaftRole};
pub use types::{
    Config, ConfigError, Event, GooseAnswer, HandoffReason, Input, MembershipChange, Persist,
    PersistedState, ProposalId, Ready, RejectReason, PRIORITY_DEFAULT,
};

#[cfg(test)]
mod tests;
