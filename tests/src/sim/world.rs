//! The simulated world: nodes with their clocks and disks, the network, and
//! one queue of timed events. Every event that changes anything is followed
//! by the checkers, including a goose question to every running node.

use super::checks::{raft_role_name, violation, Asked, Checker, Violation, SLOTS_MAX};
use super::clock::Clock;
use super::network::{sample_delay_ns, Links, NetworkParams, PartitionShape, NODES_MAX};
use super::trace::{InputSummary, MessageSummary, NodeSummary, Trace, TraceRecord, TraceWhat};
use super::Node;
use goose_common::{Identity, Membership, Message, NodeId, Term, Timestamp};
use goosed::raft::{
    Config, Event, GooseAnswer, Input, MembershipChange, PersistedState, ProposalId,
};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// The most messages a paused node's socket buffers; later ones are dropped.
pub const PAUSED_BACKLOG_MAX: usize = 1024;

/// The most events per node the simulator keeps for scenarios to inspect.
pub const EVENTS_KEPT_MAX: usize = 10_000;

/// The most goose changes kept for scenarios and benchmarks.
pub const GOOSE_CHANGES_KEPT_MAX: usize = 100_000;

/// The most steps a node may take without its clock advancing: more means
/// the core keeps asking to be woken up at an instant already past.
pub const STEPS_AT_ONE_INSTANT_MAX: u32 = 10_000;

/// The most steps in a row after which a node asks to be woken at or before
/// the current instant: more means it would spin in a real driver.
pub const PAST_DEADLINES_IN_A_ROW_MAX: u32 = 100;

/// The loopback address a node of the simulator is given.
pub fn node_addr(id: NodeId) -> SocketAddr {
    let port = 7700 + u16::try_from(id.0).expect("small node id");
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Everything that decides a simulation, apart from what a scenario does to it.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The one seed all randomness derives from.
    pub seed: u64,
    /// How many voters the cluster starts with (ids 1..=voters).
    pub voters: usize,
    /// The configuration every node gets (its id is replaced).
    pub node_config: Config,
    /// How the network delays, duplicates and reorders messages.
    pub network: NetworkParams,
    /// Whether each clock drifts by a random rate within `±clock_drift_ppm`.
    pub clock_drift: bool,
    /// Nodes start at random true instants within this spread.
    pub start_spread: Duration,
    /// How many trace records a failure prints.
    pub trace_records: usize,
    /// Print every trace record as it happens (`GOOSE_SIM_TRACE=1`).
    pub trace_to_stderr: bool,
    /// Keep the run's transcript for a golden file ([`Sim::transcript`]).
    pub transcript: bool,
    /// If set, extra goose checks at random instants this far apart on average.
    pub probe_interval: Option<Duration>,
    /// (h): once the world is calm (network whole, no loss, every node
    /// running), some node must answer goose within this bound. `None` turns
    /// the check off.
    pub liveness_bound: Option<Duration>,
    /// The deliberately broken checker of the replay test.
    pub goose_forbidden_after: Option<Duration>,
    /// A bound on the number of events of a run (a livelock guard).
    pub events_max: u64,
    /// The command that replays this run, printed with a failure.
    pub replay_command: String,
    /// How the simulated daemon releases a handoff.
    pub release: ReleasePolicy,
    /// (l): once the world is calm (and stays so), the goose must be an
    /// eligible voter no other eligible, preempting voter outranks, within
    /// this bound. `None` turns the check off.
    pub preference_bound: Option<Duration>,
    /// The priority, preemption and preempt delay of member `id`, at index
    /// `id - 1` (members past the end keep the node configuration's).
    pub priorities: Vec<(u8, bool, Duration)>,
}

/// How the simulated daemon answers a handoff's wait for
/// [`Input::Release`] (design.md §7): its runners confirm that their jobs
/// stopped (and `on_duck` ran) after a while, or one does not confirm and
/// the daemon gives up once its grace has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleasePolicy {
    /// A release comes within this long (exactly this long when no release
    /// is late or unconfirmed).
    pub prompt_max: Duration,
    /// Percent of releases that come late: after `prompt_max`, within `late_max`.
    pub late_percent: u32,
    /// Percent of releases that are not confirmed: a runner never answered,
    /// and the daemon says so after `prompt_max` to `late_max`.
    pub unconfirmed_percent: u32,
    /// See `late_percent`.
    pub late_max: Duration,
}

impl ReleasePolicy {
    /// Released at once (a daemon whose runners stop at once).
    pub fn prompt() -> ReleasePolicy {
        ReleasePolicy {
            prompt_max: Duration::from_micros(200),
            late_percent: 0,
            unconfirmed_percent: 0,
            late_max: Duration::from_micros(200),
        }
    }
}

impl SimConfig {
    /// A fault-free configuration: `voters` nodes with `node_config`, a
    /// quiet network, drifting clocks, liveness bound of ten election timeouts.
    pub fn new(seed: u64, voters: usize, node_config: Config) -> SimConfig {
        let liveness_bound = node_config.election_timeout_min * 10;
        SimConfig {
            seed,
            voters,
            node_config,
            network: NetworkParams::quiet(),
            clock_drift: true,
            start_spread: Duration::ZERO,
            trace_records: super::trace::TRACE_RECORDS_DEFAULT,
            trace_to_stderr: std::env::var("GOOSE_SIM_TRACE").is_ok_and(|v| v == "1"),
            transcript: false,
            probe_interval: None,
            liveness_bound: Some(liveness_bound),
            goose_forbidden_after: None,
            events_max: 50_000_000,
            replay_command: String::new(),
            release: ReleasePolicy::prompt(),
            preference_bound: None,
            priorities: Vec::new(),
        }
    }
}

/// A run that broke an invariant: where, what, and how to see it again.
#[derive(Clone, PartialEq, Eq)]
pub struct Failure {
    /// The seed of the run.
    pub seed: u64,
    /// The number of the event after which the checker failed.
    pub event_number: u64,
    /// The true time of that event, in nanoseconds.
    pub time_ns: u64,
    /// What broke.
    pub violation: Violation,
    /// The last trace records.
    pub trace: String,
    /// The command that replays the run.
    pub replay_command: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- trace (last records) ---")?;
        write!(f, "{}", self.trace)?;
        writeln!(
            f,
            "--- seed {} failed at event #{} (t = {:.6} s): {}",
            self.seed,
            self.event_number,
            self.time_ns as f64 / 1e9,
            self.violation
        )?;
        write!(f, "replay: {}", self.replay_command)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Counts of what happened in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SimStats {
    /// Events taken off the queue.
    pub events: u64,
    /// Steps of nodes.
    pub steps: u64,
    /// Messages the nodes sent.
    pub messages_sent: u64,
    /// Messages a node processed.
    pub messages_delivered: u64,
    /// Messages lost to partitions, loss, crashes or full buffers.
    pub messages_dropped: u64,
    /// Crashes.
    pub crashes: u64,
    /// Starts and restarts.
    pub starts: u64,
    /// Pauses.
    pub pauses: u64,
    /// Data directories wiped and rebuilt under their old id.
    pub rebuilds: u64,
    /// Restarts with other timings.
    pub retimed: u64,
    /// Impostors started under a member's id.
    pub impostors: u64,
    /// Partitions.
    pub partitions: u64,
    /// Membership changes proposed.
    pub proposals: u64,
    /// Proposals and handoffs that reported `Done`.
    pub done: u64,
    /// Proposals and handoffs that reported `Rejected`.
    pub rejected: u64,
    /// Handoffs asked for.
    pub handoffs: u64,
    /// Jobs started by the modelled `goosectl run` runners.
    pub jobs: u64,
    /// Handoffs released by the daemon (what acts on the role confirmed it stopped).
    pub releases: u64,
    /// Of which late.
    pub releases_late: u64,
    /// Releases not confirmed: the node gave the role up without TimeoutNow.
    pub releases_unconfirmed: u64,
    /// Goose questions asked.
    pub goose_questions: u64,
    /// True nanoseconds during which some node answered goose (between checks).
    pub goose_ns: u64,
    /// Calm periods whose liveness was checked and held.
    pub liveness_checks: u64,
    /// Distinct terms that had a leader.
    pub leader_terms: u64,
    /// Health checks that changed their verdict.
    pub health_changes: u64,
    /// Drains and undrains.
    pub drains: u64,
    /// Calm periods whose goose was checked against priorities (l).
    pub preference_checks: u64,
    /// Promotions of observers proposed (chaos).
    pub promotions: u64,
    /// Demotions of voters proposed (chaos).
    pub demotions: u64,
    /// Answers of observers checked by (m): nodes that are a voter in
    /// neither their latest nor their committed membership, naming a leader.
    pub observer_answers: u64,
}

/// A change in who answers goose, observed at a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GooseChange {
    /// True time of the check that saw the change, in nanoseconds.
    pub time_ns: u64,
    /// True time of the check before it, the last that saw the previous state.
    pub previous_seen_ns: u64,
    /// The goose and its term, if any.
    pub goose: Option<(NodeId, Term)>,
}

