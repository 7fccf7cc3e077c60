//! The `Node`: state, the single entry point `step`, the goose rule, and the
//! role transitions (`become_follower`, `become_pre_candidate`,
//! `become_candidate`, `become_leader`). Message handlers live in
//! `election.rs`, `replication.rs` and `membership.rs`.

use super::lease::LeaseTracker;
use super::log::RaftLog;
use super::types::{
    Config, ConfigError, Event, GooseAnswer, HandoffReason, Input, PersistedState, ProposalId,
    Ready, RejectReason,
};
use goose_common::limits::ELECTION_TIMEOUT_MS_MAX;
use goose_common::{
    Candidacy, Entry, EntryPayload, HardState, Identity, LogIndex, Member, MemberRole, Membership,
    Message, MessageBody, NodeId, PreVote, RequestVote, Round, Snapshot, Term, Timestamp,
};
use std::collections::BTreeMap;
use std::time::Duration;

/// The Raft role of a node (only a leader can be the goose). The inside
/// view: a leader may still answer duck (its lease or no-op pending), so
/// status shows `NodeRole`, and a member's part in the membership is
/// `MemberRole`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RaftRole {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks for pre-votes before bumping its term (PreVote).
    PreCandidate,
    /// Campaigns in a new term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// The node's own record of its role: [`RaftRole`] (what it reports) plus
/// what only that role keeps. A leader's state exists exactly while it
/// leads, so the two cannot disagree.
#[derive(Debug)]
pub(crate) enum RoleState {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks for pre-votes.
    PreCandidate,
    /// Campaigns in a new term.
    Candidate,
    /// Leads its term, with its progress, lease and pending work.
    Leader(Box<LeaderState>),
}

/// Why a node campaigns (etcd's `CampaignType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Campaign {
    /// Its election timer ran out and a majority granted its pre-vote.
    Election,
    /// The old leader handed over with `TimeoutNow`: it has stopped
    /// answering goose and waited out its promises, so voters hold no
    /// stickiness against this campaign.
    Transfer,
}

/// Replication progress of one peer, kept by the leader.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Progress {
    /// The next index to send.
    pub(crate) next_index: LogIndex,
    /// The highest index known to be replicated on the peer.
    pub(crate) match_index: LogIndex,
    /// The identity the peer's replies carry (unknown until the first one);
    /// the leader binds it in the membership (`maybe_bind_identities`).
    pub(crate) identity: Identity,
    /// What the peer's latest reply said of its eligibility (`None` until
    /// it has replied).
    pub(crate) candidacy: Option<Candidacy>,
    /// The first round whose replies count: replies to earlier rounds were
    /// sent to whatever held the id before this progress began (a member
    /// removed, wiped and added back), so they may come from another data
    /// directory and say nothing of this one (simulator seed 7904531).
    pub(crate) since_round: Round,
}

impl Progress {
    /// The progress of a peer the leader knows nothing about yet, counting
    /// replies from `since_round` on.
    pub(crate) fn fresh(next_index: LogIndex, since_round: Round) -> Progress {
        Progress {
            next_index,
            match_index: LogIndex(0),
            identity: Identity::UNKNOWN,
            candidacy: None,
            since_round,
        }
    }

    /// Moves back after a rejection whose hint is the follower's last
    /// index, and says whether to resend at once: only when the probe moved,
    /// so a peer that keeps rejecting gets one append per heartbeat, not a
    /// storm. A hint below the known match index means the peer lost
    /// entries it had acknowledged (a disk that lied, a restored copy): its
    /// match index drops too, so replication can repair it; commit never
    /// goes back, since the commit index never decreases.
    pub(crate) fn back_off(&mut self, hint: LogIndex) -> bool {
        let before = self.next_index;
        if hint < self.match_index {
            self.match_index = hint;
        }
        let probe = hint.next().min(self.next_index.prev());
        self.next_index = probe.max(self.match_index.next());
        self.next_index < before
    }
}

/// Input from peers that this node refused and counted: evidence of a
/// misconfigured or faulty peer, never a reason to panic (design.md §2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerFaults {
    /// Messages from (or meant for) another identity than the member's
    /// current one: a rebuilt data directory, or another process under its id.
    pub wrong_identity: u64,
    /// Appends that would have replaced an entry this node knows is
    /// committed: a safety violation elsewhere (a copied or restored data
    /// directory, a disk that lost writes, a bug).
    pub contradicts_committed: u64,
    /// Appends and snapshots no correct leader sends (entries out of order
    /// or from a future term, a malformed membership): dropped whole.
    pub malformed: u64,
}

