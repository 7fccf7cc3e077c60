//! Eligibility and priority (design.md §2): who may lead, never whether a
//! majority exists. An ineligible node still votes and acknowledges; it
//! never answers goose, never accepts a transfer, and as leader it hands
//! over to the best eligible voter. It campaigns only as a last resort,
//! [`INELIGIBLE_CAMPAIGN_TIMEOUTS`] election timeouts later than an
//! eligible one would: when the only eligible voters lag behind the
//! committed log, no vote would ever go to them, and some leader must catch
//! them up (simulator seed 351, kept as the unit test
//! `an_eligible_voter_that_lags_is_caught_up_by_an_ineligible_leader`). A goose hands over to an eligible voter of
//! higher priority that has asked to preempt it.

use super::node::{Node, RaftRole};
use super::types::{HandoffReason, PRIORITY_DEFAULT};
use goose_common::{Candidacy, NodeId, Timestamp};
use std::time::Duration;

/// How many election timeouts longer than an eligible node an ineligible
/// one waits before it campaigns (to lead without being the goose).
pub const INELIGIBLE_CAMPAIGN_TIMEOUTS: u32 = 2;

impl Node {
    /// The driver's [`Input::Eligibility`](super::Input::Eligibility).
    pub(crate) fn on_eligibility(&mut self, now: Timestamp, eligible: bool) {
        if eligible == self.eligible_input {
            return;
        }
        self.eligible_input = eligible;
        self.track_eligible_since(now);
        if !eligible
            && matches!(
                self.raft_role(),
                RaftRole::PreCandidate | RaftRole::Candidate
            )
        {
            // Leave the campaign to eligible nodes for now.
            let term = self.term;
            self.become_follower(now, term, None);
        } else if self.raft_role() == RaftRole::Follower {
            // The campaign delay depends on eligibility; an eligible node
            // never waits longer than it already did.
            let before = self.election_deadline;
            self.reset_election_deadline(now);
            if eligible {
                self.election_deadline = self.election_deadline.min(before);
            }
        }
        self.maybe_yield(now);
    }

    /// Keeps `eligible_since` in step with eligibility, voter-ness
    /// included: a voter just promoted has its whole preempt delay to wait.
    pub(crate) fn track_eligible_since(&mut self, now: Timestamp) {
        if !self.is_eligible() {
            self.eligible_since = None;
        } else if self.eligible_since.is_none() {
            self.eligible_since = Some(now);
        }
    }

    /// Whether this node may be the goose: a voter of its latest
    /// membership, healthy and not drained.
    pub fn is_eligible(&self) -> bool {
        self.eligible_input && self.is_voter() && !self.id_taken()
    }

    /// Whether this node is a permanent non-voting member.
    pub fn is_observer(&self) -> bool {
        self.me_in(self.membership())
            .is_some_and(|member| member.role == goose_common::MemberRole::Learner)
    }

    /// Whether this node may accept a transfer: eligible, and a voter of
    /// a membership that may still be in force.
    pub(crate) fn may_lead(&self) -> bool {
        self.eligible_input && self.can_campaign()
    }

    /// What this node tells its leader in every append reply.
    pub(crate) fn candidacy(&self, now: Timestamp) -> Candidacy {
        let eligible = self.is_eligible();
        let settled = self
            .eligible_since
            .is_some_and(|since| now.since(since) >= self.config.preempt_delay);
        Candidacy {
            eligible,
            priority: self.config.priority,
            preempting: self.config.preempt && eligible && settled,
        }
    }

    /// Whether this node asks a goose of lower priority to hand over to it:
    /// eligible for its whole preempt delay, with preemption on.
    pub fn is_preempting(&self, now: Timestamp) -> bool {
        self.candidacy(now).preempting
    }

    /// What the leader last heard of `peer`'s eligibility (`None` when it
    /// has not heard, or does not lead).
    pub(crate) fn peer_candidacy(&self, peer: NodeId) -> Option<Candidacy> {
        self.leader_state()
            .and_then(|state| state.progress.get(&peer))
            .and_then(|progress| progress.candidacy)
    }

    /// Whether `peer` is known to be eligible (its latest reply said so).
    pub(crate) fn peer_eligible(&self, peer: NodeId) -> bool {
        self.peer_candidacy(peer).is_some_and(|c| c.eligible)
    }

    /// Whether `peer` is known to be ineligible (it has replied, and said so).
    pub(crate) fn peer_ineligible(&self, peer: NodeId) -> bool {
        self.peer_candidacy(peer).is_some_and(|c| !c.eligible)
    }

    /// The priority `peer` reported (0 before it has replied).
    pub(crate) fn peer_priority(&self, peer: NodeId) -> u8 {
        self.peer_candidacy(peer).map_or(0, |c| c.priority)
    }

