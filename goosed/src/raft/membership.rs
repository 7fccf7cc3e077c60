//! Single-server membership changes (dissertation ch. 4, with the 2015
//! fix: a leader accepts no change before committing an entry of its own
//! term, and one change at a time), learner promotion, and handoffs
//! (dissertation §3.10 with the promise wait of design.md §2).

use super::node::{Handoff, HandoffStage, Node, PendingChange};
use super::types::{Event, HandoffReason, MembershipChange, ProposalId, RejectReason};
use goose_common::limits::{LEARNERS_MAX, VOTERS_MAX};
use goose_common::{
    wire, Entry, EntryPayload, Identity, Member, MemberRole, Membership, MessageBody, NodeId,
    Timestamp,
};
use std::time::Duration;

/// The longest a handoff waits for [`Input::Release`](super::Input::Release)
/// before it gives the role up without `TimeoutNow`: a bound for a driver
/// that never answers. The daemon's own wait (a runner's grace, the
/// `on_duck` hook's timeout) is shorter.
pub const RELEASE_WAIT_MAX: Duration = Duration::from_secs(60);

/// Bytes a membership entry may take, so that it fits in one datagram.
const MEMBERSHIP_ENTRY_BYTES_MAX: usize = goose_common::limits::MESSAGE_BYTES_MAX - 64;

/// An observer's entry: a learner whose identity the membership does not
/// bind. An observer never votes, so another data directory under its id
/// can do no harm, and leaving the identity out keeps a membership of 9
/// voters and 64 observers (IPv4) within one datagram: a bound identity
/// takes about 10 bytes, an unbound one 1. Promotion binds it.
fn observer(id: NodeId, addr: goose_common::SocketAddr) -> Member {
    Member {
        id,
        addr,
        role: MemberRole::Learner,
        identity: Identity::UNKNOWN,
    }
}

/// Refuses one more learner (observer or joining) when the membership
/// already holds `LEARNERS_MAX` of them (design.md §8).
fn learners_below_limit(membership: &Membership) -> Result<(), RejectReason> {
    let learners = membership
        .members
        .iter()
        .filter(|m| m.role != MemberRole::Voter)
        .count();
    if learners >= LEARNERS_MAX {
        return Err(RejectReason::Limit(format!(
            "at most {LEARNERS_MAX} learners"
        )));
    }
    Ok(())
}

/// Whether two memberships differ at most in the identities they know.
fn same_but_identities(a: &Membership, b: &Membership) -> bool {
    a.members.len() == b.members.len()
        && a.members.iter().zip(&b.members).all(|(x, y)| {
            (x.id, x.addr, x.role) == (y.id, y.addr, y.role)
                && (x.identity == y.identity || !y.identity.is_known())
        })
}

impl Node {
    pub(crate) fn on_propose(&mut self, now: Timestamp, id: ProposalId, change: MembershipChange) {
        match self.check_proposal(&change) {
            Ok(membership) => {
                let promote = match change {
                    MembershipChange::AddVoter { id, .. } | MembershipChange::Promote { id } => {
                        Some(id)
                    }
                    MembershipChange::AddLearner { .. }
                    | MembershipChange::Remove { .. }
                    | MembershipChange::Demote { .. } => None,
                };
                let index = self.append_membership(membership);
                let cancelled =
                    self.leading_mut()
                        .pending
                        .replace(PendingChange { id, index, promote });
                if let Some(cancelled) = cancelled {
                    // Only a removal of the joining node gets here (`check_proposal`).
                    let reason = RejectReason::Invalid("the joining node was removed".into());
                    self.emit(Event::Rejected {
                        id: cancelled.id,
                        reason,
                    });
                }
                self.maybe_commit(now);
                self.broadcast_appends();
            }
            Err(reason) => self.emit(Event::Rejected { id, reason }),
        }
    }

