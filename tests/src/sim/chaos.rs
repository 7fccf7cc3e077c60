//! Random faults, and the plan of a seeded run: which cluster, which
//! timing, which network, and what goes wrong when. Everything is drawn
//! from the one seed, so a seed replays exactly.

use super::checks::{violation, Violation};
use super::network::{NetworkParams, PartitionShape};
use super::world::{
    duration_ns, node_addr, Action, Failure, ReleasePolicy, Sim, SimConfig, SimStats,
};
use super::RaftRole;
use goose_common::{MemberRole, NodeId, Term};
use goosed::raft::{Config, MembershipChange};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// The simulated length of a seeded run.
pub const RUN_DURATION_DEFAULT: Duration = Duration::from_secs(60);

/// How the random faults of a run behave. Durations scale with the election timeout.
#[derive(Clone, Debug, PartialEq)]
pub struct ChaosParams {
    /// The mean time between two random actions.
    pub action_interval_mean: Duration,
    /// When the faults stop: everything is healed and restarted then, and
    /// the rest of the run is fault-free (the liveness phase).
    pub until: Duration,
    /// The highest message-loss rate of a lossy episode.
    pub loss_max: f64,
    /// The most nodes the run may create (voters, learners, removed nodes).
    pub nodes_max: usize,
    /// Whether impostors are started under members' ids (drawn from a
    /// stream of their own, so that without them a seed runs exactly as
    /// it did before they existed).
    pub impostors: bool,
    /// Percent of random actions that change a node's health or drain.
    pub eligibility_percent: u32,
}

/// The chance, per random action, that it starts an impostor.
const IMPOSTOR_PERCENT: u32 = 2;

/// The most nodes a plan creates.
const NODES_PLANNED_MAX: usize = 12;

/// The longest preempt delay a plan draws, in election timeouts.
const PREEMPT_DELAY_TIMEOUTS_MAX: u32 = 8;

/// Which timers a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Heartbeat 50 ms, election timeout 300 ms, jitter 30 ms.
    Default,
    /// Heartbeat 10 ms, election timeout 50 ms, jitter 5 ms.
    Fast,
    /// The default timers with plain Raft's spread: jitter = election timeout.
    DefaultPlainJitter,
    /// The fast timers with plain Raft's spread.
    FastPlainJitter,
}

impl Timing {
    /// The node configuration of this timing for node `id`.
    pub fn config(self, id: NodeId) -> Config {
        match self {
            Timing::Default => Config::new(id),
            Timing::Fast => Config::fast(id),
            Timing::DefaultPlainJitter => {
                let config = Config::new(id);
                Config {
                    election_jitter_max: config.election_timeout_min,
                    ..config
                }
            }
            Timing::FastPlainJitter => {
                let config = Config::fast(id);
                Config {
                    election_jitter_max: config.election_timeout_min,
                    ..config
                }
            }
        }
    }
}

/// Everything a seed decides before the run starts.
#[derive(Clone, Debug)]
pub struct SeedPlan {
    /// The simulator's configuration.
    pub config: SimConfig,
    /// The faults.
    pub chaos: ChaosParams,
    /// The timers.
    pub timing: Timing,
    /// How long the run lasts.
    pub duration: Duration,
}

impl fmt::Display for SeedPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let network = &self.config.network;
        write!(
            f,
            "seed {}: {} voters, {:?} timing, compaction after {} entries, {:?} run ({:?} of faults, one every {:?} on average), delay {:?}+{:?}, duplicates {}, spikes {}",
            self.config.seed,
            self.config.voters,
            self.timing,
            self.config.node_config.compaction_threshold,
            self.duration,
            self.chaos.until,
            self.chaos.action_interval_mean,
            network.delay_base,
            network.delay_tail_mean,
            network.duplicate_probability,
            network.spike_probability,
        )
    }
}

/// The command that replays seed `seed` with its full trace.
pub fn replay_command(seed: u64) -> String {
    format!(
        "GOOSE_SIM_SEED={seed} cargo test -p goose-tests --test simulator -- replay --nocapture"
    )
}

fn pick_weighted<T: Copy>(rng: &mut fastrand::Rng, choices: &[(u32, T)]) -> T {
    let total: u32 = choices.iter().map(|(weight, _)| weight).sum();
    let mut roll = rng.u32(0..total);
    for &(weight, value) in choices {
        if roll < weight {
            return value;
        }
        roll -= weight;
    }
    unreachable!("roll below the total weight")
}

