//! Shared types of Duck Duck Goose.
//!
//! This crate owns only what more than one binary (or the test harness)
//! must agree on: the id newtypes, the Raft messages that travel between
//! daemons and the bounded postcard encoding of them (the simulator builds
//! them too), the control protocol between goosectl and goosed, the
//! partition rules both parse, goose answers as goosectl judges them, the
//! cluster key goosectl makes and goosed reads with the datagram framing
//! the harness also speaks, and the limits of the system as named
//! constants checked at compile time. What only goosed uses (the peer
//! datagrams, the replay window, the drop reasons) lives in `goosed::net`.
#![deny(missing_docs)]

pub mod answer;
pub mod control;
pub mod datagram;
pub mod ids;
pub mod limits;
pub mod messages;
pub mod partition;
pub mod wire;

pub use ids::{Identity, LogIndex, NodeId, Round, Term, Timestamp};
pub use messages::{
    Append, AppendReply, Candidacy, Entry, EntryPayload, HardState, InstallSnapshot, Member,
    MemberRole, Membership, Message, MessageBody, PreVote, RequestVote, Snapshot, VoteReply,
};
/// A member's UDP address (a plain value type, re-exported so the sans-IO core
/// need not name `std::net`).
pub use std::net::SocketAddr;