    /// Checks a proposal against the rules and returns the new membership.
    fn check_proposal(&self, change: &MembershipChange) -> Result<Membership, RejectReason> {
        let Some(state) = self.leader_state() else {
            return Err(RejectReason::NotLeader {
                leader: self.leader,
            });
        };
        if self.commit_index < state.noop_index {
            return Err(RejectReason::NotReady);
        }
        let (membership_index, current) = self.log.latest_membership();
        let joining = current
            .members
            .iter()
            .any(|m| m.role == MemberRole::Joining);
        let cancels_join = matches!(change, MembershipChange::Remove { id }
            if current.get(*id).is_some_and(|m| m.role == MemberRole::Joining));
        // An entry that only binds identities changes no majority, so it does
        // not count as a change in flight (one change at a time is about
        // majorities overlapping, dissertation §4.1).
        let committed = self.log.membership_at(self.commit_index).1;
        let in_flight =
            membership_index > self.commit_index && !same_but_identities(current, committed);
        // Removing the node a pending `member add` or `promote` waits for
        // cancels that change: a stopped node would otherwise hold every
        // other change until the next leader.
        let cancels_pending = cancels_join
            && state.pending.as_ref().is_some_and(|pending| {
                matches!(change, MembershipChange::Remove { id } if pending.promote == Some(*id))
            });
        if in_flight || (state.pending.is_some() && !cancels_pending) || (joining && !cancels_join)
        {
            return Err(RejectReason::ChangeInProgress);
        }
        if state.handoff.is_some() {
            return Err(RejectReason::HandoffInProgress);
        }
        let mut membership = current.clone();
        match *change {
            MembershipChange::AddVoter { id, addr } | MembershipChange::AddLearner { id, addr } => {
                if !id.is_valid() {
                    return Err(RejectReason::Invalid(
                        "node id must be greater than 0".into(),
                    ));
                }
                if membership.get(id).is_some() {
                    return Err(RejectReason::AlreadyMember(id));
                }
                if membership.members.iter().any(|m| m.addr == addr) {
                    return Err(RejectReason::DuplicateAddr(addr));
                }
                learners_below_limit(&membership)?;
                let role = match change {
                    MembershipChange::AddVoter { .. } => MemberRole::Joining,
                    _ => MemberRole::Learner,
                };
                if role == MemberRole::Joining && membership.voters().count() >= VOTERS_MAX {
                    return Err(RejectReason::Limit(format!("at most {VOTERS_MAX} voters")));
                }
                // Its identity is learnt from its first reply and bound when
                // it is promoted (or by `maybe_bind_identities`); an
                // observer's is never bound.
                membership.members.push(Member {
                    role,
                    ..observer(id, addr)
                });
                membership.members.sort_by_key(|m| m.id);
            }
            MembershipChange::Remove { id } => {
                let Some(member) = membership.get(id) else {
                    return Err(RejectReason::UnknownMember(id));
                };
                if member.role == MemberRole::Voter && membership.voters().count() == 1 {
                    return Err(RejectReason::Limit("cannot remove the last voter".into()));
                }
                membership.members.retain(|m| m.id != id);
            }
            MembershipChange::Promote { id } => {
                let Some(member) = membership.get(id) else {
                    return Err(RejectReason::UnknownMember(id));
                };
                if member.role != MemberRole::Learner {
                    return Err(RejectReason::Invalid(format!(
                        "node {id} is not an observer"
                    )));
                }
                if membership.voters().count() >= VOTERS_MAX {
                    return Err(RejectReason::Limit(format!("at most {VOTERS_MAX} voters")));
                }
                // It catches up as a joining learner; `maybe_promote` makes
                // it a voter and binds the identity its replies carry.
                for member in &mut membership.members {
                    if member.id == id {
                        member.role = MemberRole::Joining;
                        member.identity = Identity::UNKNOWN;
                    }
                }
            }
            MembershipChange::Demote { id } => {
                let Some(member) = membership.get(id) else {
                    return Err(RejectReason::UnknownMember(id));
                };
                if member.role != MemberRole::Voter {
                    return Err(RejectReason::Invalid(format!("node {id} is not a voter")));
                }
                if membership.voters().count() == 1 {
                    return Err(RejectReason::Limit("cannot demote the last voter".into()));
                }
                learners_below_limit(&membership)?;
                // An observer's entry binds no identity (see `observer`).
                for member in &mut membership.members {
                    if member.id == id {
                        *member = observer(member.id, member.addr);
                    }
                }
            }
        }
        let entry_bytes = wire::encoded_len(&EntryPayload::Membership(membership.clone())) + 24;
        if entry_bytes > MEMBERSHIP_ENTRY_BYTES_MAX {
            return Err(RejectReason::Limit(
                "the membership would not fit in a datagram".into(),
            ));
        }
        Ok(membership)
    }