/// The plan of seed `seed`: mostly 3 and 5 voters, the default and the
/// fast timers, sometimes plain Raft's election spread, a quiet or rough
/// network, faults for all but the last stretch of the run.
pub fn plan(seed: u64, duration: Duration) -> SeedPlan {
    plan_with(seed, duration, true)
}

/// [`plan`], with or without health, drain and priorities (`eligibility`):
/// those draw from a stream of their own, so without them a seed plans the
/// run it planned before they existed (the regression seeds run so).
pub fn plan_with(seed: u64, duration: Duration, eligibility: bool) -> SeedPlan {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut eligibility_rng = fastrand::Rng::with_seed(seed ^ 0x0E11_61B1_E000);
    let voters = pick_weighted(
        &mut rng,
        &[
            (4, 1),
            (3, 2),
            (33, 3),
            (5, 4),
            (33, 5),
            (3, 6),
            (10, 7),
            (3, 8),
            (6, 9),
        ],
    );
    let timing = pick_weighted(
        &mut rng,
        &[
            (50, Timing::Default),
            (35, Timing::Fast),
            (8, Timing::DefaultPlainJitter),
            (7, Timing::FastPlainJitter),
        ],
    );
    let mut node_config = timing.config(NodeId(1));
    // Some runs compact their logs often, so snapshots get installed too.
    let compacting = rng.u32(0..100) < 30;
    if compacting {
        node_config.compaction_threshold = rng.usize(2..=16);
    }
    let election_timeout = node_config.election_timeout_min;
    let mut network = if rng.bool() {
        NetworkParams::quiet()
    } else {
        NetworkParams::rough()
    };
    network.delay_base = Duration::from_micros(rng.u64(20..=300));
    network.delay_tail_mean = Duration::from_micros(rng.u64(20..=300));
    let mut config = SimConfig::new(seed, voters, node_config);
    config.network = network;
    config.start_spread = election_timeout / 2;
    config.probe_interval = Some(config.node_config.heartbeat_interval);
    config.replay_command = replay_command(seed);
    let liveness_bound = config.liveness_bound.expect("liveness on by default");
    // Priorities (design.md §2): in half the runs every node keeps the
    // default; otherwise each draws one, with preemption mostly on and a
    // preempt delay of 2 to 8 election timeouts.
    let preempt_delay_max = election_timeout * PREEMPT_DELAY_TIMEOUTS_MAX;
    if eligibility && eligibility_rng.bool() {
        let rng = &mut eligibility_rng;
        config.priorities = (0..NODES_PLANNED_MAX)
            .map(|_| {
                let priority = [0, 50, 100, 100, 150, 200, 255][rng.usize(0..7)];
                let preempt = rng.u32(0..100) < 80;
                let delay = election_timeout * rng.u32(2..=PREEMPT_DELAY_TIMEOUTS_MAX);
                (priority, preempt, delay)
            })
            .collect();
    }
    // (l) is judged once a calm world has had time to elect, let every
    // preempter's delay run out, and retry a preemption cut short before
    // the calm began; the fault-free phase lasts long enough for it.
    let mut fault_free = (liveness_bound * 2).max(Duration::from_secs(3));
    if !config.priorities.is_empty() {
        let preference_bound = liveness_bound + preempt_delay_max * 2;
        config.preference_bound = Some(preference_bound);
        fault_free = fault_free.max(preference_bound + election_timeout * 4);
    }
    // Runners that stop at once, late, or never (design.md §7), bounded so
    // that a calm world still gets a goose within the liveness bound.
    config.release = ReleasePolicy {
        prompt_max: Duration::from_micros(rng.u64(100..=5_000)),
        late_percent: rng.u32(0..=30),
        unconfirmed_percent: rng.u32(0..=15),
        late_max: liveness_bound / 4,
    };
    let chaos = ChaosParams {
        action_interval_mean: election_timeout * rng.u32(2..=6),
        until: duration.saturating_sub(fault_free),
        loss_max: 0.3,
        nodes_max: (voters + 4).min(NODES_PLANNED_MAX),
        impostors: true,
        eligibility_percent: if eligibility {
            eligibility_rng.u32(0..=15)
        } else {
            0
        },
    };
    SeedPlan {
        config,
        chaos,
        timing,
        duration,
    }
}

