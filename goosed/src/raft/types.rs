//! The values that cross the boundary of the core: settings, inputs,
//! the `Ready` output and its parts, goose answers and events.

use goose_common::SocketAddr;
use goose_common::{
    Entry, HardState, Identity, LogIndex, Membership, Message, NodeId, Snapshot, Term, Timestamp,
};
use std::time::Duration;

/// The priority of a node that sets none.
pub const PRIORITY_DEFAULT: u8 = 100;

/// Timing and identity of one node. All durations are on the node's own clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id.
    pub id: NodeId,
    /// How often a leader sends a heartbeat round (default 50 ms).
    pub heartbeat_interval: Duration,
    /// `election_timeout_min` of design.md §2 (default 300 ms).
    pub election_timeout_min: Duration,
    /// The span over which followers' election timeouts are spread. Small
    /// (a tenth of the timeout by default) so failover approaches the floor.
    pub election_jitter_max: Duration,
    /// Whether followers take turns within that span, one slot each in the
    /// order of their ids (with a little randomness inside the slot), so
    /// that two rarely campaign at once after a crash (a split vote costs
    /// half an election timeout or more); `false` draws uniformly from the
    /// span as plain Raft does (kept for comparison in the benchmarks).
    pub campaign_slots: bool,
    /// `rho` of design.md §2, in parts per million (default 1000).
    pub clock_drift_ppm: u32,
    /// `margin` of design.md §2 (default 5 ms).
    pub lease_margin: Duration,
    /// The longest promise a goose answer makes (default 10 ms).
    pub promise_max: Duration,
    /// Compact the log once it holds this many entries past the snapshot.
    pub compaction_threshold: usize,
    /// This node's preference as goose, 0-255 (default 100): a higher one
    /// campaigns sooner and may preempt a goose of lower priority.
    pub priority: u8,
    /// Whether this node, once eligible for `preempt_delay`, asks a goose
    /// of lower priority to hand over to it (keepalived's `nopreempt` is
    /// `false`).
    pub preempt: bool,
    /// How long this node must have been eligible without a break before
    /// it preempts (default 5 s), so a flapping node never makes the goose
    /// flap.
    pub preempt_delay: Duration,
}

/// Why a node's settings were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The node id is 0.
    #[error("node id must be greater than 0")]
    InvalidId,
    /// The timings do not leave room for a lease.
    #[error("invalid timing: {0}")]
    Timing(String),
}

impl Config {
    /// The defaults of design.md §8 for node `id`.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(300),
            election_jitter_max: Duration::from_millis(30),
            campaign_slots: true,
            clock_drift_ppm: 1000,
            lease_margin: Duration::from_millis(5),
            promise_max: Duration::from_millis(10),
            compaction_threshold: goose_common::limits::LOG_ENTRIES_BEFORE_COMPACTION,
            priority: PRIORITY_DEFAULT,
            preempt: true,
            preempt_delay: Duration::from_secs(5),
        }
    }

    /// The fast profile for quiet LANs: heartbeat 10 ms, election timeout 50 ms.
    pub fn fast(id: NodeId) -> Config {
        Config {
            heartbeat_interval: Duration::from_millis(10),
            election_timeout_min: Duration::from_millis(50),
            election_jitter_max: Duration::from_millis(5),
            lease_margin: Duration::from_millis(2),
            promise_max: Duration::from_millis(5),
            ..Config::new(id)
        }
    }

    /// `lease_duration = election_timeout_min * (1 - 2 rho) - margin`.
    pub fn lease_duration(&self) -> Duration {
        let timeout_ns = self.election_timeout_min.as_nanos();
        let shrunk_ns = timeout_ns * (1_000_000 - 2 * u128::from(self.clock_drift_ppm)) / 1_000_000;
        let lease_ns = shrunk_ns.saturating_sub(self.lease_margin.as_nanos());
        Duration::from_nanos(u64::try_from(lease_ns).unwrap_or(u64::MAX))
    }

    /// Checks the relations the lease and the timers rely on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.id.is_valid() {
            return Err(ConfigError::InvalidId);
        }
        let timing = |text: &str| Err(ConfigError::Timing(text.to_string()));
        if self.heartbeat_interval.is_zero() {
            return timing("heartbeat interval must be positive");
        }
        if self.election_timeout_min < 2 * self.heartbeat_interval {
            return timing("election timeout must be at least twice the heartbeat interval");
        }
        let rounds_per_timeout =
            self.election_timeout_min.as_nanos() / self.heartbeat_interval.as_nanos();
        if rounds_per_timeout * 2 > goose_common::limits::LEASE_ROUNDS_REMEMBERED as u128 {
            return timing("election timeout is too many heartbeat intervals long (at most 32)");
        }
        if self.clock_drift_ppm >= 100_000 {
            return timing("clock drift bound must be below 10%");
        }
        if self.lease_duration() <= self.promise_max {
            return timing(
                "the lease (election timeout less drift and margin) must exceed the promise",
            );
        }
        if self.compaction_threshold == 0 {
            return timing("the compaction threshold must be positive");
        }
        let timeout_max = Duration::from_millis(goose_common::limits::ELECTION_TIMEOUT_MS_MAX);
        if self.election_timeout_min > timeout_max {
            return timing("election timeout must be at most 60 s");
        }
        if self.election_jitter_max > self.election_timeout_min {
            return timing("election jitter must not exceed the election timeout");
        }
        Ok(())
    }
}

