//! Log replication, heartbeats, commit, CheckQuorum and compaction
//! (Raft §5.3, §5.4, §7; dissertation §6.2 for CheckQuorum).

use super::node::{Node, Progress, RaftRole};
use super::quorum::majority_reached;
use super::types::Event;
use goose_common::limits::{APPEND_ENTRIES_MAX, MESSAGE_BYTES_MAX};
use goose_common::{
    wire, Append, AppendReply, Entry, EntryPayload, Identity, InstallSnapshot, LogIndex,
    MemberRole, MessageBody, NodeId, Snapshot, Term, Timestamp,
};
use std::time::Duration;

/// Room left in a message for everything but the entries (ids, terms, indexes).
const APPEND_HEADER_BYTES_MAX: usize = 64;

/// A caught-up observer gets one heartbeat round in this many (the first
/// round of a term included). An observer needs the goose's id, the term
/// and the commit index, not the lease: its replies never count for the
/// lease or commit, so refreshing it every round would cost the leader
/// datagrams for nothing. At the defaults (heartbeat 50 ms) it hears from
/// the goose every 200 ms; an observer that lags gets every round until it
/// has caught up, and new entries go to every member at once.
pub(crate) const OBSERVER_REFRESH_ROUNDS: u64 = 4;

/// Whether an append is one a correct leader of `term` could send: entries
/// contiguous from `prev_index + 1`, terms from `prev_term` up to `term`
/// never decreasing, every membership well formed. Anything else is dropped
/// whole and counted (design.md §2: a peer's input never panics a node).
fn is_well_formed_append(term: Term, append: &Append) -> bool {
    let mut previous = (append.prev_index, append.prev_term);
    for entry in &append.entries {
        let (index, entry_term) = previous;
        let contiguous = index.0.checked_add(1) == Some(entry.index.0);
        let terms_ordered = entry_term <= entry.term && entry.term <= term;
        let membership_ok = match &entry.payload {
            EntryPayload::Membership(membership) => membership.is_well_formed(),
            EntryPayload::NoOp => true,
        };
        if !(contiguous && terms_ordered && membership_ok) {
            return false;
        }
        previous = (entry.index, entry.term);
    }
    true
}

impl Node {
    /// A message from the leader of `term` (or later): step down if needed,
    /// follow it, and restart the vote guard with the leader's lease guard.
    fn accept_leader(&mut self, now: Timestamp, from: NodeId, term: Term, lease_guard: Duration) {
        if term > self.term || self.raft_role() != RaftRole::Follower || self.leader != Some(from) {
            self.become_follower(now, term, Some(from));
        }
        self.hear_leader(now, lease_guard);
        self.reset_election_deadline(now);
    }

    pub(crate) fn on_append(
        &mut self,
        now: Timestamp,
        sender: (NodeId, Identity),
        term: Term,
        append: Append,
    ) {
        let from = sender.0;
        if !is_well_formed_append(term, &append) {
            // Input from a peer never panics this node (design.md §2).
            self.peer_faults.malformed += 1;
            return;
        }
        let Append {
            round,
            prev_index,
            prev_term,
            entries,
            commit,
            lease_guard,
        } = append;
        if term < self.term {
            let body = MessageBody::AppendReply(AppendReply {
                round,
                success: false,
                match_index: self.log.last_index(),
                candidacy: self.candidacy(now),
            });
            self.reply(sender, body);
            return;
        }
        self.accept_leader(now, from, term, lease_guard);
        self.leader_commit_seen = self.leader_commit_seen.max(commit);
        // Entries at or below our snapshot are committed, hence identical:
        // skip them and treat the snapshot as the matching prefix.
        let snapshot_index = self.log.snapshot.index;
        let (prev_index, prev_term, entries) = if prev_index < snapshot_index {
            let skipped: Vec<Entry> = entries
                .into_iter()
                .filter(|e| e.index > snapshot_index)
                .collect();
            (snapshot_index, self.log.snapshot.term, skipped)
        } else {
            (prev_index, prev_term, entries)
        };
        if self.log.term_at(prev_index) != Some(prev_term) {
            let hint = self.log.last_index().min(prev_index.prev());
            self.reply(
                sender,
                MessageBody::AppendReply(AppendReply {
                    round,
                    success: false,
                    match_index: hint,
                    candidacy: self.candidacy(now),
                }),
            );
            return;
        }
        let last_new = LogIndex(prev_index.0 + entries.len() as u64);
        if let Some(index) = self.first_committed_conflict(&entries) {
            // Input from a peer never panics this node (design.md §2): an
            // append contradicting a committed entry is evidence of a fault
            // elsewhere (a copied or restored data directory, a lying disk).
            // Refuse it whole and keep the committed log.
            self.peer_faults.contradicts_committed += 1;
            self.emit(Event::ContradictsCommitted { from, index });
            return;
        }
        for entry in entries {
            match self.log.term_at(entry.index) {
                Some(existing) if existing == entry.term => continue,
                Some(_) => self.truncate_log(entry.index),
                None => {}
            }
            self.append_entry(entry);
        }
        debug_assert!(
            self.log.last_index() >= last_new,
            "an accepted append leaves its entries in the log"
        );
        self.advance_commit(now, commit.min(last_new));
        self.reply(
            sender,
            MessageBody::AppendReply(AppendReply {
                round,
                success: true,
                match_index: last_new,
                candidacy: self.candidacy(now),
            }),
        );
    }

