//! The one quorum rule (etcd-io/raft `quorum/majority.go`,
//! `CommittedIndex`): the highest value that a majority of a membership's
//! voters has reached. The commit index (each voter's match index) and the
//! lease start (each voter's latest acknowledged heartbeat round) are both
//! this question. Learners are never counted. There are no joint
//! memberships: membership changes add or remove one server at a time,
//! so the majorities of two consecutive memberships always overlap.

use goose_common::{Membership, NodeId};

/// The highest value that a majority of `membership`'s voters has reached,
/// where `reached(voter)` is how far that voter has got; `None` if the
/// membership has no voter.
pub(crate) fn majority_reached<T: Ord + Copy>(
    membership: &Membership,
    reached: impl FnMut(NodeId) -> T,
) -> Option<T> {
    let mut values: Vec<T> = membership.voters().map(reached).collect();
    if values.is_empty() {
        return None;
    }
    // Sorted highest first, the majority-th value is one that at least a
    // majority has reached, and no higher value has a majority.
    values.sort_unstable_by(|a, b| b.cmp(a));
    Some(values[membership.majority() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::{Member, MemberRole};

    /// A membership of `voters` and `learners` (ids).
    fn membership(voters: &[u64], learners: &[u64]) -> Membership {
        let addr = |id: u64| format!("127.0.0.1:{}", 7000 + id).parse().unwrap();
        let mut membership =
            Membership::with_voters(voters.iter().map(|&id| (NodeId(id), addr(id))));
        for &id in learners {
            membership.members.push(Member {
                id: NodeId(id),
                addr: addr(id),
                role: MemberRole::Learner,
                identity: goose_common::Identity::UNKNOWN,
            });
        }
        membership.members.sort_by_key(|member| member.id);
        membership
    }

    /// The table of etcd's `quorum/testdata/majority_commit.txt`, for this
    /// rule: (voters, learners, what each node has reached, expected).
    #[test]
    fn the_value_a_majority_reached() {
        #[allow(clippy::type_complexity)]
        let table: &[(&[u64], &[u64], &[(u64, u64)], Option<u64>)] = &[
            // No voters: no majority, whatever learners reached.
            (&[], &[], &[], None),
            (&[], &[4], &[(4, 9)], None),
            // One voter: its own value.
            (&[1], &[], &[(1, 5)], Some(5)),
            (&[1], &[], &[], Some(0)),
            // Two voters: both are needed (the lower value).
            (&[1, 2], &[], &[(1, 5), (2, 3)], Some(3)),
            // Three: the middle value.
            (&[1, 2, 3], &[], &[(1, 5), (2, 3), (3, 9)], Some(5)),
            (&[1, 2, 3], &[], &[(1, 5)], Some(0)),
            // Four (even): three are needed, the second lowest.
            (
                &[1, 2, 3, 4],
                &[],
                &[(1, 8), (2, 6), (3, 4), (4, 2)],
                Some(4),
            ),
            // Five (odd): three are needed.
            (
                &[1, 2, 3, 4, 5],
                &[],
                &[(1, 9), (2, 9), (3, 1), (4, 1), (5, 2)],
                Some(2),
            ),
            // Learners never count, however far they got.
            (&[1, 2, 3], &[4, 5], &[(1, 7), (4, 9), (5, 9)], Some(0)),
            (&[1, 2, 3], &[4], &[(1, 7), (2, 7), (4, 9)], Some(7)),
            // Equal values.
            (&[1, 2, 3], &[], &[(1, 4), (2, 4), (3, 4)], Some(4)),
        ];
        // A joining member (a learner about to be promoted) does not count
        // either until its promotion is in the membership.
        let mut joining = membership(&[1, 2, 3], &[4]);
        joining.members[3].role = MemberRole::Joining;
        let reached = |id: NodeId| if id.0 == 1 || id.0 == 4 { 9 } else { 0 };
        assert_eq!(majority_reached(&joining, reached), Some(0));
        for (voters, learners, reached, expected) in table {
            let membership = membership(voters, learners);
            let value = |id: NodeId| {
                reached
                    .iter()
                    .find(|(node, _)| *node == id.0)
                    .map_or(0, |&(_, value)| value)
            };
            assert_eq!(
                majority_reached(&membership, value),
                *expected,
                "voters {voters:?}, learners {learners:?}, reached {reached:?}"
            );
        }
    }
}