    /// Appends a membership entry of the current term; it takes effect now.
    fn append_membership(&mut self, membership: Membership) -> goose_common::LogIndex {
        let index = self.log.last_index().next();
        self.append_entry(Entry {
            index,
            term: self.term,
            payload: EntryPayload::Membership(membership),
        });
        index
    }

    /// Sends every member what it lacks right away (not waiting for the heartbeat).
    /// Does nothing once leadership has ended (committing a removal may
    /// have handed over).
    fn broadcast_appends(&mut self) {
        let Some(state) = self.leader_state() else {
            return;
        };
        let peers: Vec<NodeId> = state.progress.keys().copied().collect();
        for peer in peers {
            self.send_append(peer);
        }
    }

    /// Leader work after its commit index moved: settle the pending change,
    /// promote a caught-up joining learner, hand over if removed.
    pub(crate) fn on_leader_commit(&mut self, now: Timestamp) {
        self.settle_pending();
        self.maybe_promote(now);
        self.maybe_bind_identities(now);
        self.hand_over_if_removed(now);
    }

    /// Binds the identities of voters and joining learners the membership
    /// does not know yet (the initial voters, and members added before they
    /// answered; never an observer's, see `observer`) to the
    /// identity their replies carry, in one membership entry, once no
    /// other change is in flight. From then on every node drops messages
    /// under their ids from any other data directory (design.md §2).
    pub(crate) fn maybe_bind_identities(&mut self, now: Timestamp) {
        let (membership_index, membership) = self.log.latest_membership();
        let Some(state) = self.leader_state() else {
            return; // Not (or no longer) leading.
        };
        let idle = state.pending.is_none() && state.handoff.is_none();
        let ready = self.commit_index >= state.noop_index && membership_index <= self.commit_index;
        let binds = |member: &Member| member.role != MemberRole::Learner;
        let unbound = |member: &Member| binds(member) && !member.identity.is_known();
        if !idle || !ready || !membership.members.iter().any(unbound) {
            return;
        }
        let learnt = |member: &Member| {
            if member.id == self.config.id {
                self.identity
            } else {
                state
                    .progress
                    .get(&member.id)
                    .map_or(Identity::UNKNOWN, |p| p.identity)
            }
        };
        let mut bound = membership.clone();
        let mut changed = false;
        for member in &mut bound.members {
            if unbound(member) && learnt(member).is_known() {
                member.identity = learnt(member);
                changed = true;
            }
        }
        if changed {
            self.append_membership(bound);
            self.maybe_commit(now);
            self.broadcast_appends();
        }
    }

    /// A leader whose removal has committed hands over (and retries until it has).
    pub(crate) fn hand_over_if_removed(&mut self, now: Timestamp) {
        let membership_committed = self.log.latest_membership().0 <= self.commit_index;
        let removed = !self.is_voter();
        let idle = self.leader_state().is_some_and(|s| s.handoff.is_none());
        if membership_committed && removed && idle {
            self.start_handoff(now, None, None, HandoffReason::Removed);
        }
    }

    fn settle_pending(&mut self) {
        let commit_index = self.commit_index;
        let committed_membership = self.log.membership_at(commit_index).1.clone();
        let state = self.leading_mut();
        let Some(pending) = state.pending.clone() else {
            return;
        };
        let settled = match pending.promote {
            None => commit_index >= pending.index,
            Some(id) => committed_membership.is_voter(id),
        };
        let cancelled = pending
            .promote
            .is_some_and(|id| committed_membership.get(id).is_none())
            && commit_index >= pending.index;
        if settled {
            state.pending = None;
            self.emit(Event::Done { id: pending.id });
        } else if cancelled {
            state.pending = None;
            let reason = RejectReason::Invalid("the joining node was removed".into());
            self.emit(Event::Rejected {
                id: pending.id,
                reason,
            });
        }
    }

