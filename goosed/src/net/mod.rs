//! The network side of the daemon: the UDP transport with datagram
//! authentication ([`transport`]), the replay window ([`replay`]), why a
//! datagram is dropped ([`drops`]), what daemons say to each other
//! ([`peer`]), twin detection ([`twins`]) and the partition rules of drills
//! ([`rules`]).
//!
//! A received datagram goes through, in order (design.md §4): the size
//! check, the version, cluster id and MAC
//! ([`goose_common::datagram::open`]), the replay window, and the In chain
//! of the partition table; the driver then decodes the payload. A sent
//! payload goes through the Out chain and is sealed with this boot's next
//! counter. Every drop is counted by reason and never panics the daemon.

pub mod drops;
pub mod peer;
pub mod replay;
pub mod rules;
pub mod transport;
pub mod twins;

pub use drops::DropReason;
pub use replay::ReplayWindow;

pub use rules::{PartitionTable, TableError, Verdict};
pub use transport::{
    DropCounters, Received, SendError, SendOutcome, TrafficCounts, Transport, TransportError,
};