    /// The first of `entries` that would replace a committed entry of
    /// another term, if any.
    fn first_committed_conflict(&self, entries: &[Entry]) -> Option<LogIndex> {
        entries
            .iter()
            .take_while(|entry| entry.index <= self.commit_index)
            .find(|entry| {
                self.log
                    .term_at(entry.index)
                    .is_some_and(|term| term != entry.term)
            })
            .map(|entry| entry.index)
    }

    pub(crate) fn on_install_snapshot(
        &mut self,
        now: Timestamp,
        sender: (NodeId, Identity),
        term: Term,
        install: InstallSnapshot,
    ) {
        let from = sender.0;
        if install.snapshot.term > term || !install.snapshot.membership.is_well_formed() {
            self.peer_faults.malformed += 1;
            return;
        }
        let InstallSnapshot {
            round,
            snapshot,
            lease_guard,
        } = install;
        if term < self.term {
            let body = MessageBody::AppendReply(AppendReply {
                round,
                success: false,
                match_index: self.log.last_index(),
                candidacy: self.candidacy(now),
            });
            self.reply(sender, body);
            return;
        }
        self.accept_leader(now, from, term, lease_guard);
        let index = snapshot.index;
        if index > self.commit_index {
            let keeps_suffix = self.log.term_at(index) == Some(snapshot.term);
            self.ready
                .persist
                .entries
                .retain(|entry| entry.index > index);
            if !keeps_suffix {
                self.ready.persist.entries.clear();
                self.ready.persist.truncate_from = Some(index.next());
                self.log.entries.clear();
            }
            self.log.compact(snapshot.clone());
            self.ready.persist.snapshot = Some(snapshot);
            self.commit_index = index;
            self.on_membership_maybe_changed();
        }
        self.reply(
            sender,
            MessageBody::AppendReply(AppendReply {
                round,
                success: true,
                match_index: index,
                candidacy: self.candidacy(now),
            }),
        );
    }

    pub(crate) fn on_append_reply(
        &mut self,
        now: Timestamp,
        (from, from_identity): (NodeId, Identity),
        term: Term,
        reply: AppendReply,
    ) {
        let AppendReply {
            round,
            success,
            match_index,
            candidacy,
        } = reply;
        if term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        if term < self.term || !self.is_leader() {
            return;
        }
        let last_index = self.log.last_index();
        let next_round = self.leading().lease.current_round().next();
        let state = self.leading_mut();
        if state
            .progress
            .get(&from)
            .is_some_and(|progress| round < progress.since_round)
        {
            // A reply to a round sent before this leader began replicating
            // to the member: perhaps from an earlier data directory under
            // its id. It neither binds an identity nor counts for the lease.
            return;
        }
        if let Some(progress) = state.progress.get_mut(&from) {
            if progress.identity.is_known() && progress.identity != from_identity {
                // Another data directory answers under the id (a member
                // the membership binds no identity to: an observer, a
                // voter not yet bound). One progress never mixes two: it
                // starts again from the next round, and this reply counts
                // for nothing (else `maybe_promote` could bind whichever
                // answered first, the deadlock of seed 7904531).
                *progress = Progress::fresh(last_index.next(), next_round);
                state.lease.forget(from);
                self.peer_faults.wrong_identity += 1;
                self.refresh_lease();
                return;
            }
        }
        state.lease.acknowledge(from, round);
        self.refresh_lease();
        let Some(progress) = self.leading_mut().progress.get_mut(&from) else {
            return; // Not (or no longer) a member this leader replicates to.
        };
        if !progress.identity.is_known() {
            progress.identity = from_identity;
        }
        progress.candidacy = Some(candidacy);
        let resend = if success {
            let matched = match_index.min(last_index);
            progress.match_index = progress.match_index.max(matched);
            progress.next_index = progress.next_index.max(progress.match_index.next());
            progress.next_index <= last_index
        } else {
            progress.back_off(match_index)
        };
        self.maybe_commit(now);
        // Committing may have ended leadership (a removed leader handed over).
        if resend && self.is_leader() {
            self.send_append(from);
        }
        self.maybe_promote(now);
        self.maybe_bind_identities(now);
        self.continue_handoff(now);
        self.maybe_yield(now);
    }