/// A membership change the leader accepted and has not yet settled.
#[derive(Clone, Debug)]
pub(crate) struct PendingChange {
    pub(crate) id: ProposalId,
    /// The index of the membership entry that carries the change.
    pub(crate) index: LogIndex,
    /// For an added voter: settled only when it is a committed voter.
    pub(crate) promote: Option<NodeId>,
}

/// A handoff under way (dissertation §3.10, with the promise wait of design.md §2).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Handoff {
    /// The caller's id, if a caller waits for it.
    pub(crate) id: Option<ProposalId>,
    /// The requested target; `None` picks the most up-to-date voter.
    pub(crate) target: Option<NodeId>,
    pub(crate) stage: HandoffStage,
    /// Why it started.
    pub(crate) reason: HandoffReason,
}

/// Where a handoff stands (design.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandoffStage {
    /// Waiting for the driver's `Input::Release`; at `by` the node gives the
    /// role up without TimeoutNow.
    Releasing {
        /// When to stop waiting.
        by: Timestamp,
    },
    /// Released: TimeoutNow once every promise has run out and the target
    /// has caught up; at `by` the handoff times out and the node answers
    /// goose again.
    Transferring {
        /// When to give up.
        by: Timestamp,
    },
}

impl HandoffStage {
    fn deadline(self) -> Timestamp {
        match self {
            HandoffStage::Releasing { by } | HandoffStage::Transferring { by } => by,
        }
    }
}

/// What only a leader keeps.
#[derive(Clone, Debug)]
pub(crate) struct LeaderState {
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// The index of the membership `progress` was last kept in step with.
    pub(crate) progress_membership: LogIndex,
    pub(crate) lease: LeaseTracker,
    /// When the latest round a majority acknowledged was sent (kept current
    /// by `refresh_lease`, so a goose answer costs no work).
    pub(crate) lease_start: Option<Timestamp>,
    /// The index of this term's no-op (condition 2 of the goose rule).
    pub(crate) noop_index: LogIndex,
    pub(crate) elected_at: Timestamp,
    pub(crate) next_heartbeat: Timestamp,
    pub(crate) pending: Option<PendingChange>,
    /// The latest membership's index and the first round started after
    /// it committed: removed members are told until they acknowledge it.
    pub(crate) farewell: Option<(LogIndex, Round)>,
    pub(crate) handoff: Option<Handoff>,
}

/// One Raft node with goose leases. See the module documentation.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: Config,
    /// The identity of this node's data directory.
    pub(crate) identity: Identity,
    pub(crate) rng: fastrand::Rng,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) log: RaftLog,
    pub(crate) commit_index: LogIndex,
    pub(crate) role: RoleState,
    pub(crate) leader: Option<NodeId>,
    /// Until when this node grants no vote and starts no election: the
    /// latest `heard_at + lease_guard` over the leaders it has heard (itself
    /// included), and its start plus the persisted guard (design.md §2).
    pub(crate) vote_guard_until: Timestamp,
    /// The guard a restart must wait out (persisted in the hard state).
    pub(crate) lease_guard: Duration,
    /// Input refused from peers.
    pub(crate) peer_faults: PeerFaults,
    pub(crate) election_deadline: Timestamp,
    /// Grants received in the current (pre-)campaign.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    /// The furthest promise this node has given (its own clock).
    pub(crate) promise_until: Timestamp,
    /// Whether this node was ever a member (so leaving the membership means removal).
    pub(crate) was_member: bool,
    /// The highest commit index a leader has told us (to prefer up-to-date candidates).
    pub(crate) leader_commit_seen: LogIndex,
    /// The driver's half of eligibility: healthy and not drained
    /// ([`Input::Eligibility`]).
    pub(crate) eligible_input: bool,
    /// Since when this node has been eligible (a voter, healthy, not
    /// drained) without a break, as of its last step.
    pub(crate) eligible_since: Option<Timestamp>,
    /// Until when this node, as leader, starts no preemption: one per
    /// preempt delay (and at least two election timeouts), across terms,
    /// so a preempter that cannot win (a partial partition) cannot make
    /// the goose flap.
    pub(crate) preempt_quiet_until: Timestamp,
    // What the last step reported, so transitions become events.
    pub(crate) reported_goose: bool,
    reported_leader: Option<NodeId>,
    reported_removed: bool,
    persisted_hard_state: HardState,
    pub(crate) ready: Ready,
}

