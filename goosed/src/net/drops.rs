//! Why the daemon dropped a received datagram: one counter per reason,
//! keyed by a stable name in status JSON.

use goose_common::datagram::OpenError;
use std::fmt;

/// Why a received datagram was dropped. Each has a stable snake_case name,
/// used as the key of the drop counters in status JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The MAC does not match: tampering, damage, or a key mismatch that the
    /// cluster id did not reveal.
    BadMac,
    /// The cluster id is another cluster's (another key).
    WrongCluster,
    /// An authenticated datagram addressed to another node id.
    WrongReceiver,
    /// A version byte this build does not speak.
    UnknownVersion,
    /// A (sender, boot id, counter) already accepted, or too old to tell.
    Replayed,
    /// Longer than [`goose_common::limits::DATAGRAM_BYTES_MAX`].
    Oversize,
    /// The payload did not decode (counted by the daemon, which decodes it).
    Undecodable,
    /// Shorter than a header and a MAC.
    Truncated,
    /// Dropped by a partition rule of the In chain.
    PartitionRule,
    /// An authenticated sender the daemon does not know (or id 0).
    UnknownSender,
    /// Two live processes interleave their boot ids under one node id (a
    /// copied data directory, or a second process under a member's id):
    /// every datagram of that sender is dropped while it lasts.
    DuplicateIdentity,
}

impl DropReason {
    /// Every reason, in a fixed order ([`DropReason::index`] is the position).
    pub const ALL: [DropReason; 11] = [
        DropReason::BadMac,
        DropReason::WrongCluster,
        DropReason::WrongReceiver,
        DropReason::UnknownVersion,
        DropReason::Replayed,
        DropReason::Oversize,
        DropReason::Undecodable,
        DropReason::Truncated,
        DropReason::PartitionRule,
        DropReason::UnknownSender,
        DropReason::DuplicateIdentity,
    ];

    /// How many reasons there are.
    pub const COUNT: usize = DropReason::ALL.len();

    /// The stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::BadMac => "bad_mac",
            DropReason::WrongCluster => "wrong_cluster",
            DropReason::WrongReceiver => "wrong_receiver",
            DropReason::UnknownVersion => "unknown_version",
            DropReason::Replayed => "replayed",
            DropReason::Oversize => "oversize",
            DropReason::Undecodable => "undecodable",
            DropReason::Truncated => "truncated",
            DropReason::PartitionRule => "partition_rule",
            DropReason::UnknownSender => "unknown_sender",
            DropReason::DuplicateIdentity => "duplicate_identity",
        }
    }

    /// The position of this reason in [`DropReason::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        match self {
            DropReason::BadMac => 0,
            DropReason::WrongCluster => 1,
            DropReason::WrongReceiver => 2,
            DropReason::UnknownVersion => 3,
            DropReason::Replayed => 4,
            DropReason::Oversize => 5,
            DropReason::Undecodable => 6,
            DropReason::Truncated => 7,
            DropReason::PartitionRule => 8,
            DropReason::UnknownSender => 9,
            DropReason::DuplicateIdentity => 10,
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<OpenError> for DropReason {
    fn from(error: OpenError) -> DropReason {
        match error {
            OpenError::Oversize => DropReason::Oversize,
            OpenError::Truncated => DropReason::Truncated,
            OpenError::UnknownVersion => DropReason::UnknownVersion,
            OpenError::WrongCluster => DropReason::WrongCluster,
            OpenError::BadMac => DropReason::BadMac,
            OpenError::WrongReceiver => DropReason::WrongReceiver,
            OpenError::UnknownSender => DropReason::UnknownSender,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn drop_reasons_have_distinct_stable_names_and_indexes() {
        let names: HashSet<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
        for (position, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), position);
            assert_eq!(reason.to_string(), reason.name());
        }
        assert_eq!(DropReason::BadMac.name(), "bad_mac");
        assert_eq!(DropReason::PartitionRule.name(), "partition_rule");
    }
}