    /// Why the handoff under way started, if one is.
    pub fn handoff_reason(&self) -> Option<HandoffReason> {
        self.leader_state()
            .and_then(|state| state.handoff)
            .map(|handoff| handoff.reason)
    }

    /// A leader that should not keep the role starts a voluntary handoff:
    /// an ineligible one as soon as it may still hold the role or an
    /// eligible voter could take it, an eligible one when a caught-up
    /// eligible voter of higher priority asks to preempt it.
    pub(crate) fn maybe_yield(&mut self, now: Timestamp) {
        let Some(state) = self.leader_state() else {
            return;
        };
        if state.handoff.is_some() || !self.is_voter() {
            return; // Busy, or the removal path hands over.
        }
        if !self.eligible_input {
            // Stop what acts on the role the voluntary way while the lease
            // still runs (`reported_goose`), and hand over once an
            // eligible voter can take over.
            if self.reported_goose || self.handoff_target(None).is_some() {
                self.start_handoff(now, None, None, HandoffReason::Ineligible);
            }
            return;
        }
        // No preemption before this term's entry commits, or soon after the
        // last one this node started. A membership change in flight does
        // not hold it back (a promotion may wait long for a learner to
        // catch up: simulator seed 7800285); like a step-down, it settles
        // the change's caller with LeadershipLost, and the entry may still
        // commit under the next leader.
        if self.commit_index < state.noop_index || now < self.preempt_quiet_until {
            return;
        }
        let priority = self.config.priority;
        let last_index = self.log.last_index();
        let preempted = self.other_voters().into_iter().any(|id| {
            state.progress.get(&id).is_some_and(|p| {
                p.match_index == last_index
                    && p.candidacy
                        .is_some_and(|c| c.eligible && c.preempting && c.priority > priority)
            })
        });
        if preempted {
            let quiet = self
                .config
                .preempt_delay
                .max(self.config.election_timeout_min * 2);
            self.preempt_quiet_until = now.add(quiet);
            // The target is chosen when TimeoutNow goes (`continue_handoff`).
            self.start_handoff(now, None, None, HandoffReason::Preempted);
        }
    }

    /// The part of the election timeout after its minimum, shaped by
    /// priority (design.md §2): the default priority spreads over the whole
    /// jitter span; a higher one over a narrower span (none at 255), so it
    /// usually campaigns first; a lower one waits up to one more span. An
    /// ineligible node waits [`INELIGIBLE_CAMPAIGN_TIMEOUTS`] more.
    pub(crate) fn campaign_delay(&mut self) -> Duration {
        let jitter_ns = u64::try_from(self.config.election_jitter_max.as_nanos()).unwrap_or(0);
        let spread_ns = if self.config.campaign_slots {
            self.campaign_slot_ns(jitter_ns)
        } else {
            self.rng.u64(0..=jitter_ns)
        };
        let priority = u64::from(self.config.priority);
        let default = u64::from(PRIORITY_DEFAULT);
        let delay_ns = if priority >= default {
            spread_ns * (255 - priority) / (255 - default)
        } else {
            jitter_ns * (default - priority) / default + spread_ns
        };
        let delay = Duration::from_nanos(delay_ns);
        if self.eligible_input {
            delay
        } else {
            delay + self.config.election_timeout_min * INELIGIBLE_CAMPAIGN_TIMEOUTS
        }
    }

    /// This node's turn within the jitter span (`Config::campaign_slots`):
    /// the voters of its latest membership other than the leader it follows
    /// (the one whose silence would start an election) share the span in
    /// slots, in the order of their ids, and a node draws its delay from
    /// the first quarter of its own slot. Followers that heard the same
    /// last heartbeat then time out a slot apart, and the first has
    /// pre-voted and asked for votes before the next one wakes, so the
    /// split vote that makes plain Raft's slow tail (two candidates within
    /// a round trip) needs views that disagree. Nodes that disagree on the
    /// membership or the leader may share a slot; the randomness inside it
    /// and the retry after a failed campaign still part them.
    fn campaign_slot_ns(&mut self, jitter_ns: u64) -> u64 {
        let me = self.config.id;
        let leader = self.leader;
        let membership = self.log.latest_membership().1;
        let mut slots = 0u64;
        let mut slot = None;
        for id in membership.voters().filter(|&id| Some(id) != leader) {
            if id == me {
                slot = Some(slots);
            }
            slots += 1;
        }
        // A node that is not a voter itself takes the last slot.
        let slots = slots.max(1);
        let slot = slot.unwrap_or(slots - 1);
        let width = jitter_ns / slots;
        slot * width + self.rng.u64(0..=width / 4)
    }
}