/// What a node finds on its disk at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersistedState {
    /// The identity of the data directory, drawn once when it was created.
    pub identity: Identity,
    /// The durable term and vote.
    pub hard_state: HardState,
    /// The compacted prefix (index 0 and an empty membership when none).
    pub snapshot: Snapshot,
    /// The entries after the snapshot, contiguous from `snapshot.index + 1`.
    pub entries: Vec<Entry>,
}

impl PersistedState {
    /// The state of a brand-new cluster member given its initial voters:
    /// a snapshot at index 0 holding that membership.
    pub fn bootstrap(identity: Identity, membership: Membership) -> PersistedState {
        PersistedState {
            identity,
            hard_state: HardState::default(),
            snapshot: Snapshot {
                index: LogIndex(0),
                term: Term(0),
                membership,
            },
            entries: Vec::new(),
        }
    }

    /// Whether nothing was ever persisted (a fresh data directory; its
    /// identity does not count).
    pub fn is_empty(&self) -> bool {
        self.hard_state == HardState::default()
            && self.snapshot == Snapshot::default()
            && self.entries.is_empty()
    }

    /// The last index of the log (the snapshot's when there are no entries).
    pub fn last_index(&self) -> LogIndex {
        self.entries
            .last()
            .map_or(self.snapshot.index, |entry| entry.index)
    }

    /// Applies `persist` exactly as durable storage must: the reference
    /// semantics of [`Persist`], used by the in-memory storage, the
    /// simulator and the disk storage's model tests.
    ///
    /// # Panics
    /// If `persist` breaks the contiguity of the log, which the core never does.
    pub fn apply(&mut self, persist: &Persist) {
        if let Some(snapshot) = &persist.snapshot {
            self.entries.retain(|entry| entry.index > snapshot.index);
            self.snapshot = snapshot.clone();
        }
        if let Some(from) = persist.truncate_from {
            self.entries.retain(|entry| entry.index < from);
        }
        for entry in &persist.entries {
            assert_eq!(
                entry.index,
                self.last_index().next(),
                "appended entries must be contiguous"
            );
            self.entries.push(entry.clone());
        }
        if let Some(hard_state) = persist.hard_state {
            self.hard_state = hard_state;
        }
        debug_assert!(self
            .entries
            .first()
            .is_none_or(|e| e.index == self.snapshot.index.next()));
    }
}

/// What must be made durable, in this order, before any message of the same
/// `Ready` is sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persist {
    /// A new snapshot: entries at or below its index are dropped.
    pub snapshot: Option<Snapshot>,
    /// Drop every entry at or above this index (a conflicting suffix, or the
    /// whole log when a snapshot from the leader replaces it).
    pub truncate_from: Option<LogIndex>,
    /// Entries to append after the (possibly truncated) log, contiguous.
    pub entries: Vec<Entry>,
    /// The new term and vote, if they changed.
    pub hard_state: Option<HardState>,
}

impl Persist {
    /// Whether there is nothing to make durable.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.truncate_from.is_none()
            && self.entries.is_empty()
            && self.hard_state.is_none()
    }
}

/// A caller-chosen number that ties a proposal (or a handoff request) to
/// the event that settles it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId(pub u64);

impl std::fmt::Display for ProposalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A single-server membership change (dissertation ch. 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a node as a learner, then promote it to voter once it has caught
    /// up; settled when the promotion commits.
    AddVoter {
        /// The new node's id.
        id: NodeId,
        /// Its UDP address.
        addr: SocketAddr,
    },
    /// Add a node that stays a learner.
    AddLearner {
        /// The new node's id.
        id: NodeId,
        /// Its UDP address.
        addr: SocketAddr,
    },
    /// Remove a node (the leader itself included: it hands over afterwards).
    Remove {
        /// The id to remove.
        id: NodeId,
    },
    /// Make a learner (an observer) a voter: it becomes a joining learner,
    /// catches up, and is promoted as an added voter is; settled when the
    /// promotion commits.
    Promote {
        /// The observer's id.
        id: NodeId,
    },
    /// Make a voter an observer (the leader itself included: it stops
    /// answering goose at once and hands over once the change commits, as
    /// a removed leader does). Its identity is no longer bound.
    Demote {
        /// The voter's id.
        id: NodeId,
    },
}