/// What a seeded run that passed every check did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// The simulated time.
    pub simulated: Duration,
    /// The counts.
    pub stats: SimStats,
    /// The highest term any node reached.
    pub max_term: Term,
    /// A hash of everything observable about the run, to compare replays.
    pub fingerprint: u64,
}

/// How `run_seed` runs.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Print every trace record as it happens.
    pub trace_to_stderr: bool,
    /// Override the run's length (default 60 s).
    pub duration: Option<Duration>,
    /// The deliberately broken checker of the replay test.
    pub goose_forbidden_after: Option<Duration>,
    /// Start no impostors: the chaos of seeds found before impostors existed.
    pub without_impostors: bool,
    /// No health, drain or priority changes: the chaos of seeds found
    /// before eligibility existed.
    pub without_eligibility: bool,
}

/// Runs seed `seed` with random faults and every checker, then checks that
/// a goose exists at the end of the fault-free phase.
pub fn run_seed(seed: u64, options: &RunOptions) -> Result<SeedReport, Box<Failure>> {
    let duration = options.duration.unwrap_or(RUN_DURATION_DEFAULT);
    let SeedPlan {
        mut config,
        mut chaos,
        ..
    } = plan_with(seed, duration, !options.without_eligibility);
    chaos.impostors &= !options.without_impostors;
    config.trace_to_stderr |= options.trace_to_stderr;
    config.goose_forbidden_after = options.goose_forbidden_after;
    let mut sim = Sim::new(config);
    sim.chaos = Some(chaos.clone());
    let first_ns = duration_ns(chaos.action_interval_mean);
    sim.push(first_ns, Action::Chaos);
    sim.run_for(duration)?;
    sim.act(|sim| {
        if sim.goose().is_none() {
            return violation(
                "(h) liveness",
                format!(
                    "no goose at the end of the fault-free phase; nodes now:\n{}",
                    sim.describe_nodes()
                ),
            );
        }
        Ok(())
    })?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    sim.stats().hash(&mut hasher);
    sim.goose_changes().hash(&mut hasher);
    sim.event_number().hash(&mut hasher);
    let mut max_term = Term(0);
    for id in sim.node_ids() {
        let hard_state = sim.durable(id).hard_state;
        max_term = max_term.max(hard_state.term);
        (hard_state.term, hard_state.vote).hash(&mut hasher);
    }
    Ok(SeedReport {
        seed,
        simulated: sim.now(),
        stats: sim.stats().clone(),
        max_term,
        fingerprint: hasher.finish(),
    })
}

/// How likely a random fault aims at the leader rather than any node.
const LEADER_BIAS_PERCENT: u32 = 50;

