//! The quorum lease of design.md §2: which heartbeat round a majority of
//! voters has acknowledged, and when that round was sent.

use super::quorum::majority_reached;
use goose_common::limits::LEASE_ROUNDS_REMEMBERED;
use goose_common::{Membership, NodeId, Round, Timestamp};
use std::collections::{BTreeMap, VecDeque};

/// Send times of recent heartbeat rounds and each peer's latest acknowledged round.
#[derive(Clone, Debug, Default)]
pub(crate) struct LeaseTracker {
    /// `(round, sent_at)`, oldest first, at most `LEASE_ROUNDS_REMEMBERED`.
    rounds: VecDeque<(Round, Timestamp)>,
    /// The highest round each peer has acknowledged in this term.
    acked: BTreeMap<NodeId, Round>,
}

impl LeaseTracker {
    /// The current (latest started) round; 0 before the first.
    pub(crate) fn current_round(&self) -> Round {
        self.rounds.back().map_or(Round(0), |&(round, _)| round)
    }

    /// Starts a new round sent at `now` and returns its number.
    pub(crate) fn start_round(&mut self, now: Timestamp) -> Round {
        let round = self.current_round().next();
        if self.rounds.len() == LEASE_ROUNDS_REMEMBERED {
            self.rounds.pop_front();
        }
        self.rounds.push_back((round, now));
        round
    }

    /// Records that `peer` acknowledged `round` (a reply of this term).
    pub(crate) fn acknowledge(&mut self, peer: NodeId, round: Round) {
        if round > self.current_round() {
            return; // Not a round this leader sent; ignore rather than trust it.
        }
        let acked = self.acked.entry(peer).or_insert(Round(0));
        *acked = (*acked).max(round);
    }

    /// Forgets what `peer` acknowledged: it is another member now (added
    /// back, or another data directory under its id).
    pub(crate) fn forget(&mut self, peer: NodeId) {
        self.acked.remove(&peer);
    }

    /// When the latest round acknowledged by a majority of `membership`'s voters
    /// was sent (`self_id` counts as acknowledging every round it sent if it
    /// is a voter). `None` if no such round is remembered.
    pub(crate) fn quorum_sent_at(
        &self,
        membership: &Membership,
        self_id: NodeId,
    ) -> Option<Timestamp> {
        let quorum_round = majority_reached(membership, |id| {
            if id == self_id {
                self.current_round()
            } else {
                self.acked_round(id)
            }
        })?;
        self.rounds
            .iter()
            .find(|&&(round, _)| round == quorum_round)
            .map(|&(_, sent_at)| sent_at)
    }

    /// The latest round `peer` acknowledged.
    pub(crate) fn acked_round(&self, peer: NodeId) -> Round {
        self.acked.get(&peer).copied().unwrap_or(Round(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(ids: &[u64]) -> Membership {
        Membership::with_voters(ids.iter().map(|&i| {
            (
                NodeId(i),
                format!("127.0.0.1:{}", 7000 + i).parse().unwrap(),
            )
        }))
    }

    #[test]
    fn the_lease_starts_at_the_round_a_majority_acknowledged() {
        let mut lease = LeaseTracker::default();
        let five = membership(&[1, 2, 3, 4, 5]);
        lease.start_round(Timestamp(100));
        lease.start_round(Timestamp(200));
        assert_eq!(
            lease.quorum_sent_at(&five, NodeId(1)),
            None,
            "only the leader has acked"
        );
        lease.acknowledge(NodeId(2), Round(1));
        assert_eq!(lease.quorum_sent_at(&five, NodeId(1)), None);
        lease.acknowledge(NodeId(3), Round(2));
        assert_eq!(lease.quorum_sent_at(&five, NodeId(1)), Some(Timestamp(100)));
        lease.acknowledge(NodeId(2), Round(2));
        assert_eq!(lease.quorum_sent_at(&five, NodeId(1)), Some(Timestamp(200)));
        lease.acknowledge(NodeId(4), Round(9));
        assert_eq!(
            lease.acked_round(NodeId(4)),
            Round(0),
            "future rounds are not trusted"
        );
    }

    #[test]
    fn forgotten_rounds_give_no_lease() {
        let mut lease = LeaseTracker::default();
        let three = membership(&[1, 2, 3]);
        for i in 0..(LEASE_ROUNDS_REMEMBERED as u64 + 5) {
            lease.start_round(Timestamp(i));
        }
        lease.acknowledge(NodeId(2), Round(1));
        assert_eq!(lease.quorum_sent_at(&three, NodeId(1)), None);
    }

    #[test]
    fn a_single_voter_is_its_own_majority() {
        let mut lease = LeaseTracker::default();
        lease.start_round(Timestamp(7));
        assert_eq!(
            lease.quorum_sent_at(&membership(&[1]), NodeId(1)),
            Some(Timestamp(7))
        );
        assert_eq!(lease.quorum_sent_at(&membership(&[2]), NodeId(1)), None);
    }
}