impl Node {
    /// Builds a node from what it found on disk. The node behaves as if it
    /// had just heard from a leader: it grants no vote for
    /// `election_timeout_min`, or the longer lease guard it persisted, after
    /// `now` (design.md §2), whatever its timings were before the restart.
    pub fn new(
        config: Config,
        state: PersistedState,
        rng_seed: u64,
        now: Timestamp,
    ) -> Result<Node, ConfigError> {
        config.validate()?;
        let log = RaftLog::new(state.snapshot, state.entries);
        // A node that finds itself in any membership it holds has been a
        // member, so its absence from the latest one means removal.
        let own = |index: LogIndex, membership: &Membership| {
            counts_as_membership(index, membership, config.id, state.identity)
        };
        let in_snapshot = own(log.snapshot.index, &log.snapshot.membership);
        let was_member = in_snapshot
            || log.entries.iter().any(|entry| match &entry.payload {
                EntryPayload::Membership(membership) => own(entry.index, membership),
                EntryPayload::NoOp => false,
            });
        let commit_index = log.snapshot.index;
        let lease_guard = state.hard_state.lease_guard.min(lease_guard_max());
        let mut node = Node {
            identity: state.identity,
            rng: fastrand::Rng::with_seed(rng_seed),
            term: state.hard_state.term,
            vote: state.hard_state.vote,
            persisted_hard_state: state.hard_state,
            log,
            commit_index,
            role: RoleState::Follower,
            leader: None,
            vote_guard_until: now.add(config.election_timeout_min.max(lease_guard)),
            lease_guard,
            peer_faults: PeerFaults::default(),
            election_deadline: now,
            votes: BTreeMap::new(),
            promise_until: Timestamp(0),
            was_member,
            leader_commit_seen: commit_index,
            eligible_input: true,
            eligible_since: None,
            preempt_quiet_until: now,
            reported_goose: false,
            reported_leader: None,
            reported_removed: false,
            ready: Ready::default(),
            config,
        };
        node.reset_election_deadline(now);
        Ok(node)
    }

    /// The one entry point: feeds `input` at local time `now` and returns
    /// what the driver must do, in order.
    pub fn step(&mut self, now: Timestamp, input: Input) -> Ready {
        let commit_before = self.commit_index;
        match input {
            Input::Receive(message) => self.on_message(now, message),
            Input::Tick => {}
            Input::Propose { id, change } => self.on_propose(now, id, change),
            Input::Handoff { id, target } => self.on_handoff_request(now, id, target),
            Input::Release { stopped } => self.on_release(now, stopped),
            Input::Eligibility { eligible } => self.on_eligibility(now, eligible),
        }
        self.on_tick(now);
        self.track_eligible_since(now);
        assert!(
            self.commit_index >= commit_before,
            "the commit index went back from {commit_before:?} to {:?}",
            self.commit_index
        );
        self.finish_step(now)
    }

