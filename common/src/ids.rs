//! Newtypes for node ids, terms, log indexes, heartbeat rounds and clock readings.
//!
//! Each is a plain `u64` underneath; the newtypes exist so that a term can
//! never be passed where a log index is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A node's id: a positive integer chosen by the operator (`--id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

/// A Raft term. The term of a goose answer is its fencing token.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// A position in the replicated log; index 0 is the empty prefix.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

/// A reading of a monotonic clock in nanoseconds (`CLOCK_BOOTTIME` in the
/// daemon, virtual time in the simulator). Only differences are meaningful.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

/// A leader's heartbeat round, counted from 1 in each term: every append
/// carries its round and every reply carries it back, so the leader knows
/// which send time a majority has acknowledged (the lease, design.md §2).
/// Round 0 is "none yet".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Round(pub u64);

/// The identity of a member's data directory: drawn at random once, when the
/// directory is created, and never changed. A member is its id plus this
/// identity (design.md §2, "one identity per member"), so a rebuilt data
/// directory, or another process started under the same id with another
/// directory, is told apart from the member. [`Identity::UNKNOWN`] (0) stands
/// for "not yet known" and matches any identity.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Identity(pub u64);

impl Identity {
    /// Not yet known: matches every identity.
    pub const UNKNOWN: Identity = Identity(0);

    /// A fresh identity from the operating system's random number generator
    /// (never [`Identity::UNKNOWN`]).
    pub fn generate() -> Result<Identity, crate::datagram::RandomnessError> {
        getrandom::u64()
            .map(|bits| Identity(bits.max(1)))
            .map_err(|error| crate::datagram::RandomnessError(error.to_string()))
    }

    /// Whether this identity is known.
    pub fn is_known(self) -> bool {
        self != Identity::UNKNOWN
    }

    /// Whether a message carrying `self` may come from (or be meant for) a
    /// member recorded as `recorded`: equal, or either side not yet known.
    pub fn matches(self, recorded: Identity) -> bool {
        !self.is_known() || !recorded.is_known() || self == recorded
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl NodeId {
    /// Whether this is a valid operator-chosen id (ids start at 1).
    pub fn is_valid(self) -> bool {
        self.0 > 0
    }
}

impl Term {
    /// The next term.
    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl LogIndex {
    /// The following index.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The preceding index, saturating at 0.
    #[must_use]
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl Round {
    /// The following round.
    #[must_use]
    pub fn next(self) -> Round {
        Round(self.0 + 1)
    }
}

impl Timestamp {
    /// Nanoseconds since the clock's origin.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// This instant plus `duration`, saturating at the end of time. (An
    /// inherent method rather than `ops::Add` so saturation is explicit.)
    #[must_use]
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, duration: Duration) -> Timestamp {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(nanos))
    }

    /// How long after `earlier` this instant is (zero if it is not later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp(10);
        assert_eq!(t.add(Duration::from_nanos(5)), Timestamp(15));
        assert_eq!(
            Timestamp(u64::MAX - 1).add(Duration::from_secs(1)),
            Timestamp(u64::MAX)
        );
        assert_eq!(Timestamp(3).since(Timestamp(10)), Duration::ZERO);
        assert_eq!(Timestamp(10).since(Timestamp(3)), Duration::from_nanos(7));
    }

    #[test]
    fn index_prev_saturates_at_zero() {
        assert_eq!(LogIndex(0).prev(), LogIndex(0));
        assert_eq!(LogIndex(4).prev(), LogIndex(3));
        assert_eq!(LogIndex(4).next(), LogIndex(5));
    }
}