/// Something due at a true instant.
#[derive(Debug)]
pub(crate) enum Action {
    Deliver {
        from: usize,
        to: usize,
        incarnation: u32,
        message: Message,
    },
    Deadline {
        node: usize,
        incarnation: u32,
    },
    Start {
        node: usize,
        incarnation: u32,
        reboot: bool,
    },
    Resume {
        node: usize,
        incarnation: u32,
    },
    Heal {
        epoch: u64,
    },
    LossEnd {
        epoch: u64,
    },
    Probe,
    Liveness {
        epoch: u64,
    },
    Chaos,
    /// The operator's rebuild of a removed member under its old id: once
    /// its removal is committed, wipe its data directory (a new identity)
    /// and start it as a `--join` node; if the removal did not commit, a
    /// careful operator does not wipe, and it starts with its old data.
    Rebuild {
        node: usize,
        incarnation: u32,
    },
    /// The operator notices the impostor in slot `node` and stops it for good.
    Retire {
        node: usize,
    },
    /// The daemon in slot `node` releases its `release`-th handoff.
    Release {
        node: usize,
        incarnation: u32,
        release: u64,
        stopped: bool,
    },
    /// The daemon in slot `node` tells its core what health and drain
    /// allow now (queued while it is paused).
    Eligibility {
        node: usize,
        incarnation: u32,
    },
    /// The health check of slot `node` changes its verdict (a flap).
    HealthFlip {
        node: usize,
    },
    /// (l) for the calm period `epoch`, unless an operator's handoff
    /// started a later `round` of it.
    Preference {
        epoch: u64,
        round: u64,
    },
}

#[derive(Debug)]
struct Queued {
    time_ns: u64,
    sequence: u64,
    action: Action,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.time_ns, self.sequence) == (other.time_ns, other.sequence)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    /// Reversed, so that the max-heap pops the earliest (time, sequence).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time_ns, other.sequence).cmp(&(self.time_ns, self.sequence))
    }
}

/// One simulated process slot (a host): its clock, its disk and, while it
/// runs, its `Node`. Members hold slot `id - 1`'s place in
/// `Sim::member_slots`; an impostor is another process under a member's
/// id, with a data directory of its own.
pub(crate) struct SimNode {
    pub(crate) id: NodeId,
    /// Whether this is an impostor under a member's id.
    pub(crate) impostor: bool,
    /// An impostor the operator has stopped for good.
    pub(crate) retired: bool,
    pub(crate) config: Config,
    pub(crate) clock: Clock,
    /// An upper bound on the true length of a lease on `clock` (g).
    pub(crate) lease_window_ns: u64,
    pub(crate) durable: PersistedState,
    pub(crate) node: Option<Node>,
    pub(crate) paused: bool,
    backlog: VecDeque<Action>,
    /// Bumped at every crash: deliveries and deadlines of an older incarnation are void.
    pub(crate) incarnation: u32,
    desired_deadline_ns: Option<u64>,
    timer_ns: Option<u64>,
    last_step_local: Timestamp,
    steps_at_same_instant: u32,
    past_deadlines_in_a_row: u32,
    pub(crate) events: Vec<(u64, Event)>,
    /// Handoffs this slot has started releasing.
    releases: u64,
    /// The term of the handoff being released, if one is.
    releasing: Option<Term>,
    /// Whether its health check passes (a daemon's memory: healthy again
    /// after a restart, as a check that passes at once).
    pub(crate) healthy: bool,
    /// Whether an operator drained it (kept in its data directory: a wipe
    /// forgets it).
    pub(crate) drained: bool,
    /// What its core was last told of eligibility (a new core starts eligible).
    pub(crate) fed_eligible: bool,
}

impl SimNode {
    pub(crate) fn is_up(&self) -> bool {
        self.node.is_some() && !self.paused
    }
}

/// The liveness bookkeeping of (h).
#[derive(Debug, Default)]
struct Calm {
    since_ns: Option<u64>,
    epoch: u64,
    goose_seen: bool,
    /// (l) found this goose outranked once; a second look decides.
    outranked: Option<(NodeId, Term)>,
    /// Bumped by an operator's handoff during the calm period: (l) is
    /// judged a whole bound after the last one (a step-down may hand the
    /// goose to a lower priority, whose preemption back may fail and is
    /// then not retried for a preempt delay: soak seed 7843194).
    preference_round: u64,
}

/// The simulator. Scenarios drive it through its methods; `run_seed`
/// drives it with random faults.
pub struct Sim {
    pub(crate) config: SimConfig,
    pub(crate) rng: fastrand::Rng,
    /// The stream that decides when impostors come (chaos runs only).
    pub(crate) impostor_rng: fastrand::Rng,
    /// The stream that decides health and drain changes (chaos runs only).
    pub(crate) eligibility_rng: fastrand::Rng,
    pub(crate) now_ns: u64,
    queue: BinaryHeap<Queued>,
    sequence: u64,
    event_number: u64,
    pub(crate) nodes: Vec<SimNode>,
    /// The slot of each member: `member_slots[id - 1]`.
    pub(crate) member_slots: Vec<usize>,
    pub(crate) links: Links,
    pub(crate) partition_epoch: u64,
    pub(crate) loss_probability: f64,
    pub(crate) loss_epoch: u64,
    checker: Checker,
    trace: Trace,
    next_proposal_id: ProposalId,
    geese: Vec<(NodeId, Term)>,
    geese_scratch: Vec<(NodeId, Term)>,
    last_check_ns: u64,
    goose_changes: Vec<GooseChange>,
    calm: Calm,
    pub(crate) stats: SimStats,
    failure: Option<Box<Failure>>,
    pub(crate) chaos: Option<super::chaos::ChaosParams>,
}

impl Sim {
    /// A new cluster of `config.voters` voters, each starting within
    /// `config.start_spread` of true time 0 (nothing runs until a `run_*` call).
    ///
    /// # Panics
    /// If the number of voters is not within 1..=9.
    pub fn new(config: SimConfig) -> Sim {
        assert!((1..=9).contains(&config.voters), "1 to 9 voters");
        let mut sim = Sim {
            // Mixed so that the world's draws differ from the plan's, which uses the seed as is.
            rng: fastrand::Rng::with_seed(config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED),
            impostor_rng: fastrand::Rng::with_seed(config.seed ^ 0x1A90_57E5),
            eligibility_rng: fastrand::Rng::with_seed(config.seed ^ 0xE11_61B1E),
            now_ns: 0,
            queue: BinaryHeap::new(),
            sequence: 0,
            event_number: 0,
            nodes: Vec::new(),
            member_slots: Vec::new(),
            links: Links::default(),
            partition_epoch: 0,
            loss_probability: 0.0,
            loss_epoch: 0,
            checker: Checker::new(config.goose_forbidden_after.map(duration_ns)),
            trace: Trace::new(config.trace_records, config.trace_to_stderr),
            next_proposal_id: ProposalId(1),
            geese: Vec::new(),
            geese_scratch: Vec::new(),
            last_check_ns: 0,
            goose_changes: Vec::new(),
            calm: Calm::default(),
            stats: SimStats::default(),
            failure: None,
            chaos: None,
            config,
        };
        if sim.config.transcript {
            sim.trace.keep_transcript();
        }
        let voters = (1..=sim.config.voters as u64).map(|id| (NodeId(id), node_addr(NodeId(id))));
        let membership = Membership::with_voters(voters);
        let spread_ns = duration_ns(sim.config.start_spread);
        for _ in 0..sim.config.voters {
            let identity = Identity(sim.rng.u64(1..));
            let index = sim.create_member(PersistedState::bootstrap(identity, membership.clone()));
            let start_ns = sim.rng.u64(0..=spread_ns);
            sim.push(
                start_ns,
                Action::Start {
                    node: index,
                    incarnation: 0,
                    reboot: false,
                },
            );
        }
        if let Some(interval) = sim.config.probe_interval {
            let first = sim.probe_spacing_ns(interval);
            sim.push(first, Action::Probe);
        }
        sim
    }