/// Something that happens to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A message arrived.
    Receive(Message),
    /// A deadline passed (or the caller just wants the core to look at the clock).
    Tick,
    /// An operator asks for a membership change.
    Propose {
        /// Echoed in the event that settles the proposal.
        id: ProposalId,
        /// The change.
        change: MembershipChange,
    },
    /// An operator (or SIGTERM) asks the goose to hand over.
    Handoff {
        /// Echoed in the event that settles the request.
        id: ProposalId,
        /// The voter to hand to; `None` picks the most up-to-date one.
        target: Option<NodeId>,
    },
    /// During a handoff, what acts on the role (runners, the `on_duck`
    /// hook) has been told to stop (design.md §7). `stopped`: all of it
    /// confirmed it has, so `TimeoutNow` may follow once every promise has
    /// run out. Otherwise something did not confirm in time: the node
    /// gives the role up without `TimeoutNow` and its lease runs out.
    Release {
        /// Whether everything acting on the role confirmed it stopped.
        stopped: bool,
    },
    /// The local half of eligibility changed (design.md §2): `eligible`
    /// when the health check passes (or there is none) and no operator
    /// drained the node. An ineligible node neither campaigns nor accepts
    /// a transfer, and an ineligible goose hands over; it still votes and
    /// acknowledges.
    Eligibility {
        /// Healthy and not drained.
        eligible: bool,
    },
}

/// Why a handoff started (for `GOOSE_REASON`, design.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoffReason {
    /// A caller asked ([`Input::Handoff`]: step-down, SIGTERM).
    Requested,
    /// The leader's own removal committed.
    Removed,
    /// The leader is no longer eligible (unhealthy or drained).
    Ineligible,
    /// An eligible voter of higher priority asked to lead.
    Preempted,
}

/// Why a proposal or handoff was refused or abandoned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// This node is not the leader; the caller should ask the leader.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<NodeId>,
    },
    /// The leader has not yet committed an entry of its own term (the 2015 fix).
    #[error("the leader has not yet committed an entry of its term; try again shortly")]
    NotReady,
    /// Another change is still in flight.
    #[error("another membership change is in progress")]
    ChangeInProgress,
    /// The id is already a member.
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    /// The address is already used by another member.
    #[error("address {0} is already used by a member")]
    DuplicateAddr(SocketAddr),
    /// The id is not a member.
    #[error("node {0} is not a member")]
    UnknownMember(NodeId),
    /// A limit of design.md §8 would be exceeded, or the last voter removed.
    #[error("limit: {0}")]
    Limit(String),
    /// Leadership was lost before the change settled; it may or may not commit.
    #[error("leadership was lost before the request settled")]
    LeadershipLost,
    /// A handoff is already under way.
    #[error("a handoff is already in progress")]
    HandoffInProgress,
    /// No voter can take over (the target is unknown, not a voter, or lagging).
    #[error("no voter can take over: {0}")]
    NoTarget(String),
    /// The handoff did not complete in time; the node answers goose again.
    #[error("the handoff timed out")]
    HandoffTimedOut,
    /// What acts on the role did not confirm it stopped in time: the node
    /// gave the role up without `TimeoutNow`, and another is elected once
    /// its lease has run out.
    #[error(
        "a runner or the on_duck hook did not confirm in time; stepped down without a handoff: \
         another node is elected once the lease runs out"
    )]
    NotReleased,
    /// The node id 0 or another invalid argument.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A node's answer to "am I the goose?" at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GooseAnswer {
    /// The node's current term: the fencing token.
    pub term: Term,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The instant (node's clock) at which the answer was decided.
    pub decided_at: Timestamp,
    /// For a goose, the promise: no other node answers goose before this
    /// instant (node's clock). `None` for a duck.
    pub lease_until: Option<Timestamp>,
}

impl GooseAnswer {
    /// Whether the answer is goose: it carries a promise.
    pub fn is_goose(&self) -> bool {
        self.lease_until.is_some()
    }
}

/// What happened during a step, for hooks, logs and waiting callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The node started answering goose.
    BecameGoose {
        /// The term (fencing token).
        term: Term,
    },
    /// The node stopped answering goose (or started, as a duck).
    BecameDuck {
        /// The node's term.
        term: Term,
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// The leader this node follows changed.
    LeaderChanged {
        /// The node's term.
        term: Term,
        /// The new leader, if known.
        leader: Option<NodeId>,
    },
    /// A membership entry committed.
    MembershipCommitted {
        /// Its index.
        index: LogIndex,
        /// The membership.
        membership: Membership,
    },
    /// A proposal or handoff settled successfully.
    Done {
        /// The caller's id.
        id: ProposalId,
    },
    /// A proposal or handoff was refused or abandoned.
    Rejected {
        /// The caller's id.
        id: ProposalId,
        /// Why.
        reason: RejectReason,
    },
    /// This node learnt that it is no longer a member and stops taking part.
    Removed,
    /// A peer sent an append that would replace an entry this node knows is
    /// committed. It was refused (and counted in `PeerFaults`); it is
    /// evidence of a safety violation elsewhere, worth an operator's look.
    ContradictsCommitted {
        /// The sender.
        from: NodeId,
        /// The first committed index it contradicted.
        index: LogIndex,
    },
}

/// Everything the driver must do after a step, in order: persist, then send,
/// then deliver events, then wake up at `next_deadline` (or earlier input).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// What to make durable before sending anything below.
    pub persist: Persist,
    /// The messages to send, only after `persist` is durable.
    pub messages: Vec<Message>,
    /// What happened.
    pub events: Vec<Event>,
    /// When to call `step` with `Input::Tick` at the latest.
    pub next_deadline: Timestamp,
}