    /// Promotes a joining learner once its membership is committed and it
    /// has replicated everything committed (dissertation §4.2.1).
    pub(crate) fn maybe_promote(&mut self, now: Timestamp) {
        let (membership_index, membership) = self.log.latest_membership();
        if membership_index > self.commit_index {
            return;
        }
        let Some(state) = self.leader_state() else {
            return; // Not (or no longer) leading.
        };
        if self.commit_index < state.noop_index || state.handoff.is_some() {
            return;
        }
        let caught_up = membership.members.iter().find(|m| {
            m.role == MemberRole::Joining
                && state
                    .progress
                    .get(&m.id)
                    .is_some_and(|p| p.match_index >= self.commit_index)
        });
        let Some(joining) = caught_up.map(|m| m.id) else {
            return;
        };
        let identity = state
            .progress
            .get(&joining)
            .map_or(Identity::UNKNOWN, |p| p.identity);
        let mut promoted = membership.clone();
        for member in &mut promoted.members {
            if member.id == joining {
                member.role = MemberRole::Voter;
                member.identity = identity;
            }
        }
        self.append_membership(promoted);
        self.maybe_commit(now);
        self.broadcast_appends();
    }

    pub(crate) fn on_handoff_request(
        &mut self,
        now: Timestamp,
        id: ProposalId,
        target: Option<NodeId>,
    ) {
        let reject = |reason| Event::Rejected { id, reason };
        let Some(state) = self.leader_state() else {
            let event = reject(RejectReason::NotLeader {
                leader: self.leader,
            });
            return self.emit(event);
        };
        if state.handoff.is_some() {
            return self.emit(reject(RejectReason::HandoffInProgress));
        }
        if let Some(target) = target {
            if target == self.config.id || !self.membership().is_voter(target) {
                let why = format!("node {target} is not another voter");
                return self.emit(reject(RejectReason::NoTarget(why)));
            }
            if self.peer_ineligible(target) {
                let why = format!("node {target} is not eligible (unhealthy or drained)");
                return self.emit(reject(RejectReason::NoTarget(why)));
            }
        } else if self.other_voters().is_empty() {
            return self.emit(reject(RejectReason::NoTarget(
                "there is no other voter".into(),
            )));
        } else if self
            .other_voters()
            .into_iter()
            .all(|voter| self.peer_ineligible(voter))
        {
            return self.emit(reject(RejectReason::NoTarget(
                "no other voter is eligible (unhealthy or drained)".into(),
            )));
        }
        self.start_handoff(now, Some(id), target, HandoffReason::Requested);
    }

    /// Stops answering goose at once. The driver then stops what acts on
    /// the role and says so with [`Input::Release`](super::Input::Release);
    /// `continue_handoff` sends TimeoutNow once that is done, every promise
    /// has run out and the target has caught up.
    pub(crate) fn start_handoff(
        &mut self,
        now: Timestamp,
        id: Option<ProposalId>,
        target: Option<NodeId>,
        reason: HandoffReason,
    ) {
        self.leading_mut().handoff = Some(Handoff {
            id,
            target,
            stage: HandoffStage::Releasing {
                by: now.add(RELEASE_WAIT_MAX),
            },
            reason,
        });
        self.broadcast_appends();
        self.continue_handoff(now);
    }

    /// The driver's [`Input::Release`](super::Input::Release): what acts on
    /// the role has stopped (`stopped`), or did not confirm in time. Ignored
    /// unless a handoff waits for it.
    pub(crate) fn on_release(&mut self, now: Timestamp, stopped: bool) {
        let Some(handoff) = self.leader_state().and_then(|state| state.handoff) else {
            return; // Not leading, or no handoff under way.
        };
        if !matches!(handoff.stage, HandoffStage::Releasing { .. }) {
            return;
        }
        if !stopped {
            return self.give_up_without_handoff(now, handoff);
        }
        // The target gets an election timeout once the last promise runs
        // out, however long that promise was.
        let by = now
            .max(self.promise_until)
            .add(self.config.election_timeout_min);
        self.leading_mut().handoff = Some(Handoff {
            stage: HandoffStage::Transferring { by },
            ..handoff
        });
        self.continue_handoff(now);
    }

