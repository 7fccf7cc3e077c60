//! Elections: PreVote, RequestVote, leader stickiness and TimeoutNow
//! (Raft §5.2, dissertation §9.6 and §3.10, design.md §2).

use super::node::{Campaign, Node, RaftRole};
use goose_common::{MessageBody, NodeId, PreVote, RequestVote, Term, Timestamp, VoteReply};

impl Node {
    /// A pre-vote is granted only when this node would also grant the real
    /// vote and has not heard from a leader recently. It never changes state.
    pub(crate) fn on_pre_vote(
        &mut self,
        now: Timestamp,
        from: NodeId,
        term: Term,
        request: PreVote,
    ) {
        let PreVote {
            last_log_index,
            last_log_term,
        } = request;
        let granted = term > self.term
            && self.may_vote()
            && !self.heard_from_leader_recently(now)
            && self.log.is_up_to_date(last_log_index, last_log_term);
        let reply_term = if granted { term } else { self.term };
        self.send_in_term(
            from,
            reply_term,
            MessageBody::PreVoteReply(VoteReply { granted }),
        );
    }

    /// Whether this node may grant votes and pre-votes: it is a member of
    /// a membership that may still be in force in its own log (design.md
    /// §2). A `--join` node (no membership) or one whose removal it knows
    /// is committed knows nothing it could vouch for and votes for nobody.
    /// A learner being promoted votes too (the candidate counting it has the
    /// promotion, which the learner may not have received yet: simulator
    /// seed 1024), and so does a node whose own removal is still uncommitted
    /// (the removal may be truncated away: seed 9107); refusing either would
    /// deadlock the election.
    fn may_vote(&self) -> bool {
        !self.id_taken() && self.in_live_memberships(|member| member.is_some())
    }

    pub(crate) fn on_pre_vote_reply(
        &mut self,
        now: Timestamp,
        from: NodeId,
        term: Term,
        reply: VoteReply,
    ) {
        let VoteReply { granted } = reply;
        if !granted && term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        if self.raft_role() != RaftRole::PreCandidate || term != self.term.next() {
            return;
        }
        self.votes.insert(from, granted);
        self.maybe_win_pre_vote(now);
    }

    pub(crate) fn maybe_win_pre_vote(&mut self, now: Timestamp) {
        if self.raft_role() == RaftRole::PreCandidate && self.has_majority_of_votes() {
            self.become_candidate(now, Campaign::Election);
        }
    }

    /// Counts granted votes of voters of the latest membership.
    fn has_majority_of_votes(&self) -> bool {
        let membership = self.membership();
        let granted = self
            .votes
            .iter()
            .filter(|&(&id, &granted)| granted && membership.is_voter(id))
            .count();
        granted >= membership.majority()
    }

    /// Raft's RequestVote handler with leader stickiness: a node that heard
    /// from a leader less than its lease guard ago ignores the request
    /// entirely, unless it is the campaign of a handoff. Only a member of its
    /// own latest membership grants a vote (see `may_vote`).
    pub(crate) fn on_request_vote(
        &mut self,
        now: Timestamp,
        from: NodeId,
        term: Term,
        request: RequestVote,
    ) {
        let RequestVote {
            last_log_index,
            last_log_term,
            handoff,
        } = request;
        if term > self.term {
            let leader_lease_active =
                self.is_leader() || (!handoff && self.heard_from_leader_recently(now));
            if leader_lease_active {
                return;
            }
            self.become_follower(now, term, None);
        }
        let can_vote =
            term == self.term && self.may_vote() && self.vote.is_none_or(|vote| vote == from);
        let granted = can_vote && self.log.is_up_to_date(last_log_index, last_log_term);
        if granted {
            self.vote = Some(from);
            self.reset_election_deadline(now);
        }
        self.send(from, MessageBody::RequestVoteReply(VoteReply { granted }));
    }

    pub(crate) fn on_vote_reply(
        &mut self,
        now: Timestamp,
        from: NodeId,
        term: Term,
        reply: VoteReply,
    ) {
        let VoteReply { granted } = reply;
        if term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        if self.raft_role() != RaftRole::Candidate || term != self.term {
            return;
        }
        self.votes.insert(from, granted);
        self.maybe_win_election(now);
    }

    pub(crate) fn maybe_win_election(&mut self, now: Timestamp) {
        if self.raft_role() == RaftRole::Candidate && self.has_majority_of_votes() {
            self.become_leader(now);
        }
    }

    /// The old leader has stopped answering goose and waited out its
    /// promises: campaign at once, and voters will not hold stickiness against it.
    pub(crate) fn on_timeout_now(&mut self, now: Timestamp, from: NodeId, term: Term) {
        if term != self.term || self.is_leader() || !self.may_lead() {
            return;
        }
        if self.leader.is_some_and(|leader| leader != from) {
            return; // Only the leader of this term may hand over.
        }
        self.become_candidate(now, Campaign::Transfer);
    }
}