impl Sim {
    /// The node that leads (the highest term, if several think they do).
    pub(crate) fn leader_index(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let node = slot.node.as_ref()?;
                (node.raft_role() == RaftRole::Leader).then_some((node.hard_state().term, index))
            })
            .max()
            .map(|(_, index)| index)
    }

    /// A random member's slot.
    fn random_index(&mut self) -> usize {
        self.member_slots[self.rng.usize(0..self.member_slots.len())]
    }

    /// A random node, the leader with probability `LEADER_BIAS_PERCENT`.
    fn target_index(&mut self) -> usize {
        let leader = self.leader_index();
        match leader {
            Some(index) if self.rng.u32(0..100) < LEADER_BIAS_PERCENT => index,
            _ => self.random_index(),
        }
    }

    fn random_span(&mut self, low_timeouts: f64, high_timeouts: f64) -> u64 {
        let timeout_ns = duration_ns(self.config.node_config.election_timeout_min) as f64;
        let factor = low_timeouts + self.rng.f64() * (high_timeouts - low_timeouts);
        (timeout_ns * factor) as u64
    }

    /// One random action of the fault plan, then the next one is scheduled;
    /// past `until`, everything is healed instead and no more faults come.
    pub(crate) fn chaos_step(&mut self) -> Result<(), Violation> {
        let params = self.chaos.clone().expect("chaos events only in chaos runs");
        if self.now_ns >= duration_ns(params.until) {
            return self.heal_everything();
        }
        if params.impostors && self.impostor_rng.u32(0..100) < IMPOSTOR_PERCENT {
            self.random_impostor()?;
            self.schedule_chaos(&params);
            return Ok(());
        }
        if self.eligibility_rng.u32(0..100) < params.eligibility_percent {
            self.random_eligibility_change()?;
            self.schedule_chaos(&params);
            return Ok(());
        }
        match self.rng.u32(0..100) {
            0..25 => self.random_partition(),
            25..40 => self.random_crash(),
            40..50 => self.random_pause(),
            50..58 => self.random_loss(params.loss_max),
            58..72 => self.random_membership_change(params.nodes_max)?,
            72..82 => {
                let index = self.target_index();
                let target = self.random_member(index).filter(|_| self.rng.bool());
                self.handoff_at(index, target)?;
            }
            82..92 => {
                self.note("heal the network, loss ends".to_string());
                self.links.heal();
                self.loss_probability = 0.0;
            }
            92..100 => self.random_operator_action()?,
            _ => {}
        }
        self.schedule_chaos(&params);
        Ok(())
    }

    /// Schedules the next random action, at the latest when the faults end
    /// (so the fault-free phase is as long as planned).
    fn schedule_chaos(&mut self, params: &ChaosParams) {
        let until_ns = duration_ns(params.until);
        let next_ns = self.now_ns + self.exponential_ns(params.action_interval_mean);
        self.push(next_ns.min(until_ns.max(self.now_ns)), Action::Chaos);
    }

    /// The start of the fault-free phase: the network whole and lossless,
    /// every node running and unpaused.
    fn heal_everything(&mut self) -> Result<(), Violation> {
        self.note("faults end: heal everything".to_string());
        self.links.heal();
        self.partition_epoch += 1;
        self.loss_probability = 0.0;
        if let Some(impostor) = self.running_impostor() {
            self.retire(impostor);
        }
        for index in self.member_slots.clone() {
            if self.nodes[index].paused {
                self.resume_node(index);
            }
        }
        for index in self.member_slots.clone() {
            self.set_health_at(index, true)?;
            self.set_drained_at(index, false)?;
        }
        for index in self.member_slots.clone() {
            if self.nodes[index].node.is_none() {
                self.start_node_from_chaos(index)?;
            }
        }
        Ok(())
    }

    /// A health check that fails or passes again (sometimes flapping a few
    /// times within an election timeout or two), or an operator's drain or
    /// undrain; aimed at the leader half the time.
    fn random_eligibility_change(&mut self) -> Result<(), Violation> {
        let index = self.target_index();
        match self.eligibility_rng.u32(0..100) {
            0..55 => {
                let healthy = !self.nodes[index].healthy;
                self.set_health_at(index, healthy)?;
            }
            55..75 => {
                let flips = self.eligibility_rng.u32(2..=7);
                let span_ns = self.random_span(0.1, 2.0);
                for _ in 0..flips {
                    let at_ns = self.now_ns + self.eligibility_rng.u64(0..=span_ns);
                    self.push(at_ns, Action::HealthFlip { node: index });
                }
            }
            _ => {
                let drained = !self.nodes[index].drained;
                self.set_drained_at(index, drained)?;
            }
        }
        Ok(())
    }

    fn start_node_from_chaos(&mut self, index: usize) -> Result<(), Violation> {
        let incarnation = self.nodes[index].incarnation;
        // Through the queue, so the start is an event like any other.
        self.push(
            self.now_ns,
            Action::Start {
                node: index,
                incarnation,
                reboot: false,
            },
        );
        Ok(())
    }

    fn random_partition(&mut self) {
        let mut ids: Vec<u64> = self.node_ids().iter().map(|id| id.0).collect();
        let count = ids.len();
        if count < 2 {
            return;
        }
        self.rng.shuffle(&mut ids);
        let shape = match self.rng.u32(0..6) {
            0 => {
                let index = self.target_index();
                PartitionShape::Isolate(self.nodes[index].id.0)
            }
            1 => {
                let cut = self.rng.usize(1..count);
                PartitionShape::Split(ids[..cut].to_vec(), ids[cut..].to_vec())
            }
            2 => {
                let to_count = self.rng.usize(1..count);
                PartitionShape::OneWay {
                    from: ids[0],
                    to: ids[1..=to_count].to_vec(),
                }
            }
            3 if count >= 3 => {
                let cut = self.rng.usize(2..count);
                PartitionShape::Bridge {
                    bridge: ids[0],
                    left: ids[1..cut].to_vec(),
                    right: ids[cut..].to_vec(),
                }
            }
            4 if count >= 4 => {
                let majority = count / 2 + 1;
                let reach = (majority - 1).div_ceil(2).max(1);
                PartitionShape::Ring { order: ids, reach }
            }
            _ => {
                let mut cut = Vec::new();
                for &from in &ids {
                    for &to in &ids {
                        if from != to && self.rng.u32(0..100) < 30 {
                            cut.push((from, to));
                        }
                    }
                }
                PartitionShape::RandomLinks(cut)
            }
        };
        self.apply_partition(&shape);
        let heal_ns = self.now_ns + self.random_span(0.3, 8.0);
        let epoch = self.partition_epoch;
        self.push(heal_ns, Action::Heal { epoch });
    }

    fn random_crash(&mut self) {
        let index = self.target_index();
        if self.nodes[index].node.is_none() {
            return;
        }
        self.crash_node(index);
        let restart_ns = self.now_ns + self.random_span(0.1, 6.0);
        let incarnation = self.nodes[index].incarnation;
        let reboot = self.rng.u32(0..100) < 20;
        self.push(
            restart_ns,
            Action::Start {
                node: index,
                incarnation,
                reboot,
            },
        );
    }

    fn random_pause(&mut self) {
        let index = self.target_index();
        if !self.nodes[index].is_up() {
            return;
        }
        self.pause_node(index);
        // Mostly longer than the lease, sometimes shorter.
        let resume_ns = self.now_ns + self.random_span(0.2, 4.0);
        let incarnation = self.nodes[index].incarnation;
        self.push(
            resume_ns,
            Action::Resume {
                node: index,
                incarnation,
            },
        );
    }

    fn random_loss(&mut self, loss_max: f64) {
        self.loss_probability = 0.01 + self.rng.f64() * (loss_max - 0.01);
        self.loss_epoch += 1;
        self.note(format!(
            "message loss {:.0}%",
            self.loss_probability * 100.0
        ));
        let end_ns = self.now_ns + self.random_span(1.0, 8.0);
        let epoch = self.loss_epoch;
        self.push(end_ns, Action::LossEnd { epoch });
    }

    /// What operators do (design.md §9), also: start another process
    /// under a running member's id with a fresh data directory, at the
    /// member's address, until the operator notices and stops it.
    fn random_impostor(&mut self) -> Result<(), Violation> {
        let index = self.target_index();
        let started = self.nodes.iter().filter(|slot| slot.impostor).count();
        if self.nodes[index].node.is_none()
            || started >= super::checks::IMPOSTORS_MAX
            || self.running_impostor().is_some()
            || !self.identity_bound(index)
        {
            return Ok(());
        }
        // With --peer flags naming only itself, a fresh data directory is
        // a new one-node cluster that never talks to this one: nothing can
        // tell it from a cluster of its own (README, assumptions).
        let voters = self.nodes[index]
            .node
            .as_ref()
            .map_or(0, |node| node.membership().voters().count());
        let peers = voters >= 2 && self.rng.bool();
        let impostor = self.start_impostor_at(index, peers)?;
        let retire_ns = self.now_ns + self.random_span(0.5, 8.0);
        self.push(retire_ns, Action::Retire { node: impostor });
        Ok(())
    }

    /// What operators do (design.md §9): restart a node with other timings;
    /// rebuild a member under its old id (remove it, wipe its data
    /// directory, start it with `--join`; it is added again by a later
    /// membership change); or remove a member and bring it back with its
    /// old data directory.
    fn random_operator_action(&mut self) -> Result<(), Violation> {
        let index = self.target_index();
        if self.nodes[index].node.is_none() {
            return Ok(());
        }
        let kind = self.rng.u32(0..3);
        let id = self.nodes[index].id;
        self.crash_node(index);
        let incarnation = self.nodes[index].incarnation;
        let back_ns = self.now_ns + self.random_span(0.5, 6.0);
        if kind == 0 {
            let config = self.random_timing(id);
            self.note(format!(
                "n{id} restarts with heartbeat {:?}, election timeout {:?}",
                config.heartbeat_interval, config.election_timeout_min
            ));
            let bound = config.election_timeout_min * 10;
            let liveness = self.config.liveness_bound.map(|b| b.max(bound));
            self.config.liveness_bound = liveness;
            self.nodes[index].config = config;
            self.stats.retimed += 1;
            let reboot = false;
            self.push(
                back_ns,
                Action::Start {
                    node: index,
                    incarnation,
                    reboot,
                },
            );
            return Ok(());
        }
        // Before removing a member (to rebuild it, or to bring it back
        // later), the operator stops any stray process under its id: were
        // the stray still running when the id is added back, the leader
        // could bind the stray's identity instead of the member's (README,
        // "A second goosed under a member's id"; simulator seed 77044).
        if let Some(impostor) = self.running_impostor() {
            if self.nodes[impostor].id == id {
                self.retire(impostor);
            }
        }
        if let Some(leader) = self.leader_index().filter(|&leader| leader != index) {
            self.propose_at(leader, MembershipChange::Remove { id })?;
        }
        let action = if kind == 1 {
            Action::Rebuild {
                node: index,
                incarnation,
            }
        } else {
            Action::Start {
                node: index,
                incarnation,
                reboot: false,
            }
        };
        self.push(back_ns, action);
        Ok(())
    }

    /// Whether the leader has committed a membership that binds member
    /// `index`'s id to its identity. Before that, nothing in a message tells
    /// the member from another process under its id: the transport's twin
    /// detection (two boot ids interleaving) is all that protects the
    /// cluster then, and the simulator does not model the transport. An
    /// impostor answered first may even be bound instead of the member,
    /// which then votes for nobody until it is removed and added again.
    fn identity_bound(&self, index: usize) -> bool {
        let Some(leader) = self.leader_index() else {
            return false;
        };
        let slot = &self.nodes[index];
        let node = self.nodes[leader].node.as_ref().expect("a leader runs");
        node.committed_membership()
            .get(slot.id)
            .is_some_and(|member| member.identity == slot.durable.identity)
    }

    /// Timings an operator might restart a node with: the default, the
    /// fast profile, or any valid pair (heartbeat 10–50 ms, election
    /// timeout 3 to 30 heartbeats, at most 300 ms).
    fn random_timing(&mut self, id: NodeId) -> Config {
        let compaction_threshold = self.config.node_config.compaction_threshold;
        let config = match self.rng.u32(0..3) {
            0 => Config::new(id),
            1 => Config::fast(id),
            _ => {
                let heartbeat_ms = self.rng.u64(10..=50);
                let timeout_ms = self
                    .rng
                    .u64(3 * heartbeat_ms..=(30 * heartbeat_ms).min(300));
                let election_timeout_min = Duration::from_millis(timeout_ms);
                Config {
                    heartbeat_interval: Duration::from_millis(heartbeat_ms),
                    election_timeout_min,
                    election_jitter_max: election_timeout_min / 10,
                    ..Config::new(id)
                }
            }
        };
        debug_assert!(config.validate().is_ok(), "{config:?}");
        // Priorities are not timings: the node keeps its own.
        let own = &self.slot_config(id);
        Config {
            compaction_threshold,
            priority: own.priority,
            preempt: own.preempt,
            preempt_delay: own.preempt_delay,
            ..config
        }
    }

    /// The configuration member `id` runs with now.
    fn slot_config(&self, id: NodeId) -> Config {
        let index = self.index_of(id);
        self.nodes[index].config.clone()
    }

    /// A random member of the membership node `index` holds.
    fn random_member(&mut self, index: usize) -> Option<NodeId> {
        let node = self.nodes[index].node.as_ref()?;
        let members: Vec<NodeId> = node.membership().members.iter().map(|m| m.id).collect();
        if members.is_empty() {
            return None;
        }
        Some(members[self.rng.usize(0..members.len())])
    }

    /// Adds a voter or learner (a node that never was a member, or a new
    /// one), or removes a random member, asking the leader most of the time.
    fn random_membership_change(&mut self, nodes_max: usize) -> Result<(), Violation> {
        let index = match self.leader_index() {
            Some(leader) if self.rng.u32(0..100) < 80 => leader,
            _ => self.random_index(),
        };
        let Some(node) = self.nodes[index].node.as_ref() else {
            return Ok(());
        };
        let membership = node.membership().clone();
        let draw = self.rng.u32(0..100);
        let change = if draw < 55 {
            let fresh = self
                .member_slots
                .iter()
                .map(|&slot| &self.nodes[slot])
                .find(|slot| {
                    slot.durable.is_empty()
                        && membership.get(slot.id).is_none()
                        && slot.node.is_some()
                });
            let id = match fresh {
                Some(slot) => slot.id,
                None if self.member_slots.len() < nodes_max => {
                    NodeId(self.member_slots.len() as u64 + 1)
                }
                None => return Ok(()),
            };
            let addr = node_addr(id);
            if self.rng.u32(0..100) < 70 {
                MembershipChange::AddVoter { id, addr }
            } else {
                MembershipChange::AddLearner { id, addr }
            }
        } else if draw < 80 {
            let members: Vec<NodeId> = membership
                .members
                .iter()
                .filter(|m| m.role == MemberRole::Voter || self.rng.bool())
                .map(|m| m.id)
                .collect();
            if members.is_empty() {
                return Ok(());
            }
            MembershipChange::Remove {
                id: members[self.rng.usize(0..members.len())],
            }
        } else {
            // Promote an observer, or demote a voter (the goose included).
            let promote = draw < 90;
            let wanted = if promote {
                MemberRole::Learner
            } else {
                MemberRole::Voter
            };
            let members: Vec<NodeId> = membership
                .members
                .iter()
                .filter(|m| m.role == wanted)
                .map(|m| m.id)
                .collect();
            if members.is_empty() {
                return Ok(());
            }
            let id = members[self.rng.usize(0..members.len())];
            if promote {
                self.stats.promotions += 1;
                MembershipChange::Promote { id }
            } else {
                self.stats.demotions += 1;
                MembershipChange::Demote { id }
            }
        };
        self.propose_at(index, change)?;
        Ok(())
    }
}