    /// Routes a received message to its handler, which takes the message's
    /// own struct (design.md §2 for the identity check).
    fn on_message(&mut self, now: Timestamp, message: Message) {
        if message.to != self.config.id || message.from == self.config.id {
            return; // Misaddressed: the transport should have dropped it.
        }
        // A member is its id plus its identity (design.md §2): a message from
        // another data directory under a member's id, or meant for another
        // incarnation of this one, is dropped and counted.
        //
        // An append or snapshot from an id the latest membership lacks is
        // not judged by the membership before it: that id may have been
        // removed, rebuilt and added back under a new identity in entries
        // this node has yet to receive, and only its leader can send them
        // (simulator seed 8042235). Following it is safe: a leader's
        // authority comes from the votes of voters that bound its identity,
        // and votes and acknowledgements are still judged by every binding.
        let sender_known_as = self.identity_of(message.from);
        let carries_the_log = matches!(
            message.body,
            MessageBody::Append(_) | MessageBody::InstallSnapshot(_)
        ) && self.log.latest_membership().1.get(message.from).is_none();
        if !(carries_the_log || message.from_identity.matches(sender_known_as))
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
            MessageBody::PreVote(request) => self.on_pre_vote(now, from, term, request),
            MessageBody::PreVoteReply(reply) => self.on_pre_vote_reply(now, from, term, reply),
            MessageBody::RequestVote(request) => self.on_request_vote(now, from, term, request),
            MessageBody::RequestVoteReply(reply) => self.on_vote_reply(now, from, term, reply),
            MessageBody::Append(append) => self.on_append(now, (from, from_identity), term, append),
            MessageBody::AppendReply(reply) => {
                self.on_append_reply(now, (from, from_identity), term, reply)
            }
            MessageBody::InstallSnapshot(install) => {
                self.on_install_snapshot(now, (from, from_identity), term, install)
            }
            MessageBody::TimeoutNow => self.on_timeout_now(now, from, term),
        }
    }

    /// "Am I the goose?" at local time `now`, per the goose rule of
    /// design.md §2. Asking records a promise: a goose answer carries
    /// `lease_until`, and this node remembers the furthest promise it gave
    /// (`promise_until`) so that a handoff waits it out before another node
    /// may take over. That is why it takes `&mut self`.
    pub fn goose(&mut self, now: Timestamp) -> GooseAnswer {
        let promise = self.lease_until(now).map(|lease_until| {
            let promise = now.add(self.config.promise_max).min(lease_until);
            self.promise_until = self.promise_until.max(promise);
            promise
        });
        GooseAnswer {
            term: self.term,
            leader: self.leader,
            decided_at: now,
            lease_until: promise,
        }
    }

    /// What a `goosectl run` runner is told at `now`: a goose answer whose
    /// `lease_until` is the lease end itself, not a short promise. It is not
    /// recorded as a promise: a runner stops its job by that lease end on an
    /// involuntary loss (no other node can be elected before it), and a
    /// handoff sends TimeoutNow only after the driver's
    /// [`Input::Release`] says every runner confirmed its job stopped.
    pub fn runner_answer(&self, now: Timestamp) -> GooseAnswer {
        GooseAnswer {
            term: self.term,
            leader: self.leader,
            decided_at: now,
            lease_until: self.lease_until(now),
        }
    }

    /// Whether a handoff waits for [`Input::Release`]: the driver must
    /// stop what acts on the role and then say so.
    pub fn awaits_release(&self) -> bool {
        self.leader_state()
            .and_then(|leader| leader.handoff)
            .is_some_and(|handoff| matches!(handoff.stage, HandoffStage::Releasing { .. }))
    }

    /// While a handoff waits for [`Input::Release`]: the lease end, which
    /// this node still holds and renews, so a runner stopping its job may
    /// let it run (within its grace) until then. `None` otherwise, and
    /// while the lease has lapsed.
    pub fn releasing(&self, now: Timestamp) -> Option<Timestamp> {
        if !self.awaits_release() {
            return None;
        }
        self.lease_end(now)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The node's timing settings and id.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current term, vote and lease guard (what storage holds once the
    /// last `Ready` is durable).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            lease_guard: self.lease_guard,
        }
    }

    /// The identity of this node's data directory.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// What this node has refused from peers so far.
    pub fn peer_faults(&self) -> PeerFaults {
        self.peer_faults
    }

    /// The Raft role.
    pub fn raft_role(&self) -> RaftRole {
        match self.role {
            RoleState::Follower => RaftRole::Follower,
            RoleState::PreCandidate => RaftRole::PreCandidate,
            RoleState::Candidate => RaftRole::Candidate,
            RoleState::Leader(_) => RaftRole::Leader,
        }
    }

    /// Whether this node leads its term.
    pub(crate) fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }

    /// What this node keeps as leader, if it leads (for paths that run on
    /// any role, or after a step that may have ended leadership).
    pub(crate) fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            RoleState::Leader(state) => Some(state),
            _ => None,
        }
    }

    /// [`Node::leader_state`], mutably.
    pub(crate) fn leader_state_mut(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            RoleState::Leader(state) => Some(state),
            _ => None,
        }
    }

    /// What this node keeps as leader, on a leader-only path.
    ///
    /// # Panics
    /// If this node does not lead: the caller broke its precondition.
    pub(crate) fn leading(&self) -> &LeaderState {
        match &self.role {
            RoleState::Leader(state) => state,
            other => panic!("a leader-only path ran on a {other:?}"),
        }
    }

    /// [`Node::leading`], mutably.
    ///
    /// # Panics
    /// If this node does not lead: the caller broke its precondition.
    pub(crate) fn leading_mut(&mut self) -> &mut LeaderState {
        match &mut self.role {
            RoleState::Leader(state) => state,
            other => panic!("a leader-only path ran on a {other:?}"),
        }
    }

    /// The leader this node knows of in its term.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The highest index known to be committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    /// The index of the last entry.
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// The compacted prefix of the log.
    pub fn snapshot(&self) -> &Snapshot {
        &self.log.snapshot
    }

    /// The entries after the snapshot.
    pub fn entries(&self) -> &[Entry] {
        &self.log.entries
    }

    /// The latest membership (effective as soon as appended).
    pub fn membership(&self) -> &Membership {
        self.log.latest_membership().1
    }

    /// The membership in force at the commit index.
    pub fn committed_membership(&self) -> &Membership {
        self.log.membership_at(self.commit_index).1
    }

    /// Whether this node was a member and has been removed.
    pub fn is_removed(&self) -> bool {
        // Only a removal known to be committed counts: an uncommitted one may
        // still be truncated away by a new leader.
        self.was_member && !self.in_live_memberships(|member| member.is_some())
    }

    /// Whether this node is a voter in its latest membership.
    pub fn is_voter(&self) -> bool {
        self.me_in(self.membership())
            .is_some_and(|member| member.role == MemberRole::Voter)
    }

    /// This node's entry in `membership`: its id, with its identity (or one
    /// not yet bound). An entry of another data directory under this id is
    /// an earlier member, not this node.
    pub(crate) fn me_in<'a>(&self, membership: &'a Membership) -> Option<&'a Member> {
        membership
            .get(self.config.id)
            .filter(|member| member.identity.matches(self.identity))
    }

    /// The goose rule of design.md §2, without giving a promise: the lease
    /// end if this node may answer goose at `now`.
    fn lease_until(&self, now: Timestamp) -> Option<Timestamp> {
        let leader = self.leader_state()?;
        // A leader removed from the membership is handing over (condition 4),
        // and only an eligible node may be the goose (design.md §2).
        let handing_over = leader.handoff.is_some() || !self.is_voter() || !self.eligible_input;
        if handing_over {
            return None;
        }
        self.lease_end(now)
    }

    /// The end of the lease a leader holds at `now` once its own entry has
    /// committed, handing over or not.
    fn lease_end(&self, now: Timestamp) -> Option<Timestamp> {
        let leader = self.leader_state()?;
        if self.commit_index < leader.noop_index {
            return None;
        }
        let sent_at = leader.lease_start?;
        let lease_until = sent_at.add(self.config.lease_duration());
        (now < lease_until).then_some(lease_until)
    }

    /// Recomputes the lease start after an acknowledgement, a new round or
    /// a membership change.
    pub(crate) fn refresh_lease(&mut self) {
        let id = self.config.id;
        let membership = self.log.latest_membership().1;
        if let RoleState::Leader(state) = &mut self.role {
            state.lease_start = state.lease.quorum_sent_at(membership, id);
        }
    }

    /// Time-driven work: elections, heartbeats, CheckQuorum, handoffs.
    fn on_tick(&mut self, now: Timestamp) {
        match self.raft_role() {
            RaftRole::Leader => self.tick_leader(now),
            RaftRole::Follower | RaftRole::PreCandidate | RaftRole::Candidate => {
                if now >= self.election_deadline && self.can_campaign() {
                    self.become_pre_candidate(now);
                }
            }
        }
    }

    /// A voter of its latest membership campaigns; so does a voter whose
    /// removal is not yet known to be committed, since the cluster may still
    /// need it until then (dissertation §4.2.2).
    pub(crate) fn can_campaign(&self) -> bool {
        !self.id_taken()
            && self
                .in_live_memberships(|member| member.is_some_and(|m| m.role == MemberRole::Voter))
    }

    /// Whether the latest membership gives this node's id to another data
    /// directory: this node is then a rebuilt member catching up through its
    /// predecessor's history (or an impostor), not that member, and it
    /// neither campaigns nor votes until a membership names it (found by
    /// simulator seed 34533: a rebuilt node, restarted mid catch-up, took
    /// its predecessor's place as sole voter and elected itself).
    pub(crate) fn id_taken(&self) -> bool {
        self.membership()
            .get(self.config.id)
            .is_some_and(|member| member.identity.is_known() && member.identity != self.identity)
    }

    /// Whether `holds` is true of this node's entry in any membership
    /// that may still be in force: the one committed (as far as this node
    /// knows) and every later one in its log.
    pub(crate) fn in_live_memberships(&self, holds: impl Fn(Option<&Member>) -> bool) -> bool {
        let (committed_index, committed) = self.log.membership_at(self.commit_index);
        holds(self.me_in(committed))
            || self
                .log
                .entries_from(committed_index.next(), usize::MAX)
                .iter()
                .any(|entry| match &entry.payload {
                    EntryPayload::Membership(membership) => holds(self.me_in(membership)),
                    EntryPayload::NoOp => false,
                })
    }

    /// Whether the vote guard still runs: a leader was heard from less than
    /// its lease guard ago (a leader hears from itself).
    pub(crate) fn heard_from_leader_recently(&self, now: Timestamp) -> bool {
        self.is_leader() || now < self.vote_guard_until
    }

    /// This node heard a leader (itself included) whose lease is computed
    /// from `lease_guard`: grant no vote and start no election for the longer
    /// of that and this node's own timeout (design.md §2, one timing). The
    /// guard a restart waits out is raised at once (persisted before the
    /// acknowledgement leaves), and lowered only once this guard outlasts
    /// every earlier one, so a restart never shortens a running guard.
    pub(crate) fn hear_leader(&mut self, now: Timestamp, lease_guard: Duration) {
        let guard = lease_guard
            .min(lease_guard_max())
            .max(self.config.election_timeout_min);
        let until = now.add(guard);
        if guard > self.lease_guard || until >= self.vote_guard_until {
            self.lease_guard = guard;
        }
        self.vote_guard_until = self.vote_guard_until.max(until);
    }

    pub(crate) fn reset_election_deadline(&mut self, now: Timestamp) {
        let mut delay = self.campaign_delay();
        // Prefer the most up-to-date log: a node that lags what the leader
        // said was committed waits one more jitter span.
        if self.log.last_index() < self.leader_commit_seen {
            delay += self.config.election_jitter_max;
        }
        let earliest = now
            .add(self.config.election_timeout_min)
            .max(self.vote_guard_until);
        self.election_deadline = earliest.add(delay);
    }

    /// Queues a message for sending after this step's persist.
    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_in_term(to, self.term, body);
    }

    /// Queues a message carrying `term` (a pre-vote's is the next term).
    pub(crate) fn send_in_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let to_identity = self.identity_of(to);
        self.send_to(to, to_identity, term, body);
    }

    /// Queues the answer to a message from `to` under `to_identity`: it goes
    /// to the data directory that asked, which this node may not know yet.
    pub(crate) fn reply(&mut self, (to, to_identity): (NodeId, Identity), body: MessageBody) {
        self.send_to(to, to_identity, self.term, body);
    }

    fn send_to(&mut self, to: NodeId, to_identity: Identity, term: Term, body: MessageBody) {
        debug_assert_ne!(to, self.config.id, "a node never messages itself");
        let message = Message {
            from: self.config.id,
            from_identity: self.identity,
            to,
            to_identity,
            term,
            body,
        };
        self.ready.messages.push(message);
    }

    /// The identity this node knows `id` by: in its latest membership,
    /// else in the one before (a member being told of its removal).
    pub(crate) fn identity_of(&self, id: NodeId) -> Identity {
        let (index, latest) = self.log.latest_membership();
        latest
            .get(id)
            .or_else(|| self.log.membership_at(index.prev()).1.get(id))
            .map_or(Identity::UNKNOWN, |member| member.identity)
    }

    pub(crate) fn emit(&mut self, event: Event) {
        self.ready.events.push(event);
    }

    /// Appends an entry to the log and to this step's persist.
    pub(crate) fn append_entry(&mut self, entry: Entry) {
        self.ready.persist.entries.push(entry.clone());
        self.log.append(entry);
        self.on_membership_maybe_changed();
    }

    /// Drops a conflicting suffix from the log and from this step's persist.
    ///
    /// # Panics
    /// If `from` is committed: callers refuse such input first.
    pub(crate) fn truncate_log(&mut self, from: LogIndex) {
        assert!(
            from > self.commit_index,
            "a committed entry must never be truncated"
        );
        self.log.truncate_from(from);
        self.ready
            .persist
            .entries
            .retain(|entry| entry.index < from);
        let earliest = self
            .ready
            .persist
            .truncate_from
            .map_or(from, |t| t.min(from));
        self.ready.persist.truncate_from = Some(earliest);
        debug_assert!(
            self.log.last_index() < from && self.log.last_index() >= self.commit_index,
            "truncation keeps exactly the prefix below {from}"
        );
        self.on_membership_maybe_changed();
    }

    /// Keeps removal status and leader progress in step with the membership.
    pub(crate) fn on_membership_maybe_changed(&mut self) {
        let (index, latest) = self.log.latest_membership();
        if counts_as_membership(index, latest, self.config.id, self.identity) {
            self.was_member = true;
        }
        self.sync_progress();
    }

    pub(crate) fn set_term(&mut self, term: Term) {
        assert!(term >= self.term, "terms never go back");
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.promise_until = Timestamp(0);
        }
    }

    /// Steps down (or stays) as a follower of `term`, following `leader` if known.
    pub(crate) fn become_follower(&mut self, now: Timestamp, term: Term, leader: Option<NodeId>) {
        if self.is_leader() {
            self.abandon_leadership();
            // A leader counts as hearing from itself (design.md §2): its
            // lease and promises may still run, so however it steps down (a
            // higher term, CheckQuorum) it grants no vote for an election
            // timeout from now. Found by simulator seed 95312.
            self.hear_leader(now, self.config.election_timeout_min);
        }
        self.set_term(term);
        self.role = RoleState::Follower;
        self.leader = leader;
        self.votes.clear();
        self.reset_election_deadline(now);
    }

    /// Settles every caller waiting on this leader as leadership ends.
    fn abandon_leadership(&mut self) {
        let RoleState::Leader(state) = std::mem::replace(&mut self.role, RoleState::Follower)
        else {
            return;
        };
        if let Some(pending) = state.pending {
            self.emit(Event::Rejected {
                id: pending.id,
                reason: RejectReason::LeadershipLost,
            });
        }
        if let Some(Handoff { id: Some(id), .. }) = state.handoff {
            self.emit(Event::Rejected {
                id,
                reason: RejectReason::LeadershipLost,
            });
        }
    }

    pub(crate) fn become_pre_candidate(&mut self, now: Timestamp) {
        debug_assert!(self.can_campaign());
        self.role = RoleState::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        // A pre-vote round that gathers no majority is retried soon: it
        // changes no term, so retrying costs only a few datagrams.
        let retry = self.config.heartbeat_interval;
        let jitter_ns = u64::try_from(self.config.election_jitter_max.as_nanos()).unwrap_or(0);
        self.election_deadline = now.add(retry + Duration::from_nanos(self.rng.u64(0..=jitter_ns)));
        let peers: Vec<NodeId> = self.other_voters();
        let body = MessageBody::PreVote(PreVote {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
        });
        for peer in peers {
            self.send_in_term(peer, self.term.next(), body.clone());
        }
        self.maybe_win_pre_vote(now);
    }

    pub(crate) fn become_candidate(&mut self, now: Timestamp, campaign: Campaign) {
        debug_assert!(self.can_campaign());
        let term = self.term.next();
        self.set_term(term);
        self.vote = Some(self.config.id);
        self.role = RoleState::Candidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        // A campaign that fails (a split vote) retries after a delay drawn
        // from half the timeout's span: wide enough that two candidates
        // rarely collide again, short enough not to double the failover.
        let half_ns = u64::try_from(self.config.election_timeout_min.as_nanos() / 2).unwrap_or(0);
        self.election_deadline = now.add(Duration::from_nanos(half_ns + self.rng.u64(0..=half_ns)));
        let body = MessageBody::RequestVote(RequestVote {
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            handoff: campaign == Campaign::Transfer,
        });
        for peer in self.other_voters() {
            self.send(peer, body.clone());
        }
        self.maybe_win_election(now);
    }

    pub(crate) fn become_leader(&mut self, now: Timestamp) {
        assert_eq!(
            self.raft_role(),
            RaftRole::Candidate,
            "only a candidate wins"
        );
        self.leader = Some(self.config.id);
        self.votes.clear();
        // Its own lease is computed from its timeout: a restart of this node
        // must wait that long too, whatever timings it restarts with.
        self.hear_leader(now, self.config.election_timeout_min);
        let noop_index = self.log.last_index().next();
        self.role = RoleState::Leader(Box::new(LeaderState {
            progress: BTreeMap::new(),
            progress_membership: LogIndex(0),
            lease: LeaseTracker::default(),
            lease_start: None,
            noop_index,
            elected_at: now,
            next_heartbeat: now,
            pending: None,
            farewell: None,
            handoff: None,
        }));
        self.sync_progress();
        self.append_entry(Entry {
            index: noop_index,
            term: self.term,
            payload: EntryPayload::NoOp,
        });
        self.maybe_commit(now);
        // Committing the no-op may already have handed over (a leader whose
        // removal its log holds committed).
        if self.is_leader() {
            self.broadcast_heartbeat(now);
        }
    }

    /// The voters of the latest membership other than this node.
    pub(crate) fn other_voters(&self) -> Vec<NodeId> {
        self.membership()
            .voters()
            .filter(|&id| id != self.config.id)
            .collect()
    }

    /// Collects this step's output: hard state, goose transitions, deadline.
    fn finish_step(&mut self, now: Timestamp) -> Ready {
        let hard_state = self.hard_state();
        if hard_state != self.persisted_hard_state {
            self.ready.persist.hard_state = Some(hard_state);
            self.persisted_hard_state = hard_state;
        }
        self.note_unbound_membership();
        self.report_transitions(now);
        self.ready.next_deadline = self.next_deadline(now);
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        std::mem::take(&mut self.ready)
    }

    /// An entry that binds no identity (an observer's, a joining
    /// learner's) cannot tell this node from an earlier data directory
    /// under its id: a rebuilt observer catching up through its
    /// predecessor's history would take that history's removal for its
    /// own. Such an entry makes this node a member (so that it later says
    /// it was removed) only once it has caught up with what its leader said
    /// was committed and the membership committed then names it. A restart
    /// forgets it until then.
    fn note_unbound_membership(&mut self) {
        if self.was_member || self.leader.is_none() || self.commit_index < self.leader_commit_seen {
            return;
        }
        let named = self
            .committed_membership()
            .get(self.config.id)
            .is_some_and(|member| !member.identity.is_known());
        if named {
            self.was_member = true;
        }
    }

    fn report_transitions(&mut self, now: Timestamp) {
        let goose = self.lease_until(now).is_some();
        if goose != self.reported_goose {
            self.reported_goose = goose;
            let event = if goose {
                Event::BecameGoose { term: self.term }
            } else {
                Event::BecameDuck {
                    term: self.term,
                    leader: self.leader,
                }
            };
            self.emit(event);
        }
        if self.leader != self.reported_leader {
            self.reported_leader = self.leader;
            self.emit(Event::LeaderChanged {
                term: self.term,
                leader: self.leader,
            });
        }
        // Judged on the state at the end of the step (a catching-up node may
        // pass through old memberships without it), and a removed leader
        // says so only once it has handed over.
        let removed = self.is_removed() && !self.is_leader();
        if removed != self.reported_removed {
            self.reported_removed = removed;
            if removed {
                self.emit(Event::Removed);
            }
        }
    }

    /// The latest instant at which the driver must call `step` again.
    fn next_deadline(&self, now: Timestamp) -> Timestamp {
        let idle = now.add(self.config.election_timeout_min);
        let Some(leader) = self.leader_state() else {
            return if self.can_campaign() {
                self.election_deadline.max(now)
            } else {
                idle
            };
        };
        let mut deadline = leader.next_heartbeat;
        if let Some(lease_until) = self.lease_until(now) {
            deadline = deadline.min(lease_until);
        }
        if let Some(handoff) = leader.handoff {
            deadline = deadline.min(handoff.stage.deadline());
            // Wake when the last promise runs out; after that, replies and
            // heartbeats drive the handoff (waking at `now` would spin).
            if self.promise_until > now {
                deadline = deadline.min(self.promise_until);
            }
        }
        deadline.max(now)
    }

    /// Broken invariants are bugs: panic with a clear message.
    fn check_invariants(&self) {
        self.log.check();
        assert!(
            self.commit_index >= self.log.snapshot.index,
            "commit index below snapshot"
        );
        assert!(
            self.commit_index <= self.log.last_index(),
            "commit index past the log"
        );
        if let Some(last) = self.log.entries.last() {
            assert!(last.term <= self.term, "an entry from a future term");
        }
        assert!(
            self.log.latest_membership().1.is_well_formed(),
            "malformed membership"
        );
        match &self.role {
            RoleState::Leader(state) => {
                assert_eq!(self.vote, Some(self.config.id), "a leader voted for itself");
                assert_eq!(self.leader, Some(self.config.id));
                assert!(state.noop_index <= self.log.last_index());
                let lease_start = state
                    .lease
                    .quorum_sent_at(self.membership(), self.config.id);
                assert_eq!(
                    state.lease_start, lease_start,
                    "the cached lease start is current"
                );
                if state.noop_index > self.log.snapshot.index {
                    assert_eq!(self.log.term_at(state.noop_index), Some(self.term));
                }
                for (id, progress) in &state.progress {
                    assert!(
                        progress.match_index <= self.log.last_index(),
                        "node {id} is known to match past the leader's log"
                    );
                    assert!(
                        progress.next_index > progress.match_index,
                        "node {id} would be sent what it already has"
                    );
                }
            }
            RoleState::Candidate => {
                assert_eq!(
                    self.vote,
                    Some(self.config.id),
                    "a candidate voted for itself"
                );
            }
            RoleState::Follower | RoleState::PreCandidate => {}
        }
        let limit = goose_common::limits::MESSAGES_PER_STEP_MAX;
        assert!(
            self.ready.messages.len() <= limit,
            "too many messages in one step"
        );
    }
}

/// The longest lease guard this node waits on anyone's word.
pub(crate) fn lease_guard_max() -> Duration {
    Duration::from_millis(ELECTION_TIMEOUT_MS_MAX)
}

/// Whether `membership` (at `index`) shows node `id` of data directory
/// `identity` as a member, for telling removal: its entry bound to that
/// identity, or any entry in the bootstrap membership (index 0), whose
/// identities are bound later. A rebuilt node catching up through the log
/// of an earlier member under its id does not take that history as its own.
/// (An entry that binds no identity counts only once caught up: see
/// `Node::note_unbound_membership`.)
fn counts_as_membership(
    index: LogIndex,
    membership: &Membership,
    id: NodeId,
    identity: Identity,
) -> bool {
    membership
        .get(id)
        .is_some_and(|member| member.identity == identity || index == LogIndex(0))
}
