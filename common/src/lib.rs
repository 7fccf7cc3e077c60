//! Shared types of Duck Duck Goose.
//!
//! This crate owns everything that more than one binary (or the simulator)
//! must agree on: the id newtypes, the Raft messages that travel between
//! daemons, the bounded postcard encoding of those messages, the control
//! protocol between goosectl and goosed, and the limits of the system as
//! named constants checked at compile time.
#![deny(missing_docs)]

pub mod answer;
pub mod control;
pub mod datagram;
pub mod ids;
pub mod limits;
pub mod messages;
pub mod partition;
pub mod peer;
pub mod wire;

pub use ids::{Identity, LogIndex, NodeId, Round, Term, Timestamp};
pub use messages::{
    Append, AppendReply, Entry, EntryPayload, HardState, InstallSnapshot, Member, MemberRole,
    Membership, Message, MessageBody, PreVote, RequestVote, Snapshot, VoteReply,
};
/// A member's UDP address (a plain value type, re-exported so the sans-IO core
/// need not name `std::net`).
pub use std::net::SocketAddr;