/// The figures of many seeded runs.
#[derive(Debug, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Simulated time, summed.
    pub simulated: Duration,
    /// Events, summed.
    pub events: u64,
    /// Steps, summed.
    pub steps: u64,
    /// Goose questions, summed.
    pub goose_questions: u64,
    /// Crashes, partitions and pauses, summed.
    pub faults: u64,
    /// Membership proposals and handoffs, summed.
    pub requests: u64,
    /// Of which settled with `Done`.
    pub done: u64,
    /// Calm periods whose liveness held.
    pub liveness_checks: u64,
    /// Simulated nanoseconds with a goose.
    pub goose_ns: u64,
    /// The highest term reached in any run.
    pub max_term: Term,
    /// Jobs the modelled runners started, summed.
    pub jobs: u64,
    /// Handoffs released (runners confirmed), summed.
    pub releases: u64,
    /// Of which late.
    pub releases_late: u64,
    /// Releases not confirmed (given up without TimeoutNow), summed.
    pub releases_unconfirmed: u64,
    /// Operator actions, summed: restarts with other timings, rebuilds
    /// under an old id, impostors under a member's id.
    pub retimed: u64,
    /// See `retimed`.
    pub rebuilds: u64,
    /// See `retimed`.
    pub impostors: u64,
    /// Health verdicts that changed, summed.
    pub health_changes: u64,
    /// Drains and undrains, summed.
    pub drains: u64,
    /// Calm periods whose goose was checked against priorities (l), summed.
    pub preference_checks: u64,
    /// Promotions and demotions proposed, summed.
    pub promotions: u64,
    /// See `promotions`.
    pub demotions: u64,
    /// Observer answers checked by (m), summed.
    pub observer_answers: u64,
    /// The failures (the first few).
    pub failures: Vec<Box<Failure>>,
    /// How many failed in all.
    pub failed: u64,
    /// The failed seeds by the checker that caught them.
    pub failed_seeds: std::collections::BTreeMap<&'static str, Vec<u64>>,
}