    /// Moves a handoff forward: give up, or send TimeoutNow and step down.
    pub(crate) fn continue_handoff(&mut self, now: Timestamp) {
        let Some(handoff) = self.leader_state().and_then(|state| state.handoff) else {
            return; // Not leading, or no handoff under way.
        };
        let by = match handoff.stage {
            HandoffStage::Releasing { by } => {
                if now >= by {
                    self.give_up_without_handoff(now, handoff);
                }
                return;
            }
            HandoffStage::Transferring { by } => by,
        };
        if now >= by {
            self.leading_mut().handoff = None;
            if let Some(id) = handoff.id {
                self.emit(Event::Rejected {
                    id,
                    reason: RejectReason::HandoffTimedOut,
                });
            }
            return;
        }
        if now < self.promise_until {
            return; // A promise this node gave is still running.
        }
        // A removed leader must leave even if no voter is eligible: any
        // caught-up voter gets TimeoutNow (an ineligible one ignores it,
        // and an election follows).
        // A preempted leader hands to the best voter that outranks it when
        // TimeoutNow goes, not to the first preempter it heard: a new
        // leader hears its voters one by one, and handing to a preempter
        // that another outranks moves the goose twice, the second time only
        // after the new goose's preemption quiet (simulator seed 8975778).
        let removed = handoff.reason == HandoffReason::Removed;
        let target = match handoff.reason {
            HandoffReason::Preempted => self
                .handoff_target(None)
                .filter(|id| self.peer_priority(*id) > self.config.priority),
            _ => self.handoff_target(handoff.target),
        }
        .or_else(|| removed.then(|| self.caught_up_voter()).flatten());
        let Some(target) = target else {
            return;
        };
        self.send(target, MessageBody::TimeoutNow);
        self.leading_mut().handoff = None;
        if let Some(id) = handoff.id {
            self.emit(Event::Done { id });
        }
        // Never goose again in this term: step down now, and keep still for an
        // election timeout so the target's campaign is not disturbed.
        // (Stepping down counts as hearing from itself: see `become_follower`.)
        let term = self.term;
        self.become_follower(now, term, None);
    }

    /// What acts on the role did not confirm it stopped: no TimeoutNow
    /// (design.md §7). The node stops leading, so its lease runs out on its
    /// own; until then no voter that acknowledged it grants a vote.
    ///
    /// It meant to hand over, so it also waits one more election timeout
    /// before it campaigns itself: the others' first pre-votes meet its own
    /// vote guard (it heard itself lead until now), and without the wait it
    /// campaigned just after that guard ran out and won again, before any
    /// other's retry, every time (simulator seed 8256959: a preemption
    /// whose release was never confirmed left the goose of lower priority
    /// in place for good).
    fn give_up_without_handoff(&mut self, now: Timestamp, handoff: Handoff) {
        self.leading_mut().handoff = None;
        if let Some(id) = handoff.id {
            self.emit(Event::Rejected {
                id,
                reason: RejectReason::NotReleased,
            });
        }
        let term = self.term;
        self.become_follower(now, term, None);
        self.election_deadline = self.election_deadline.add(self.config.election_timeout_min);
    }

    /// Any caught-up voter, eligible or not, the most recently heard first.
    fn caught_up_voter(&self) -> Option<NodeId> {
        let state = self.leading();
        let last_index = self.log.last_index();
        self.other_voters()
            .into_iter()
            .filter(|id| {
                state
                    .progress
                    .get(id)
                    .is_some_and(|p| p.match_index == last_index)
            })
            .max_by_key(|id| (state.lease.acked_round(*id), std::cmp::Reverse(*id)))
    }

    /// A caught-up eligible voter to hand to (design.md §2): the requested
    /// one, or the one of highest priority, then the one that acknowledged
    /// the most recent heartbeat round.
    pub(crate) fn handoff_target(&self, requested: Option<NodeId>) -> Option<NodeId> {
        let state = self.leading();
        let last_index = self.log.last_index();
        let ready = |id: &NodeId| {
            state
                .progress
                .get(id)
                .is_some_and(|p| p.match_index == last_index)
                && self.peer_eligible(*id)
                && self.membership().is_voter(*id)
        };
        match requested {
            Some(target) => ready(&target).then_some(target),
            None => self
                .other_voters()
                .into_iter()
                .filter(ready)
                .max_by_key(|id| {
                    (
                        self.peer_priority(*id),
                        state.lease.acked_round(*id),
                        std::cmp::Reverse(*id),
                    )
                }),
        }
    }
}