    /// Leader timers: heartbeat rounds and CheckQuorum.
    pub(crate) fn tick_leader(&mut self, now: Timestamp) {
        let state = self.leading();
        let lease_start = state
            .lease_start
            .unwrap_or(state.elected_at)
            .max(state.elected_at);
        if now.since(lease_start) >= self.config.election_timeout_min {
            // CheckQuorum: no majority has answered for a whole election timeout.
            let term = self.term;
            self.become_follower(now, term, None);
            return;
        }
        if now >= state.next_heartbeat {
            self.broadcast_heartbeat(now);
        }
        self.hand_over_if_removed(now);
        self.continue_handoff(now);
        self.maybe_yield(now);
    }

    /// Starts a heartbeat round: every member gets an append (with entries
    /// if it lags), and the round's send time is remembered for the lease.
    pub(crate) fn broadcast_heartbeat(&mut self, now: Timestamp) {
        let interval = self.config.heartbeat_interval;
        let state = self.leading_mut();
        state.lease.start_round(now);
        state.next_heartbeat = now.add(interval);
        self.refresh_lease();
        self.say_farewell();
        let round = self.leading().lease.current_round();
        let refresh_observers = round.0 % OBSERVER_REFRESH_ROUNDS == 1;
        let last_index = self.log.last_index();
        let membership = self.log.latest_membership().1;
        let state = self.leading();
        let peers: Vec<NodeId> = state
            .progress
            .iter()
            .filter(|&(id, progress)| {
                let observer = membership
                    .get(*id)
                    .is_some_and(|member| member.role == MemberRole::Learner);
                let caught_up = progress.match_index == last_index;
                refresh_observers || !observer || !caught_up
            })
            .map(|(&id, _)| id)
            .collect();
        for peer in peers {
            self.send_append(peer);
        }
        // A lone voter acknowledges its own rounds: commit may advance.
        self.maybe_commit(now);
    }

    /// Sends `peer` the entries it lacks, or the snapshot if they are compacted.
    pub(crate) fn send_append(&mut self, peer: NodeId) {
        let state = self.leading();
        let Some(progress) = state.progress.get(&peer) else {
            return; // Not a member this leader replicates to.
        };
        let round = state.lease.current_round();
        let next = progress.next_index;
        let prev_index = next.prev();
        let Some(prev_term) = self
            .log
            .term_at(prev_index)
            .filter(|_| next > self.log.snapshot.index)
        else {
            let snapshot = self.log.snapshot.clone();
            let lease_guard = self.config.election_timeout_min;
            let body = MessageBody::InstallSnapshot(InstallSnapshot {
                round,
                snapshot,
                lease_guard,
            });
            self.send(peer, body);
            return;
        };
        let mut entries = Vec::new();
        let mut bytes = APPEND_HEADER_BYTES_MAX;
        for entry in self.log.entries_from(next, APPEND_ENTRIES_MAX) {
            bytes += wire::encoded_len(entry);
            if bytes > MESSAGE_BYTES_MAX && !entries.is_empty() {
                break;
            }
            entries.push(entry.clone());
        }
        let body = MessageBody::Append(Append {
            round,
            prev_index,
            prev_term,
            entries,
            commit: self.commit_index,
            lease_guard: self.config.election_timeout_min,
        });
        self.send(peer, body);
    }

    /// Advances the leader's commit index to what a majority has replicated,
    /// counting only entries of its own term (Raft §5.4.2).
    pub(crate) fn maybe_commit(&mut self, now: Timestamp) {
        let state = self.leading();
        let reached = majority_reached(self.membership(), |id| {
            if id == self.config.id {
                self.log.last_index()
            } else {
                state
                    .progress
                    .get(&id)
                    .map_or(LogIndex(0), |p| p.match_index)
            }
        });
        let Some(candidate) = reached else {
            return;
        };
        if candidate > self.commit_index && self.log.term_at(candidate) == Some(self.term) {
            self.advance_commit(now, candidate);
        }
    }