/// How many failures a summary keeps in full.
pub const FAILURES_KEPT_MAX: usize = 5;

/// Runs `seeds` on `threads` threads and sums up.
pub fn run_seeds(seeds: &[u64], threads: usize, options: &RunOptions) -> Summary {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let summary = std::sync::Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let position = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(position) else {
                    break;
                };
                let outcome = run_seed(seed, options);
                let mut summary = summary.lock().expect("no thread panics holding the lock");
                summary.seeds += 1;
                match outcome {
                    Ok(report) => {
                        let stats = &report.stats;
                        summary.simulated += report.simulated;
                        summary.events += stats.events;
                        summary.steps += stats.steps;
                        summary.goose_questions += stats.goose_questions;
                        summary.faults += stats.crashes + stats.partitions + stats.pauses;
                        summary.requests += stats.proposals + stats.handoffs;
                        summary.done += stats.done;
                        summary.liveness_checks += stats.liveness_checks;
                        summary.goose_ns += stats.goose_ns;
                        summary.max_term = summary.max_term.max(report.max_term);
                        summary.retimed += stats.retimed;
                        summary.rebuilds += stats.rebuilds;
                        summary.impostors += stats.impostors;
                        summary.jobs += stats.jobs;
                        summary.releases += stats.releases;
                        summary.releases_late += stats.releases_late;
                        summary.releases_unconfirmed += stats.releases_unconfirmed;
                        summary.health_changes += stats.health_changes;
                        summary.drains += stats.drains;
                        summary.preference_checks += stats.preference_checks;
                        summary.promotions += stats.promotions;
                        summary.demotions += stats.demotions;
                        summary.observer_answers += stats.observer_answers;
                    }
                    Err(failure) => {
                        summary.failed += 1;
                        summary
                            .failed_seeds
                            .entry(failure.violation.checker)
                            .or_default()
                            .push(seed);
                        if summary.failures.len() < FAILURES_KEPT_MAX {
                            summary.failures.push(failure);
                        }
                    }
                }
            });
        }
    });
    summary
        .into_inner()
        .expect("no thread panics holding the lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that a failing seed replays exactly: a deliberately broken
    /// checker (any goose answer after 5 s is a violation) fails seed 7,
    /// and running seed 7 again fails at the same event, the same instant,
    /// with the same message and the same trace, and names the command.
    #[test]
    fn failing_seed_replays_identically() {
        let options = RunOptions {
            duration: Some(Duration::from_secs(10)),
            goose_forbidden_after: Some(Duration::from_secs(5)),
            ..RunOptions::default()
        };
        let first = run_seed(7, &options).expect_err("the broken checker fires");
        let second = run_seed(7, &options).expect_err("the broken checker fires again");
        assert_eq!(first.violation.checker, "broken test checker");
        assert!(first.time_ns > 5_000_000_000);
        assert_eq!(first.event_number, second.event_number);
        assert_eq!(first.time_ns, second.time_ns);
        assert_eq!(first.violation, second.violation);
        assert_eq!(first.trace, second.trace);
        assert!(
            first.trace.lines().count() >= 100,
            "a readable trace is kept"
        );
        assert!(first
            .replay_command
            .starts_with("GOOSE_SIM_SEED=7 cargo test"));
        assert!(first.to_string().contains(&first.replay_command));
    }

    /// Checks that plans mix the configurations the issue asks for: all
    /// cluster sizes from 1 to 9 (mostly 3 and 5), both timer profiles and
    /// plain Raft's election spread.
    #[test]
    fn plans_mix_sizes_and_timings() {
        let plans: Vec<SeedPlan> = (0..2_000)
            .map(|seed| plan(seed, RUN_DURATION_DEFAULT))
            .collect();
        for voters in 1..=9 {
            assert!(
                plans.iter().any(|p| p.config.voters == voters),
                "no plan with {voters} voters"
            );
        }
        let three_or_five = plans
            .iter()
            .filter(|p| matches!(p.config.voters, 3 | 5))
            .count();
        assert!(three_or_five > plans.len() / 2);
        for timing in [
            Timing::Default,
            Timing::Fast,
            Timing::DefaultPlainJitter,
            Timing::FastPlainJitter,
        ] {
            assert!(
                plans.iter().any(|p| p.timing == timing),
                "no plan with {timing:?}"
            );
        }
        assert!(plans
            .iter()
            .all(|p| p.chaos.until + Duration::from_secs(3) <= p.duration));
    }
}