    // ----- reading the world -----

    /// The true time.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now_ns)
    }

    /// The true time in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.config.seed
    }

    /// The nodes answering goose at the last check (at most one, or the run failed).
    pub fn geese(&self) -> &[(NodeId, Term)] {
        &self.geese
    }

    /// The node answering goose at the last check, if any.
    pub fn goose(&self) -> Option<NodeId> {
        self.geese.first().map(|(id, _)| *id)
    }

    /// Every change of goose observed so far, oldest first.
    pub fn goose_changes(&self) -> &[GooseChange] {
        &self.goose_changes
    }

    /// The ids of all members ever created (impostors share theirs).
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.member_slots
            .iter()
            .map(|&slot| self.nodes[slot].id)
            .collect()
    }

    /// The running core of node `id` (None while it is down).
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.slot(id).node.as_ref()
    }

    /// Whether node `id` is running (paused or not).
    pub fn is_running(&self, id: NodeId) -> bool {
        self.slot(id).node.is_some()
    }

    /// What node `id`'s disk holds.
    pub fn durable(&self, id: NodeId) -> &PersistedState {
        &self.slot(id).durable
    }

    /// Node `id`'s clock reading now.
    pub fn local_now(&self, id: NodeId) -> Timestamp {
        self.slot(id).clock.local_at(self.now_ns)
    }

    /// The first true instant at which node `id`'s clock reads `local`.
    pub fn true_time_of(&self, id: NodeId, local: Timestamp) -> Duration {
        Duration::from_nanos(self.slot(id).clock.true_at(local))
    }

    /// The events node `id` emitted, with their true times in nanoseconds.
    pub fn events(&self, id: NodeId) -> &[(u64, Event)] {
        &self.slot(id).events
    }

    /// Counts of what happened so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The run's transcript so far (empty unless `SimConfig::transcript`):
    /// every action, event and goose change, and every step that changed
    /// a node's Raft state or persisted, one line each.
    pub fn transcript(&self) -> &str {
        self.trace.transcript().unwrap_or("")
    }

    /// The current trace (the last records) as text.
    pub fn trace_text(&self) -> String {
        self.trace.render()
    }

    /// The number of events processed so far.
    pub fn event_number(&self) -> u64 {
        self.event_number
    }

    /// The highest log index known to be committed.
    pub fn committed_index(&self) -> goose_common::LogIndex {
        self.checker.committed_index()
    }

    fn slot(&self, id: NodeId) -> &SimNode {
        &self.nodes[self.index_of(id)]
    }

    /// The slot of member `id`.
    pub(crate) fn index_of(&self, id: NodeId) -> usize {
        let index = (id.0 as usize).wrapping_sub(1);
        assert!(
            index < self.member_slots.len(),
            "no node {id} in the simulation"
        );
        self.member_slots[index]
    }

    // ----- running -----

    /// Runs every event up to true `now + duration`.
    pub fn run_for(&mut self, duration: Duration) -> Result<(), Box<Failure>> {
        let end_ns = self.now_ns.saturating_add(duration_ns(duration));
        self.run_until_ns(end_ns, |_| false).map(|_| ())
    }

    /// Runs events until `condition` holds after one (checked after every
    /// event), or until `limit` has passed. Returns how long it took, or
    /// `None` if the limit passed first.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut condition: impl FnMut(&Sim) -> bool,
    ) -> Result<Option<Duration>, Box<Failure>> {
        let start_ns = self.now_ns;
        if condition(self) {
            return Ok(Some(Duration::ZERO));
        }
        let end_ns = self.now_ns.saturating_add(duration_ns(limit));
        let reached = self.run_until_ns(end_ns, &mut condition)?;
        Ok(reached.then(|| Duration::from_nanos(self.now_ns - start_ns)))
    }

    fn run_until_ns(
        &mut self,
        end_ns: u64,
        mut condition: impl FnMut(&Sim) -> bool,
    ) -> Result<bool, Box<Failure>> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        while self.queue.peek().is_some_and(|next| next.time_ns <= end_ns) {
            let queued = self.queue.pop().expect("peeked");
            debug_assert!(queued.time_ns >= self.now_ns, "time went back");
            self.now_ns = queued.time_ns;
            self.event_number += 1;
            self.stats.events += 1;
            let result = self.handle(queued.action).and_then(|changed| {
                if changed {
                    self.check_geese()?;
                }
                if self.event_number > self.config.events_max {
                    return violation(
                        "event budget",
                        format!("more than {} events", self.config.events_max),
                    );
                }
                Ok(())
            });
            if let Err(found) = result {
                return Err(self.fail(found));
            }
            if condition(self) {
                return Ok(true);
            }
        }
        self.now_ns = self.now_ns.max(end_ns);
        Ok(false)
    }

    /// Runs `action` as one event of its own at the current instant, then the checkers.
    pub(crate) fn act<T>(
        &mut self,
        action: impl FnOnce(&mut Sim) -> Result<T, Violation>,
    ) -> Result<T, Box<Failure>> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        self.event_number += 1;
        let result = action(self).and_then(|value| {
            self.update_calm();
            self.check_geese()?;
            Ok(value)
        });
        result.map_err(|found| self.fail(found))
    }

    fn fail(&mut self, found: Violation) -> Box<Failure> {
        let failure = Box::new(Failure {
            seed: self.config.seed,
            event_number: self.event_number,
            time_ns: self.now_ns,
            violation: found,
            trace: self.trace.render(),
            replay_command: self.config.replay_command.clone(),
        });
        self.failure = Some(failure.clone());
        failure
    }

    pub(crate) fn push(&mut self, time_ns: u64, action: Action) {
        self.sequence += 1;
        self.queue.push(Queued {
            time_ns,
            sequence: self.sequence,
            action,
        });
    }

    pub(crate) fn note(&mut self, text: String) {
        self.trace.push(TraceRecord {
            event_number: self.event_number,
            time_ns: self.now_ns,
            what: TraceWhat::Action(text),
        });
    }

    /// The time to the next probe: uniform within half an interval either side.
    fn probe_spacing_ns(&mut self, interval: Duration) -> u64 {
        let interval_ns = duration_ns(interval).max(2);
        self.rng
            .u64(interval_ns / 2..=interval_ns + interval_ns / 2)
    }

    pub(crate) fn exponential_ns(&mut self, mean: Duration) -> u64 {
        let mean_ns = mean.as_nanos() as f64;
        ((-(1.0 - self.rng.f64()).ln() * mean_ns) as u64).max(1)
    }

    /// Carries out one queued action; says whether anything changed.
    fn handle(&mut self, action: Action) -> Result<bool, Violation> {
        match action {
            Action::Deliver {
                from,
                to,
                incarnation,
                message,
            } => self.on_deliver(from, to, incarnation, message),
            Action::Deadline { node, incarnation } => self.on_deadline(node, incarnation),
            Action::Start {
                node,
                incarnation,
                reboot,
            } => {
                let slot = &self.nodes[node];
                if slot.incarnation != incarnation || slot.node.is_some() || slot.retired {
                    return Ok(false);
                }
                self.start_node(node, reboot)?;
                self.update_calm();
                Ok(true)
            }
            Action::Resume { node, incarnation } => {
                if self.nodes[node].incarnation != incarnation || !self.nodes[node].paused {
                    return Ok(false);
                }
                self.resume_node(node);
                Ok(true)
            }
            Action::Heal { epoch } => {
                if epoch != self.partition_epoch || self.links.is_whole() {
                    return Ok(false);
                }
                self.note("heal the network".to_string());
                self.links.heal();
                self.update_calm();
                Ok(true)
            }
            Action::LossEnd { epoch } => {
                if epoch != self.loss_epoch || self.loss_probability == 0.0 {
                    return Ok(false);
                }
                self.note("message loss ends".to_string());
                self.loss_probability = 0.0;
                self.update_calm();
                Ok(true)
            }
            Action::Probe => {
                let interval = self
                    .config
                    .probe_interval
                    .expect("probes only with an interval");
                let next_ns = self.now_ns + self.probe_spacing_ns(interval);
                self.push(next_ns, Action::Probe);
                Ok(true)
            }
            Action::Liveness { epoch } => {
                self.check_liveness(epoch)?;
                Ok(false)
            }
            Action::Chaos => {
                self.chaos_step()?;
                self.update_calm();
                Ok(true)
            }
            Action::Rebuild { node, incarnation } => {
                let slot = &self.nodes[node];
                if slot.incarnation != incarnation || slot.node.is_some() {
                    return Ok(false);
                }
                if self.removal_committed(slot.id) {
                    self.wipe(node);
                }
                self.start_node(node, false)?;
                self.update_calm();
                Ok(true)
            }
            Action::Retire { node } => {
                if self.nodes[node].retired {
                    return Ok(false);
                }
                self.retire(node);
                self.update_calm();
                Ok(true)
            }
            Action::Release {
                node,
                incarnation,
                release,
                stopped,
            } => self.on_release(node, incarnation, release, stopped),
            Action::Eligibility { node, incarnation } => {
                self.on_eligibility_action(node, incarnation)
            }
            Action::HealthFlip { node } => {
                let faults_over = self
                    .chaos
                    .as_ref()
                    .is_some_and(|chaos| self.now_ns >= duration_ns(chaos.until));
                if faults_over {
                    return Ok(false);
                }
                let healthy = !self.nodes[node].healthy;
                self.set_health_at(node, healthy)?;
                Ok(true)
            }
            Action::Preference { epoch, round } => {
                self.check_preference(epoch, round)?;
                Ok(false)
            }
        }
    }

    /// The health check of slot `index` says `healthy` (no change: nothing).
    pub(crate) fn set_health_at(&mut self, index: usize, healthy: bool) -> Result<(), Violation> {
        if self.nodes[index].healthy == healthy {
            return Ok(());
        }
        self.nodes[index].healthy = healthy;
        self.stats.health_changes += 1;
        let id = self.nodes[index].id;
        self.note(format!(
            "n{id}'s health check {}",
            if healthy { "passes" } else { "fails" }
        ));
        self.eligibility_changed(index)
    }

    /// An operator drains (or undrains) slot `index`.
    pub(crate) fn set_drained_at(&mut self, index: usize, drained: bool) -> Result<(), Violation> {
        if self.nodes[index].drained == drained {
            return Ok(());
        }
        self.nodes[index].drained = drained;
        self.stats.drains += 1;
        let id = self.nodes[index].id;
        self.note(format!(
            "{} n{id}",
            if drained { "drain" } else { "undrain" }
        ));
        self.eligibility_changed(index)
    }

    /// Health or drain of slot `index` changed: its daemon tells its core
    /// (once it runs unpaused), and a calm period starts again.
    fn eligibility_changed(&mut self, index: usize) -> Result<(), Violation> {
        self.calm.since_ns = None;
        let incarnation = self.nodes[index].incarnation;
        self.on_eligibility_action(index, incarnation)?;
        self.update_calm();
        Ok(())
    }

    fn on_eligibility_action(&mut self, index: usize, incarnation: u32) -> Result<bool, Violation> {
        let slot = &mut self.nodes[index];
        if slot.incarnation != incarnation || slot.node.is_none() {
            return Ok(false); // A restart feeds it anyway.
        }
        if slot.paused {
            return Ok(false); // Fed again at resume.
        }
        let eligible = slot.healthy && !slot.drained;
        slot.fed_eligible = eligible;
        self.step_node(index, Input::Eligibility { eligible })?;
        Ok(true)
    }

    /// A handoff began releasing in slot `index` (its node stopped answering
    /// goose and the daemon told its runners to stop): the release comes
    /// after a delay of the policy, confirmed or not.
    fn schedule_release(&mut self, index: usize) {
        let policy = self.config.release;
        let prompt_ns = duration_ns(policy.prompt_max);
        let late_ns = duration_ns(policy.late_max).max(prompt_ns + 1);
        let (delay_ns, stopped) = if policy.late_percent + policy.unconfirmed_percent == 0 {
            (prompt_ns, true)
        } else {
            let roll = self.rng.u32(0..100);
            if roll < policy.unconfirmed_percent {
                (self.rng.u64(prompt_ns..late_ns), false)
            } else if roll < policy.unconfirmed_percent + policy.late_percent {
                (self.rng.u64(prompt_ns..late_ns), true)
            } else {
                (self.rng.u64(0..=prompt_ns), true)
            }
        };
        if delay_ns > prompt_ns && stopped {
            self.stats.releases_late += 1;
        }
        let slot = &self.nodes[index];
        let action = Action::Release {
            node: index,
            incarnation: slot.incarnation,
            release: slot.releases,
            stopped,
        };
        self.push(self.now_ns + delay_ns, action);
    }

    fn on_release(
        &mut self,
        index: usize,
        incarnation: u32,
        release: u64,
        stopped: bool,
    ) -> Result<bool, Violation> {
        let slot = &mut self.nodes[index];
        let current = slot.incarnation == incarnation && slot.releases == release;
        // A daemon forgets a release once its handoff is over.
        let (true, Some(term)) = (current, slot.releasing) else {
            return Ok(false);
        };
        if slot.paused {
            if slot.backlog.len() < PAUSED_BACKLOG_MAX {
                slot.backlog.push_back(Action::Release {
                    node: index,
                    incarnation,
                    release,
                    stopped,
                });
            }
            return Ok(false);
        }
        if stopped {
            self.stats.releases += 1;
            self.checker.on_job_stopped(index, term, self.now_ns);
        } else {
            self.stats.releases_unconfirmed += 1;
        }
        self.step_node(index, Input::Release { stopped })?;
        Ok(true)
    }

    /// Stops the impostor in slot `index` for good.
    pub(crate) fn retire(&mut self, index: usize) {
        debug_assert!(self.nodes[index].impostor, "only an impostor retires");
        let id = self.nodes[index].id;
        self.crash_node(index);
        self.nodes[index].retired = true;
        self.note(format!("the operator stops the impostor under n{id}"));
    }

    /// The running impostor, if any.
    pub(crate) fn running_impostor(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|slot| slot.impostor && slot.node.is_some())
    }

    /// Whether the leader (what `goosectl member list` asks) has committed
    /// a configuration without `id` and has no later one: only then does a
    /// careful operator wipe the member's data directory.
    pub(crate) fn removal_committed(&self, id: NodeId) -> bool {
        let Some(leader) = self.leader_index() else {
            return false;
        };
        let node = self.nodes[leader].node.as_ref().expect("a leader runs");
        node.committed_membership().get(id).is_none() && node.membership().get(id).is_none()
    }

    /// Replaces a stopped node's data directory with an empty one under a
    /// new identity, as an operator rebuilding it does.
    pub(crate) fn wipe(&mut self, index: usize) {
        let identity = Identity(self.rng.u64(1..));
        let slot = &mut self.nodes[index];
        debug_assert!(slot.node.is_none(), "only a stopped node is wiped");
        slot.durable = PersistedState {
            identity,
            ..PersistedState::default()
        };
        slot.drained = false;
        let id = slot.id;
        self.checker.on_wipe(index);
        self.stats.rebuilds += 1;
        self.note(format!(
            "wipe n{id}: a new data directory, identity {identity}"
        ));
    }

    fn on_deliver(
        &mut self,
        from: usize,
        to: usize,
        incarnation: u32,
        message: Message,
    ) -> Result<bool, Violation> {
        let slot = &mut self.nodes[to];
        if slot.incarnation != incarnation || slot.node.is_none() {
            self.stats.messages_dropped += 1;
            return Ok(false);
        }
        if slot.paused {
            if slot.backlog.len() < PAUSED_BACKLOG_MAX {
                slot.backlog.push_back(Action::Deliver {
                    from,
                    to,
                    incarnation,
                    message,
                });
            } else {
                self.stats.messages_dropped += 1;
            }
            return Ok(false);
        }
        self.stats.messages_delivered += 1;
        self.checker.on_delivery(from, to, self.now_ns);
        self.step_node(to, Input::Receive(message))?;
        Ok(true)
    }

    fn on_deadline(&mut self, index: usize, incarnation: u32) -> Result<bool, Violation> {
        let slot = &mut self.nodes[index];
        if slot.incarnation != incarnation
            || slot.node.is_none()
            || slot.timer_ns != Some(self.now_ns)
        {
            return Ok(false);
        }
        slot.timer_ns = None;
        if slot.paused {
            return Ok(false);
        }
        match slot.desired_deadline_ns {
            Some(due_ns) if due_ns <= self.now_ns => {
                self.step_node(index, Input::Tick)?;
                Ok(true)
            }
            Some(due_ns) => {
                self.schedule_timer(index, due_ns);
                Ok(false)
            }
            None => Ok(false),
        }
    }

    fn schedule_timer(&mut self, index: usize, due_ns: u64) {
        let slot = &mut self.nodes[index];
        if slot.timer_ns.is_none_or(|scheduled| due_ns < scheduled) {
            slot.timer_ns = Some(due_ns);
            let incarnation = slot.incarnation;
            self.push(
                due_ns,
                Action::Deadline {
                    node: index,
                    incarnation,
                },
            );
        }
    }

    /// Steps node `index` with `input` at the current instant and carries
    /// out the `Ready`: persist, checks, send, events, deadline.
    pub(crate) fn step_node(&mut self, index: usize, input: Input) -> Result<(), Violation> {
        let now_ns = self.now_ns;
        let input_summary = match &input {
            Input::Receive(message) => InputSummary::Receive(MessageSummary::of(message)),
            Input::Tick => InputSummary::Tick,
            Input::Propose { id, .. } => InputSummary::Propose(id.0),
            Input::Handoff { id, .. } => InputSummary::Handoff(id.0),
            Input::Release { stopped } => InputSummary::Release { stopped: *stopped },
            Input::Eligibility { eligible } => InputSummary::Eligibility {
                eligible: *eligible,
            },
        };
        let slot = &mut self.nodes[index];
        let local = slot.clock.local_at(now_ns);
        let Some(node) = slot.node.as_mut() else {
            return Ok(());
        };
        if local == slot.last_step_local {
            slot.steps_at_same_instant += 1;
            if slot.steps_at_same_instant > STEPS_AT_ONE_INSTANT_MAX {
                return violation(
                    "busy loop",
                    format!(
                        "n{} stepped {STEPS_AT_ONE_INSTANT_MAX} times at {local:?}",
                        slot.id
                    ),
                );
            }
        } else {
            slot.last_step_local = local;
            slot.steps_at_same_instant = 0;
        }
        let last_before = node.last_index();
        let commit_before = node.commit_index();
        let ready = match catch_core_panic(|| node.step(local, input)) {
            Ok(ready) => ready,
            Err(text) => return violation("core panic", format!("n{} in step: {text}", slot.id)),
        };
        slot.durable.apply(&ready.persist);
        self.checker.after_step(
            index,
            node,
            &slot.durable,
            &ready.persist,
            last_before,
            commit_before,
        )?;
        for message in &ready.messages {
            self.checker
                .on_send(index, node, &slot.durable, message, (local, now_ns))?;
        }
        self.stats.steps += 1;
        let hard_state = node.hard_state();
        let after = NodeSummary {
            role: raft_role_name(node.raft_role()),
            term: hard_state.term,
            vote: hard_state.vote,
            leader: node.leader(),
            commit: node.commit_index(),
            last: node.last_index(),
        };
        let id = slot.id;
        // A deadline at or before now asks to be stepped again at once: a
        // driver would spin. A few in a row are fine, a long run is a busy loop.
        if ready.next_deadline <= local {
            slot.past_deadlines_in_a_row += 1;
            if slot.past_deadlines_in_a_row > PAST_DEADLINES_IN_A_ROW_MAX {
                return violation(
                    "busy loop",
                    format!(
                        "n{} asked {PAST_DEADLINES_IN_A_ROW_MAX} times in a row to be woken at or before now ({:?} <= {local:?})",
                        slot.id, ready.next_deadline
                    ),
                );
            }
        } else {
            slot.past_deadlines_in_a_row = 0;
        }
        let deadline_ns = slot.clock.true_at(ready.next_deadline).max(now_ns + 1);
        slot.desired_deadline_ns = Some(deadline_ns);
        self.trace.push(TraceRecord {
            event_number: self.event_number,
            time_ns: now_ns,
            what: TraceWhat::Step {
                node: id,
                impostor: slot.impostor,
                input: input_summary,
                after,
                sent: ready.messages.len(),
                persisted: !ready.persist.is_empty(),
            },
        });
        for message in ready.messages {
            self.send(index, message);
        }
        for event in ready.events {
            self.on_event(index, event)?;
        }
        self.schedule_timer(index, deadline_ns);
        // The daemon tells its runners to stop when a handoff begins.
        let slot = &mut self.nodes[index];
        let releasing = slot
            .node
            .as_ref()
            .filter(|node| node.awaits_release())
            .map(|node| node.hard_state().term);
        let began = releasing.is_some() && slot.releasing.is_none();
        slot.releasing = releasing;
        if began {
            slot.releases += 1;
            self.schedule_release(index);
        }
        Ok(())
    }

    fn on_event(&mut self, index: usize, event: Event) -> Result<(), Violation> {
        let slot = &mut self.nodes[index];
        match &event {
            Event::Removed => {
                let node = slot
                    .node
                    .as_ref()
                    .expect("a running node emitted the event");
                self.checker.on_removed(index, node)?;
            }
            Event::Done { .. } => self.stats.done += 1,
            Event::Rejected { .. } => self.stats.rejected += 1,
            _ => {}
        }
        let membership_changed = matches!(event, Event::MembershipCommitted { .. });
        self.trace.push(TraceRecord {
            event_number: self.event_number,
            time_ns: self.now_ns,
            what: TraceWhat::Event(slot.id, event.clone()),
        });
        if slot.events.len() < EVENTS_KEPT_MAX {
            slot.events.push((self.now_ns, event));
        }
        if membership_changed {
            // Which voters are eligible depends on the membership.
            self.update_calm();
        }
        Ok(())
    }

    /// Sends `message` from slot `from_slot`. An impostor shares its
    /// member's address (the address was moved to another host while the
    /// old one still runs), so either process may get what is sent to it.
    fn send(&mut self, from_slot: usize, message: Message) {
        self.stats.messages_sent += 1;
        let (from, to) = (message.from.0, message.to.0);
        let known = to >= 1 && (to as usize) <= self.member_slots.len();
        if !known || !self.links.is_up(from, to) {
            self.stats.messages_dropped += 1;
            return;
        }
        if self.loss_probability > 0.0 && self.rng.f64() < self.loss_probability {
            self.stats.messages_dropped += 1;
            return;
        }
        let mut index = self.member_slots[(to - 1) as usize];
        if let Some(impostor) = self.running_impostor() {
            if self.nodes[impostor].id == message.to && self.rng.bool() {
                index = impostor;
            }
        }
        if index == from_slot {
            // A message to its own id from a process under it goes to the other one.
            self.stats.messages_dropped += 1;
            return;
        }
        if self.nodes[index].node.is_none() {
            self.stats.messages_dropped += 1;
            return;
        }
        let incarnation = self.nodes[index].incarnation;
        let duplicate = self.config.network.duplicate_probability > 0.0
            && self.rng.f64() < self.config.network.duplicate_probability;
        if duplicate {
            let delay_ns = sample_delay_ns(&self.config.network, &mut self.rng);
            let copy = message.clone();
            self.push(
                self.now_ns + delay_ns,
                Action::Deliver {
                    from: from_slot,
                    to: index,
                    incarnation,
                    message: copy,
                },
            );
        }
        let delay_ns = sample_delay_ns(&self.config.network, &mut self.rng);
        self.push(
            self.now_ns + delay_ns,
            Action::Deliver {
                from: from_slot,
                to: index,
                incarnation,
                message,
            },
        );
    }

    /// Asks every running, unpaused node whether it is the goose, checks
    /// every answer and (a) that at most one says yes.
    fn check_geese(&mut self) -> Result<(), Violation> {
        let now_ns = self.now_ns;
        let mut geese = std::mem::take(&mut self.geese_scratch);
        geese.clear();
        for (index, slot) in self.nodes.iter_mut().enumerate() {
            if slot.paused {
                continue;
            }
            let Some(node) = slot.node.as_mut() else {
                continue;
            };
            let local = slot.clock.local_at(now_ns);
            let answer = match catch_core_panic(|| node.goose(local)) {
                Ok(answer) => answer,
                Err(text) => {
                    return violation("core panic", format!("n{} in goose: {text}", slot.id))
                }
            };
            self.stats.goose_questions += 1;
            let observer = !node.is_voter() && !node.committed_membership().is_voter(node.id());
            if observer && answer.leader.is_some() {
                self.stats.observer_answers += 1;
            }
            self.checker.on_answer(
                index,
                node,
                &Asked {
                    config: &slot.config,
                    clock: &slot.clock,
                    lease_window_ns: slot.lease_window_ns,
                    local_now: local,
                    now_ns,
                },
                &answer,
            )?;
            if answer.is_goose() {
                if !slot.fed_eligible {
                    return violation(
                        "(k) eligibility",
                        format!(
                            "n{} answers goose though its daemon said it is not eligible",
                            slot.id
                        ),
                    );
                }
                geese.push((slot.id, answer.term));
            }
            // The runner of this slot: a goose answer to the lease end starts
            // or renews its job; while releasing, the held lease end renews it.
            let (until, start) = match node.releasing(local) {
                Some(until) => (Some(until), false),
                None => (node.runner_answer(local).lease_until, true),
            };
            if let Some(until) = until {
                let until_true_ns = slot.clock.true_at(until);
                if self
                    .checker
                    .on_job(index, answer.term, now_ns, until_true_ns, start)?
                {
                    self.stats.jobs += 1;
                }
            }
        }
        let previous_check_ns = self.last_check_ns;
        if !self.geese.is_empty() {
            self.stats.goose_ns += now_ns - previous_check_ns;
        }
        self.last_check_ns = now_ns;
        if geese.len() > 1 {
            return violation(
                "(a) one goose",
                format!("several nodes answer goose at once: {geese:?}"),
            );
        }
        if geese != self.geese {
            self.trace.push(TraceRecord {
                event_number: self.event_number,
                time_ns: now_ns,
                what: TraceWhat::Goose(geese.clone()),
            });
            if self.goose_changes.len() < GOOSE_CHANGES_KEPT_MAX {
                self.goose_changes.push(GooseChange {
                    time_ns: now_ns,
                    previous_seen_ns: previous_check_ns,
                    goose: geese.first().copied(),
                });
            }
            std::mem::swap(&mut self.geese, &mut geese);
        }
        self.geese_scratch = geese;
        if !self.geese.is_empty() {
            self.calm.goose_seen = true;
        }
        Ok(())
    }

    // ----- liveness (h) -----

    /// Whether nothing stands in the way of a goose: the network is whole
    /// and lossless, every member runs unpaused and no impostor runs.
    pub fn is_calm(&self) -> bool {
        self.links.is_whole()
            && self.loss_probability == 0.0
            && self.nodes.iter().all(|slot| {
                if slot.impostor {
                    slot.node.is_none()
                } else {
                    slot.is_up()
                }
            })
            && self.eligible_voters().next().is_some()
    }

    /// The running members that are eligible voters (design.md §2) of the
    /// most advanced committed membership a running node knows.
    fn eligible_voters(&self) -> impl Iterator<Item = &SimNode> + '_ {
        let membership = self
            .nodes
            .iter()
            .filter_map(|slot| slot.node.as_ref())
            .max_by_key(|node| node.commit_index())
            .map(|node| node.committed_membership());
        self.nodes.iter().filter(move |slot| {
            let voter = membership.is_some_and(|membership| {
                membership.get(slot.id).is_some_and(|member| {
                    member.role == goose_common::MemberRole::Voter
                        && member.identity.matches(slot.durable.identity)
                })
            });
            !slot.impostor
                && voter
                && slot.healthy
                && !slot.drained
                && slot.node.as_ref().is_some_and(|node| node.is_eligible())
        })
    }

    pub(crate) fn update_calm(&mut self) {
        let calm = self.is_calm();
        match (calm, self.calm.since_ns) {
            (true, None) => {
                self.calm.since_ns = Some(self.now_ns);
                self.calm.epoch += 1;
                self.calm.goose_seen = false;
                self.calm.outranked = None;
                if let Some(bound) = self.config.liveness_bound {
                    let epoch = self.calm.epoch;
                    self.push(self.now_ns + duration_ns(bound), Action::Liveness { epoch });
                }
                self.schedule_preference();
            }
            (false, Some(_)) => self.calm.since_ns = None,
            _ => {}
        }
    }

    fn check_liveness(&mut self, epoch: u64) -> Result<(), Violation> {
        let Some(since_ns) = self.calm.since_ns else {
            return Ok(());
        };
        if epoch != self.calm.epoch {
            return Ok(());
        }
        if !self.calm.goose_seen {
            let bound = self.config.liveness_bound.unwrap_or_default();
            return violation(
                "(h) liveness",
                format!(
                    "no goose within {bound:?} of the world becoming calm at {since_ns} ns; nodes now:\n{}",
                    self.describe_nodes()
                ),
            );
        }
        self.stats.liveness_checks += 1;
        Ok(())
    }

    /// (l): a calm world's goose, once it has held the role for a while,
    /// is an eligible voter that no eligible voter of higher priority with
    /// preemption on outranks (design.md §2).
    fn check_preference(&mut self, epoch: u64, round: u64) -> Result<(), Violation> {
        let current = epoch == self.calm.epoch && round == self.calm.preference_round;
        if self.calm.since_ns.is_none() || !current {
            return Ok(());
        }
        let Some((goose, term)) = self.geese.first().copied() else {
            return Ok(()); // Between two geese: (h) watches over that.
        };
        let slot = self.slot(goose);
        let priority = slot.config.priority;
        let outranked: Vec<(NodeId, u8)> = self
            .eligible_voters()
            .filter(|other| {
                let local = other.clock.local_at(self.now_ns);
                other.config.priority > priority
                    && other
                        .node
                        .as_ref()
                        .is_some_and(|node| node.is_preempting(local))
            })
            .map(|other| (other.id, other.config.priority))
            .collect();
        // A preempter may have just become a voter or eligible, or the goose
        // just taken over: a goose outranked for two election timeouts more
        // (time to hear the preempter and stop answering goose) fails.
        if !outranked.is_empty() && self.calm.outranked != Some((goose, term)) {
            self.calm.outranked = Some((goose, term));
            let settle_ns = duration_ns(self.config.node_config.election_timeout_min * 2);
            self.push(self.now_ns + settle_ns, Action::Preference { epoch, round });
            return Ok(());
        }
        if !outranked.is_empty() {
            return violation(
                "(l) preference",
                format!(
                    "n{goose} (priority {priority}) is still the goose, calm since {} ns, though these eligible voters preempt it: {outranked:?}; nodes now:\n{}",
                    self.calm.since_ns.unwrap_or_default(),
                    self.describe_nodes()
                ),
            );
        }
        self.stats.preference_checks += 1;
        Ok(())
    }

    /// Schedules (l) for the current calm period, a bound from now.
    fn schedule_preference(&mut self) {
        if let Some(bound) = self.config.preference_bound {
            self.calm.outranked = None;
            self.calm.preference_round += 1;
            let (epoch, round) = (self.calm.epoch, self.calm.preference_round);
            self.push(
                self.now_ns + duration_ns(bound),
                Action::Preference { epoch, round },
            );
        }
    }

    /// One line per node: role, term, log, configuration (for failure reports).
    pub fn describe_nodes(&self) -> String {
        let mut text = String::new();
        for slot in &self.nodes {
            let who = if slot.impostor {
                format!("n{} (impostor)", slot.id)
            } else {
                format!("n{}", slot.id)
            };
            let Some(node) = slot.node.as_ref() else {
                text.push_str(&format!("  {who}: down\n"));
                continue;
            };
            let voters: Vec<u64> = node.membership().voters().map(|id| id.0).collect();
            let members: Vec<u64> = node.membership().members.iter().map(|m| m.id.0).collect();
            text.push_str(&format!(
                "  {who}: {} term {} leader {:?} commit {} last {} (snapshot {}), voters {voters:?}, members {members:?}, removed {}{}\n",
                raft_role_name(node.raft_role()),
                node.hard_state().term,
                node.leader().map(|id| id.0),
                node.commit_index(),
                node.last_index(),
                node.snapshot().index,
                node.is_removed(),
                if slot.paused { ", paused" } else { "" },
            ));
            let faults = node.peer_faults();
            if faults != Default::default() {
                text.pop();
                text.push_str(&format!(
                    ", identity {}, refused {faults:?}\n",
                    node.identity()
                ));
            }
            if !slot.healthy || slot.drained || slot.config.priority != 100 {
                text.pop();
                text.push_str(&format!(
                    "{}{}, priority {}{}\n",
                    if slot.healthy { "" } else { ", unhealthy" },
                    if slot.drained { ", drained" } else { "" },
                    slot.config.priority,
                    if slot.config.preempt {
                        ""
                    } else {
                        " (no preempt)"
                    },
                ));
            }
        }
        text
    }

    /// When the current calm period began, if the world is calm.
    pub fn calm_since(&self) -> Option<Duration> {
        self.calm.since_ns.map(Duration::from_nanos)
    }

    // ----- nodes -----

    /// Adds a member under the next free id with disk `durable` (not
    /// started); returns its slot.
    fn create_member(&mut self, durable: PersistedState) -> usize {
        let count = self.member_slots.len();
        assert!(count < NODES_MAX, "at most {NODES_MAX} nodes");
        let id = NodeId(count as u64 + 1);
        let mut config = Config {
            id,
            ..self.config.node_config.clone()
        };
        if let Some(&(priority, preempt, preempt_delay)) = self.config.priorities.get(count) {
            config.priority = priority;
            config.preempt = preempt;
            config.preempt_delay = preempt_delay;
        }
        let index = self.create_slot(id, config, durable, false);
        self.member_slots.push(index);
        index
    }

    /// Adds a process slot under `id` (not started); returns its index.
    fn create_slot(
        &mut self,
        id: NodeId,
        config: Config,
        durable: PersistedState,
        impostor: bool,
    ) -> usize {
        let index = self.nodes.len();
        assert!(index < SLOTS_MAX, "at most {SLOTS_MAX} process slots");
        self.checker.register(index, id, impostor);
        let clock = self.new_clock(&config);
        let lease_window_ns = lease_window_ns(&config, &clock);
        self.nodes.push(SimNode {
            id,
            impostor,
            retired: false,
            config,
            clock,
            lease_window_ns,
            durable,
            node: None,
            paused: false,
            backlog: VecDeque::new(),
            incarnation: 0,
            desired_deadline_ns: None,
            timer_ns: None,
            last_step_local: Timestamp(0),
            steps_at_same_instant: 0,
            past_deadlines_in_a_row: 0,
            events: Vec::new(),
            releases: 0,
            releasing: None,
            healthy: true,
            drained: false,
            fed_eligible: true,
        });
        index
    }

    /// A clock started now: an arbitrary origin and, with drift on, a rate
    /// within the configured bound (often exactly at it).
    fn new_clock(&mut self, config: &Config) -> Clock {
        let bound = i32::try_from(config.clock_drift_ppm).expect("drift bound below 10%");
        let drift_ppm = if !self.config.clock_drift {
            0
        } else {
            match self.rng.u8(0..4) {
                0 => bound,
                1 => -bound,
                _ => self.rng.i32(-bound..=bound),
            }
        };
        let origin_ns = self.rng.u64(1_000_000_000..1_000_000_000_000);
        Clock::new(self.now_ns, origin_ns, drift_ppm)
    }

    fn start_node(&mut self, index: usize, reboot: bool) -> Result<(), Violation> {
        let config = self.nodes[index].config.clone();
        if reboot {
            let clock = self.new_clock(&config);
            self.nodes[index].clock = clock;
        }
        // The timings may have changed since the last start.
        let clock = self.nodes[index].clock;
        self.nodes[index].lease_window_ns = lease_window_ns(&config, &clock);
        let node_seed = self.rng.u64(..);
        let slot = &mut self.nodes[index];
        debug_assert!(slot.node.is_none());
        let local = slot.clock.local_at(self.now_ns);
        let node = match Node::new(slot.config.clone(), slot.durable.clone(), node_seed, local) {
            Ok(node) => node,
            Err(error) => {
                return violation("start", format!("n{} refused to start: {error}", slot.id))
            }
        };
        self.checker.on_start(index, &node, &slot.durable)?;
        slot.node = Some(node);
        slot.paused = false;
        slot.backlog.clear();
        slot.timer_ns = None;
        slot.desired_deadline_ns = None;
        let id = slot.id;
        let impostor = slot.impostor;
        self.stats.starts += 1;
        self.note(format!(
            "start n{id}{}{}",
            if impostor { " (impostor)" } else { "" },
            if reboot { " (reboot: new clock)" } else { "" }
        ));
        // A daemon tells its core its drain and health before anything else.
        let slot = &mut self.nodes[index];
        slot.fed_eligible = true;
        if !slot.healthy || slot.drained {
            slot.fed_eligible = false;
            self.step_node(index, Input::Eligibility { eligible: false })?;
        }
        self.step_node(index, Input::Tick)
    }

    pub(crate) fn crash_node(&mut self, index: usize) {
        let slot = &mut self.nodes[index];
        if slot.node.is_none() {
            return;
        }
        slot.node = None;
        slot.paused = false;
        slot.incarnation += 1;
        slot.releasing = None;
        slot.backlog.clear();
        slot.timer_ns = None;
        slot.desired_deadline_ns = None;
        let id = slot.id;
        self.stats.crashes += 1;
        self.note(format!("crash n{id}"));
    }

    pub(crate) fn pause_node(&mut self, index: usize) {
        let slot = &mut self.nodes[index];
        if slot.node.is_none() || slot.paused {
            return;
        }
        slot.paused = true;
        let id = slot.id;
        self.stats.pauses += 1;
        self.note(format!("pause n{id}"));
    }

    /// Resumes a paused node: its expired deadline first, then the messages
    /// that waited in its socket, all at the current instant (its clock jumped).
    pub(crate) fn resume_node(&mut self, index: usize) {
        let slot = &mut self.nodes[index];
        slot.paused = false;
        slot.timer_ns = None;
        let id = slot.id;
        let backlog = std::mem::take(&mut slot.backlog);
        let desired = slot.desired_deadline_ns;
        self.note(format!("resume n{id} ({} messages waiting)", backlog.len()));
        if let Some(due_ns) = desired {
            self.schedule_timer(index, due_ns.max(self.now_ns));
        }
        for action in backlog {
            self.push(self.now_ns, action);
        }
        // What health and drain did while it was paused.
        let incarnation = self.nodes[index].incarnation;
        self.push(
            self.now_ns,
            Action::Eligibility {
                node: index,
                incarnation,
            },
        );
        self.update_calm();
    }

    pub(crate) fn start_new_node(&mut self) -> Result<NodeId, Violation> {
        let durable = PersistedState {
            identity: Identity(self.rng.u64(1..)),
            ..PersistedState::default()
        };
        let index = self.create_member(durable);
        self.start_node(index, false)?;
        Ok(self.nodes[index].id)
    }

    /// Starts another process under member `id`'s id, with a fresh data
    /// directory of its own (a new identity) and the member's flags, while
    /// the member runs; it shares the member's address. With `peers` it is
    /// started as the member once was, with `--peer` flags naming the
    /// members it runs with now (ids and addresses, no identities), so it
    /// bootstraps and campaigns; without, it starts with `--join` and
    /// waits. Returns its slot.
    pub(crate) fn start_impostor_at(
        &mut self,
        member: usize,
        peers: bool,
    ) -> Result<usize, Violation> {
        let id = self.nodes[member].id;
        let config = self.nodes[member].config.clone();
        let identity = Identity(self.rng.u64(1..));
        let membership = self.nodes[member]
            .node
            .as_ref()
            .filter(|_| peers)
            .map(|node| {
                let voters = node.membership().voters();
                let voters: Vec<_> = voters.map(|voter| (voter, node_addr(voter))).collect();
                Membership::with_voters(voters)
            });
        let durable = match membership {
            Some(membership) => PersistedState::bootstrap(identity, membership),
            None => PersistedState {
                identity,
                ..PersistedState::default()
            },
        };
        let index = self.create_slot(id, config, durable, true);
        self.stats.impostors += 1;
        self.note(format!(
            "another process starts under n{id}'s id, identity {identity}, at its address, {}",
            if peers {
                "with --peer flags"
            } else {
                "with --join"
            }
        ));
        self.start_node(index, false)?;
        Ok(index)
    }

    /// Starts another process under member `id`'s id, with a fresh data
    /// directory, at its address, while the member runs: with `--peer`
    /// flags naming the current voters if `peers`, else with `--join`
    /// (see [`Sim::retire_impostor`]).
    pub fn start_impostor(&mut self, id: NodeId, peers: bool) -> Result<(), Box<Failure>> {
        let index = self.index_of(id);
        self.act(|sim| {
            if sim.running_impostor().is_some() {
                return violation("scenario", "one impostor at a time".to_string());
            }
            sim.start_impostor_at(index, peers).map(|_| ())
        })
    }

    /// Stops the running impostor for good.
    pub fn retire_impostor(&mut self) -> Result<(), Box<Failure>> {
        self.act(|sim| match sim.running_impostor() {
            Some(index) => {
                sim.retire(index);
                Ok(())
            }
            None => violation("scenario", "no impostor runs".to_string()),
        })
    }

    /// The running impostor's core, if one runs.
    pub fn impostor(&self) -> Option<&Node> {
        self.running_impostor()
            .and_then(|index| self.nodes[index].node.as_ref())
    }

    // ----- what scenarios do -----

    /// Crashes node `id`: it loses everything but its disk, and the messages to it in flight.
    pub fn crash(&mut self, id: NodeId) -> Result<(), Box<Failure>> {
        let index = self.index_of(id);
        self.act(|sim| {
            sim.crash_node(index);
            Ok(())
        })
    }

    /// Restarts a crashed node from its disk (the same clock: a process restart).
    pub fn restart(&mut self, id: NodeId) -> Result<(), Box<Failure>> {
        let index = self.index_of(id);
        self.act(|sim| {
            if sim.nodes[index].node.is_some() {
                return Ok(());
            }
            sim.start_node(index, false)
        })
    }

    /// The health check of node `id` passes (`true`) or fails from now on.
    pub fn set_healthy(&mut self, id: NodeId, healthy: bool) -> Result<(), Box<Failure>> {
        let index = self.index_of(id);
        self.act(|sim| sim.set_health_at(index, healthy))
    }

    /// An operator drains (`true`) or undrains node `id` (kept across its
    /// restarts, forgotten by a wipe).
    pub fn set_drained(&mut self, id: NodeId, drained: bool) -> Result<(), Box<Failure>> {
        let index = self.index_of(id);
        self.act(|sim| sim.set_drained_at(index, drained))
    }

    /// Restarts node `id` with other timings (an operator changing its
    /// flags): it crashes, then starts from its disk with `config`.
    pub fn restart_with(&mut self, id: NodeId, config: Config) -> Result<(), Box<Failure>> {
        let index = self.index_of(id);
        self.act(|sim| {
            sim.crash_node(index);
            sim.note(format!(
                "n{id} restarts with heartbeat {:?}, election timeout {:?}",
                config.heartbeat_interval, config.election_timeout_min
            ));
            sim.nodes[index].config = Config { id, ..config };
            sim.start_node(index, false)
        })
    }

    /// Rebuilds stopped node `id` under its old id: its data directory is
    /// replaced by an empty one (a new identity) and it starts with `--join`.
    pub fn rebuild(&mut self, id: NodeId) -> Result<(), Box<Failure>> {
        let index = self.index_of(id);
        self.act(|sim| {
            if sim.nodes[index].node.is_some() {
                return violation("scenario", format!("n{id} must be stopped to be rebuilt"));
            }
            sim.wipe(index);
            sim.start_node(index, false)
        })
    }

    /// Pauses node `id`: it processes nothing until resumed; its clock runs on.
    pub fn pause(&mut self, id: NodeId) -> Result<(), Box<Failure>> {
        let index = self.index_of(id);
        self.act(|sim| {
            sim.pause_node(index);
            Ok(())
        })
    }

    /// Resumes a paused node.
    pub fn resume(&mut self, id: NodeId) -> Result<(), Box<Failure>> {
        let index = self.index_of(id);
        self.act(|sim| {
            sim.resume_node(index);
            Ok(())
        })
    }

    /// Asks node `id` "am I the goose?" now, as an event of its own followed
    /// by the checkers; `None` if the node is down or paused.
    pub fn ask(&mut self, id: NodeId) -> Result<Option<GooseAnswer>, Box<Failure>> {
        let index = self.index_of(id);
        self.act(|sim| {
            let now_ns = sim.now_ns;
            let slot = &mut sim.nodes[index];
            if slot.paused {
                return Ok(None);
            }
            let Some(node) = slot.node.as_mut() else {
                return Ok(None);
            };
            let local = slot.clock.local_at(now_ns);
            let answer = node.goose(local);
            sim.checker.on_answer(
                index,
                node,
                &Asked {
                    config: &slot.config,
                    clock: &slot.clock,
                    lease_window_ns: slot.lease_window_ns,
                    local_now: local,
                    now_ns,
                },
                &answer,
            )?;
            Ok(Some(answer))
        })
    }

    /// Replaces the partition with one of shape `shape`.
    pub fn partition(&mut self, shape: PartitionShape) -> Result<(), Box<Failure>> {
        self.act(|sim| {
            sim.apply_partition(&shape);
            Ok(())
        })
    }

    pub(crate) fn apply_partition(&mut self, shape: &PartitionShape) {
        let ids: Vec<u64> = self.node_ids().iter().map(|id| id.0).collect();
        self.links = Links::of_shape(shape, &ids);
        self.partition_epoch += 1;
        self.stats.partitions += 1;
        self.note(format!("partition: {shape}"));
    }

    /// Restores every link.
    pub fn heal(&mut self) -> Result<(), Box<Failure>> {
        self.act(|sim| {
            sim.links.heal();
            sim.partition_epoch += 1;
            sim.note("heal the network".to_string());
            Ok(())
        })
    }

    /// Asks node `at` for a membership change; an added id that is the next
    /// free one gets a new node, started empty so that it joins.
    pub fn propose(
        &mut self,
        at: NodeId,
        change: MembershipChange,
    ) -> Result<ProposalId, Box<Failure>> {
        let index = self.index_of(at);
        self.act(|sim| sim.propose_at(index, change))
    }

    pub(crate) fn propose_at(
        &mut self,
        index: usize,
        change: MembershipChange,
    ) -> Result<ProposalId, Violation> {
        if let MembershipChange::AddVoter { id, .. } | MembershipChange::AddLearner { id, .. } =
            change
        {
            if id.0 as usize == self.member_slots.len() + 1 {
                self.start_new_node()?;
            }
        }
        let id = self.next_proposal_id;
        self.next_proposal_id.0 += 1;
        self.stats.proposals += 1;
        let target = self.nodes[index].id;
        self.note(format!("propose #{id} to n{target}: {change:?}"));
        self.step_node(index, Input::Propose { id, change })?;
        Ok(id)
    }

    /// Asks node `at` to hand the goose over (to `target`, or the best voter).
    pub fn handoff(
        &mut self,
        at: NodeId,
        target: Option<NodeId>,
    ) -> Result<ProposalId, Box<Failure>> {
        let index = self.index_of(at);
        self.act(|sim| sim.handoff_at(index, target))
    }

    pub(crate) fn handoff_at(
        &mut self,
        index: usize,
        target: Option<NodeId>,
    ) -> Result<ProposalId, Violation> {
        let id = self.next_proposal_id;
        self.next_proposal_id.0 += 1;
        self.stats.handoffs += 1;
        let at = self.nodes[index].id;
        self.note(format!("handoff #{id} asked of n{at} (to {target:?})"));
        self.step_node(index, Input::Handoff { id, target })?;
        if self.calm.since_ns.is_some() {
            self.schedule_preference();
        }
        Ok(id)
    }
}

/// An upper bound on the true length of `config`'s lease on `clock`.
fn lease_window_ns(config: &Config, clock: &Clock) -> u64 {
    clock.true_duration_ns(duration_ns(config.lease_duration()))
}

/// A duration in nanoseconds, saturating.
pub fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

thread_local! {
    /// Whether a core call is running under `catch_core_panic` on this thread.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The location and message of the panic caught on this thread.
    static CAUGHT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs a call into the core, turning a panic (a broken invariant of the
/// core) into its location and message so that the run fails as a
/// violation with a trace and a replay command instead of aborting.
fn catch_core_panic<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(std::cell::Cell::get) {
                CAUGHT.with(|caught| {
                    *caught.borrow_mut() = Some(info.to_string().replace('\n', " "))
                });
            } else {
                previous(info);
            }
        }));
    });
    CATCHING.with(|catching| catching.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
    CATCHING.with(|catching| catching.set(false));
    result.map_err(|_| {
        CAUGHT
            .with(|caught| caught.borrow_mut().take())
            .unwrap_or_else(|| "a panic".to_string())
    })
}