    /// Moves the commit index forward, reporting committed memberships.
    pub(crate) fn advance_commit(&mut self, now: Timestamp, index: LogIndex) {
        if index <= self.commit_index {
            return; // The commit index never decreases.
        }
        assert!(
            index <= self.log.last_index(),
            "commit {index} past the log's last index {}",
            self.log.last_index()
        );
        let previous = self.commit_index;
        self.commit_index = index;
        let committed_memberships: Vec<Event> = self
            .log
            .entries_from(previous.next(), usize::MAX)
            .iter()
            .take_while(|entry| entry.index <= index)
            .filter_map(|entry| match &entry.payload {
                EntryPayload::Membership(membership) => Some(Event::MembershipCommitted {
                    index: entry.index,
                    membership: membership.clone(),
                }),
                EntryPayload::NoOp => None,
            })
            .collect();
        self.ready.events.extend(committed_memberships);
        if self.is_leader() {
            self.on_leader_commit(now);
        }
        self.maybe_compact();
    }

    /// Compacts the committed prefix once the log grows past the threshold.
    fn maybe_compact(&mut self) {
        let index = self.commit_index;
        let compactable = index.0 - self.log.snapshot.index.0;
        if compactable <= self.config.compaction_threshold as u64 {
            return;
        }
        let Some(term) = self.log.term_at(index) else {
            return;
        };
        let membership = self.log.membership_at(index).1.clone();
        let snapshot = Snapshot {
            index,
            term,
            membership,
        };
        self.log.compact(snapshot.clone());
        // Entries appended in this step and now covered by the snapshot must
        // not be appended again after it.
        self.ready
            .persist
            .entries
            .retain(|entry| entry.index > index);
        self.ready.persist.snapshot = Some(snapshot);
    }

    /// Keeps the leader's progress map equal to the members of the latest
    /// membership, plus any member that membership removes: the leader keeps
    /// replicating to it until it has seen the removal committed, so that it
    /// learns of its removal and says so (see `say_farewell`).
    pub(crate) fn sync_progress(&mut self) {
        let next = self.log.last_index().next();
        let (membership_index, membership) = self.log.latest_membership();
        let previous = self.log.membership_at(membership_index.prev()).1;
        let members: Vec<(NodeId, Identity, bool)> = membership
            .members
            .iter()
            .filter(|member| member.id != self.config.id)
            .map(|member| {
                (
                    member.id,
                    member.identity,
                    previous.get(member.id).is_none(),
                )
            })
            .collect();
        let leaving: Vec<NodeId> = previous
            .members
            .iter()
            .map(|member| member.id)
            .filter(|&id| id != self.config.id && membership.get(id).is_none())
            .collect();
        let Some(state) = self.leader_state_mut() else {
            return; // Only a leader keeps progress.
        };
        let changed = state.progress_membership != membership_index;
        // A progress begun now counts replies to the next round on: this
        // round's appends may have gone to an earlier holder of the id.
        let since_round = state.lease.current_round().next();
        state.progress.retain(|id, _| {
            members.iter().any(|&(member, ..)| member == *id) || leaving.contains(id)
        });
        for (id, identity, is_new) in members {
            // A member that was not in the previous membership, or is
            // another data directory now, starts from scratch: what the
            // leader knew of an earlier member under that id is void.
            let progress = state
                .progress
                .entry(id)
                .or_insert(Progress::fresh(next, since_round));
            let rebuilt = identity.is_known()
                && progress.identity.is_known()
                && identity != progress.identity;
            if (is_new && changed) || rebuilt {
                *progress = Progress::fresh(next, since_round);
                state.lease.forget(id);
            }
        }
        state.progress_membership = membership_index;
        self.refresh_lease();
    }

    /// Stops replicating to removed members once they have acknowledged a
    /// round started after their removal committed (that round's appends
    /// carried the commit index, so they know).
    fn say_farewell(&mut self) {
        let (membership_index, membership) = self.log.latest_membership();
        let committed = membership_index <= self.commit_index;
        let leaving: Vec<NodeId> = self
            .leading()
            .progress
            .keys()
            .copied()
            .filter(|&id| membership.get(id).is_none())
            .collect();
        let state = self.leading_mut();
        if leaving.is_empty() || !committed {
            state.farewell = None;
            return;
        }
        let current_round = state.lease.current_round();
        let farewell_round = match state.farewell {
            Some((index, round)) if index == membership_index => round,
            _ => {
                state.farewell = Some((membership_index, current_round));
                current_round
            }
        };
        for id in leaving {
            if state.lease.acked_round(id) >= farewell_round {
                state.progress.remove(&id);
            }
        }
    }
}
