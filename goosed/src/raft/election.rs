//! Elections: PreVote, RequestVote, leader stickiness and TimeoutNow
//! (Raft §5.2, dissertation §9.6 and §3.10, design.md §2).

use super::node::{Node, RaftRole};
use goose_common::{LogIndex, Message, MessageBody, NodeId, Term, Timestamp};

impl Node {
    /// Routes a received message to its handler.
    pub(crate) fn on_message(&mut self, now: Timestamp, message: Message) {
        if message.to != self.config.id || message.from == self.config.id {
            return; // Misaddressed: the transport should have dropped it.
        }
        // A member is its id plus its identity (design.md §2): a message from
        // another data directory under a member's id, or meant for another
        // incarnation of this one, is dropped and counted.
        let sender_known_as = self.identity_of(message.from);
        if !message.from_identity.matches(sender_known_as)
            || !message.to_identity.matches(self.identity)
        {
            self.peer_faults.wrong_identity += 1;
            return;
        }
        let Message {
            from,
            from_identity,
            term,
            body,
            ..
        } = message;
        match body {
            MessageBody::PreVote {
                last_log_index,
                last_log_term,
            } => {
                self.on_pre_vote(now, from, term, last_log_index, last_log_term);
            }
            MessageBody::PreVoteReply { granted } => {
                self.on_pre_vote_reply(now, from, term, granted)
            }
            MessageBody::RequestVote {
                last_log_index,
                last_log_term,
                handoff,
            } => {
                self.on_request_vote(now, from, term, last_log_index, last_log_term, handoff);
            }
            MessageBody::RequestVoteReply { granted } => {
                self.on_vote_reply(now, from, term, granted)
            }
            MessageBody::Append {
                round,
                prev_index,
                prev_term,
                entries,
                commit,
                lease_guard,
            } => {
                self.on_append(
                    now,
                    from,
                    term,
                    (round, lease_guard),
                    (prev_index, prev_term),
                    entries,
                    commit,
                );
            }
            MessageBody::AppendReply {
                round,
                success,
                match_index,
            } => {
                let from = (from, from_identity);
                self.on_append_reply(now, from, term, round, success, match_index);
            }
            MessageBody::InstallSnapshot {
                round,
                snapshot,
                lease_guard,
            } => {
                self.on_install_snapshot(now, from, term, (round, lease_guard), snapshot);
            }
            MessageBody::TimeoutNow => self.on_timeout_now(now, from, term),
        }
    }

    /// A pre-vote is granted only when this node would also grant the real
    /// vote and has not heard from a leader recently. It never changes state.
    fn on_pre_vote(
        &mut self,
        now: Timestamp,
        from: NodeId,
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        let granted = term > self.term
            && self.may_vote()
            && !self.heard_from_leader_recently(now)
            && self.log.is_up_to_date(last_log_index, last_log_term);
        let reply_term = if granted { term } else { self.term };
        self.send_in_term(from, reply_term, MessageBody::PreVoteReply { granted });
    }

    /// Whether this node may grant votes and pre-votes: it is a member of
    /// a configuration that may still be in force in its own log (design.md
    /// §2). A `--join` node (no configuration) or one whose removal it knows
    /// is committed knows nothing it could vouch for and votes for nobody.
    /// A learner being promoted votes too (the candidate counting it has the
    /// promotion, which the learner may not have received yet: simulator
    /// seed 1024), and so does a node whose own removal is still uncommitted
    /// (the removal may be truncated away: seed 9107); refusing either would
    /// deadlock the election.
    fn may_vote(&self) -> bool {
        !self.id_taken() && self.in_live_configs(|member| member.is_some())
    }

    fn on_pre_vote_reply(&mut self, now: Timestamp, from: NodeId, term: Term, granted: bool) {
        if !granted && term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        if self.role != RaftRole::PreCandidate || term != self.term.next() {
            return;
        }
        self.votes.insert(from, granted);
        self.maybe_win_pre_vote(now);
    }

    pub(crate) fn maybe_win_pre_vote(&mut self, now: Timestamp) {
        if self.role == RaftRole::PreCandidate && self.has_majority_of_votes() {
            self.become_candidate(now, false);
        }
    }

    /// Counts granted votes of voters of the latest configuration.
    fn has_majority_of_votes(&self) -> bool {
        let config = self.membership();
        let granted = self
            .votes
            .iter()
            .filter(|&(&id, &granted)| granted && config.is_voter(id))
            .count();
        granted >= config.majority()
    }

    /// Raft's RequestVote handler with leader stickiness: a node that heard
    /// from a leader less than its lease guard ago ignores the request
    /// entirely, unless it is the campaign of a handoff. Only a member of its
    /// own latest configuration grants a vote (see `may_vote`).
    fn on_request_vote(
        &mut self,
        now: Timestamp,
        from: NodeId,
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
        handoff: bool,
    ) {
        if term > self.term {
            let leader_lease_active =
                self.role == RaftRole::Leader || (!handoff && self.heard_from_leader_recently(now));
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
        self.send(from, MessageBody::RequestVoteReply { granted });
    }

    fn on_vote_reply(&mut self, now: Timestamp, from: NodeId, term: Term, granted: bool) {
        if term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        if self.role != RaftRole::Candidate || term != self.term {
            return;
        }
        self.votes.insert(from, granted);
        self.maybe_win_election(now);
    }

    pub(crate) fn maybe_win_election(&mut self, now: Timestamp) {
        if self.role == RaftRole::Candidate && self.has_majority_of_votes() {
            self.become_leader(now);
        }
    }

    /// The old leader has stopped answering goose and waited out its
    /// promises: campaign at once, and voters will not hold stickiness against it.
    fn on_timeout_now(&mut self, now: Timestamp, from: NodeId, term: Term) {
        if term != self.term || self.role == RaftRole::Leader || !self.can_campaign() {
            return;
        }
        if self.leader.is_some_and(|leader| leader != from) {
            return; // Only the leader of this term may hand over.
        }
        self.become_candidate(now, true);
    }
}
