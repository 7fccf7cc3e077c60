//! The event loop (design.md §4): datagrams, control requests and timer
//! deadlines become `Node::step` inputs, and each `Ready` is carried out in
//! order: persist, then send, then events.
//!
//! One task owns the node, the storage and every waiting caller; the
//! transport's receive loop and the control server run beside it and talk
//! to it only through bounded channels or cancel-safe futures.

mod eligibility;
mod operator;
mod runners;
mod timer;
mod waiters;

use crate::clock;
use crate::control::ControlRequest;
use crate::health::HealthReport;
use crate::hooks::{self, Hooks, Reason, Transition};
use crate::net::peer::PeerDatagram;
use crate::net::DropReason;
use crate::net::Transport;
use crate::raft::{Event, GooseAnswer, Input, Node, PeerFaults, ProposalId, Ready};
use crate::storage::{DiskStorage, Storage};
use goose_common::control::{HealthState, NodeRole, NodeStatus, Reply, WatchEvent, WatchEventKind};
use goose_common::{wire, Message, NodeId, Term, Timestamp};
use operator::Waiting;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The most peers whose last source address is remembered (members and
/// recent strangers, such as a joining node that is not a member yet).
pub const PEER_ADDRESSES_MAX: usize = 128;

/// The most open watch streams.
pub const WATCHERS_MAX: usize = 32;

pub use eligibility::Eligibility;
pub use runners::{RELEASE_MARGIN, RUNNERS_MAX};

/// How long a goose waits for its handoff on SIGTERM before it exits anyway,
/// in election timeouts.
const SHUTDOWN_HANDOFF_TIMEOUTS: u32 = 2;

/// The proposal id of the shutdown handoff (caller ids start above it).
const SHUTDOWN_PROPOSAL_ID: ProposalId = ProposalId(0);

/// Why the loop ended.
#[derive(Debug)]
pub enum Exit {
    /// SIGTERM or SIGINT: a clean stop.
    Signal,
    /// Storage failed: the process must exit non-zero.
    StorageFailed(String),
    /// The operating system refused the loop's wake-up timer: exit non-zero.
    TimerFailed(String),
}

/// Everything the loop owns.
pub struct Driver {
    node: Node,
    storage: DiskStorage,
    transport: Arc<Transport>,
    hooks: Hooks,
    state_file: Option<PathBuf>,
    peer_addrs: BTreeMap<NodeId, SocketAddr>,
    waiting: Waiting,
    watchers: Vec<mpsc::Sender<Reply>>,
    runners: Vec<runners::Runner>,
    /// A voluntary handoff waiting for runners and hooks to stop.
    release: Option<runners::Release>,
    /// The number of the last handoff released.
    next_handoff: u64,
    /// The latest lease end told to a runner that has since gone: a
    /// handoff sends no TimeoutNow before it (its job may still be dying).
    gone_until: Timestamp,
    /// How far the hooks have got (see [`Hooks::done`]).
    hooks_done: tokio::sync::watch::Receiver<u64>,
    /// Why the input being stepped would end the goose role, if it would
    /// (a step-down or the shutdown handoff): `GOOSE_REASON` of `on_duck`.
    handoff_reason: Option<Reason>,
    /// The term in which this node last became the goose.
    goose_term: Term,
    deadline: Timestamp,
    goose: bool,
    notify_systemd: bool,
    /// Set once the shutdown handoff has been settled either way.
    shutdown_settled: bool,
    /// What decides this node's eligibility besides being a voter.
    eligibility: Eligibility,
    /// The health check's reports, if one is configured.
    health: Option<tokio::sync::watch::Receiver<HealthReport>>,
    /// What watchers were last told of eligibility: eligible, health, drained.
    reported_eligibility: Option<(bool, HealthState, bool)>,
}

impl Driver {
    /// Wraps a freshly built node and its already-open resources.
    pub fn new(
        node: Node,
        storage: DiskStorage,
        transport: Arc<Transport>,
        hooks: Hooks,
        state_file: Option<PathBuf>,
        health: Option<tokio::sync::watch::Receiver<HealthReport>>,
    ) -> Driver {
        let drained = storage.drained();
        let health_state = if health.is_some() {
            HealthState::Unknown
        } else {
            HealthState::None
        };
        let notify_systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
        let hooks_done = hooks.done();
        Driver {
            deadline: clock::now(),
            node,
            storage,
            transport,
            hooks,
            state_file,
            peer_addrs: BTreeMap::new(),
            waiting: Waiting::default(),
            watchers: Vec::new(),
            runners: Vec::new(),
            release: None,
            next_handoff: 0,
            gone_until: Timestamp(0),
            hooks_done,
            handoff_reason: None,
            goose_term: Term(0),
            goose: false,
            notify_systemd,
            shutdown_settled: false,
            eligibility: Eligibility {
                health: health_state,
                health_reason: None,
                drained,
            },
            health,
            reported_eligibility: None,
        }
    }

    /// Runs until a signal (after a goose's handoff) or a fatal error.
    pub async fn run(
        mut self,
        mut requests: mpsc::Receiver<ControlRequest>,
        mut signals: mpsc::Receiver<i32>,
    ) -> Exit {
        self.report_role(false);
        if let Err(exit) = self.feed_eligibility().await {
            return exit;
        }
        let watchdog = sd_watchdog_interval();
        // Every deadline the loop keeps (the core's, the waiters', the
        // watchdog's, the shutdown handoff's) is on the daemon's clock.
        let mut next_watchdog = clock::now();
        let mut stopping_until: Option<Timestamp> = None;
        let mut hooks_progress = self.hooks.done();
        let mut wake_timer = match timer::WakeTimer::new() {
            Ok(timer) => timer,
            Err(error) => return Exit::TimerFailed(error.to_string()),
        };
        loop {
            if let Some(stopped) = self.release_outcome(clock::now()) {
                if let Err(exit) = self.step(Input::Release { stopped }).await {
                    return exit;
                }
            }
            if clock::now() >= self.deadline {
                if let Err(exit) = self.step(Input::Tick).await {
                    return exit;
                }
            }
            let wake = [self.waiting.next_deadline(), self.release_deadline()]
                .into_iter()
                .flatten()
                .fold(self.deadline, Timestamp::min);
            // Never sooner than 50 µs from now, so a deadline that stays
            // past cannot make the loop spin.
            let wake = wake.max(clock::now().add(Duration::from_micros(50)));
            if let Err(error) = wake_timer.arm(wake) {
                tracing::error!(%error, "cannot set the wake-up timer; exiting");
                return Exit::TimerFailed(error.to_string());
            }
            if let Some(interval) = watchdog {
                // CLOCK_BOOTTIME runs at least as fast as the monotonic
                // clock systemd's watchdog counts on (it also counts a
                // suspend), so a ping is never due later than on that clock.
                if clock::now() >= next_watchdog {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                    next_watchdog = clock::now().add(interval / 2);
                }
            }
            if let Some(until) = stopping_until {
                if self.shutdown_settled || !self.node_is_leader() || clock::now() >= until {
                    return Exit::Signal;
                }
            }
            tokio::select! {
                received = self.transport.recv() => {
                    if let Err(exit) = self.on_datagram(received.header.sender, received.from, &received.payload).await {
                        return exit;
                    }
                }
                Some(request) = requests.recv() => {
                    if let Err(exit) = self.on_control(request).await {
                        return exit;
                    }
                }
                Some(signal) = signals.recv() => {
                    tracing::info!(signal, "stopping");
                    if stopping_until.is_some() || !self.node_is_leader() {
                        return Exit::Signal;
                    }
                    if self.node.handoff_reason().is_some() {
                        // A handoff (a drain, a failed check, a preemption)
                        // is already under way: let it finish rather than
                        // asking for another, which would be refused.
                        tracing::info!("a handoff is under way; exiting once it is done");
                    } else {
                        tracing::info!("handing the goose over before exiting");
                        let input = Input::Handoff { id: SHUTDOWN_PROPOSAL_ID, target: None };
                        if let Err(exit) = self.step(input).await {
                            return exit;
                        }
                    }
                    // Runners and on_duck first, then the handoff itself.
                    let now = clock::now();
                    let timeout = self.node.config().election_timeout_min * SHUTDOWN_HANDOFF_TIMEOUTS;
                    stopping_until = Some(now.add(self.release_wait_left(now) + timeout));
                }
                Ok(()) = hooks_progress.changed() => {}
                report = eligibility::health_changed(&mut self.health) => {
                    if let Err(exit) = self.on_health(report).await {
                        return exit;
                    }
                }
                fired = wake_timer.fired() => {
                    if let Err(error) = fired {
                        tracing::error!(%error, "the wake-up timer failed; exiting");
                        return Exit::TimerFailed(error.to_string());
                    }
                    self.expire_waiters().await;
                }
            }
        }
    }

    fn node_is_leader(&self) -> bool {
        self.node.raft_role() == crate::raft::RaftRole::Leader
    }

    /// Feeds one input to the core and carries out the resulting `Ready`.
    pub(crate) async fn step(&mut self, input: Input) -> Result<(), Exit> {
        self.handoff_reason = match &input {
            Input::Handoff { id, .. } if *id == SHUTDOWN_PROPOSAL_ID => Some(Reason::Shutdown),
            Input::Handoff { .. } => Some(Reason::StepDown),
            Input::Receive(_)
            | Input::Tick
            | Input::Propose { .. }
            | Input::Release { .. }
            | Input::Eligibility { .. } => None,
        };
        let ready = self.node.step(clock::now(), input);
        let result = self.carry_out(ready).await;
        self.handoff_reason = None;
        result
    }

    /// Persist, then send, then events (design.md §4).
    async fn carry_out(&mut self, ready: Ready) -> Result<(), Exit> {
        if !ready.persist.is_empty() {
            if let Err(error) = self.storage.persist(&ready.persist) {
                tracing::error!(%error, "storage failed; exiting (never retrying an fsync)");
                return Err(Exit::StorageFailed(error.to_string()));
            }
        }
        for message in ready.messages {
            self.send_raft(message).await;
        }
        for event in ready.events {
            self.on_event(event).await;
        }
        self.update_runners();
        self.report_eligibility();
        self.deadline = ready.next_deadline;
        Ok(())
    }

    /// The address of a peer: its member address, else where it last wrote from.
    fn addr_of(&self, id: NodeId) -> Option<SocketAddr> {
        let member = self.node.membership().get(id).map(|member| member.addr);
        member.or_else(|| self.peer_addrs.get(&id).copied())
    }

    async fn send_raft(&mut self, message: Message) {
        let to = message.to;
        self.send_datagram(to, &PeerDatagram::Raft(message)).await;
    }

    /// Encodes and sends a datagram to a peer; unknown peers and encoding
    /// failures (bounded messages make them bugs) are logged.
    pub(crate) async fn send_datagram(&mut self, to: NodeId, datagram: &PeerDatagram) {
        let Some(addr) = self.addr_of(to) else {
            tracing::debug!(%to, "no address for peer; message dropped");
            return;
        };
        self.send_datagram_to(to, addr, datagram).await;
    }

    pub(crate) async fn send_datagram_to(
        &mut self,
        to: NodeId,
        addr: SocketAddr,
        datagram: &PeerDatagram,
    ) {
        let payload = match wire::encode(datagram) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%to, %error, "cannot encode datagram");
                return;
            }
        };
        if let Err(error) = self.transport.send(to, addr, &payload).await {
            tracing::error!(%to, %error, "cannot send datagram");
        }
    }

    async fn on_datagram(
        &mut self,
        sender: NodeId,
        from: SocketAddr,
        payload: &[u8],
    ) -> Result<(), Exit> {
        let datagram = match wire::decode::<PeerDatagram>(payload) {
            Ok(datagram) => datagram,
            Err(_) => {
                self.transport
                    .drop_counters()
                    .record(DropReason::Undecodable, from);
                return Ok(());
            }
        };
        self.remember_addr(sender, from);
        match datagram {
            PeerDatagram::Raft(message) => {
                if message.from != sender {
                    // The MAC vouches for the header's sender, not for a claim inside.
                    self.transport
                        .drop_counters()
                        .record(DropReason::UnknownSender, from);
                    return Ok(());
                }
                self.step(Input::Receive(message)).await
            }
            other => self.on_operator_datagram(sender, from, other).await,
        }
    }

    fn remember_addr(&mut self, id: NodeId, addr: SocketAddr) {
        if self.peer_addrs.len() >= PEER_ADDRESSES_MAX && !self.peer_addrs.contains_key(&id) {
            // Forget a non-member first; members' addresses come from the membership anyway.
            let stranger = self
                .peer_addrs
                .keys()
                .copied()
                .find(|known| self.node.membership().get(*known).is_none());
            let forget = stranger.or_else(|| self.peer_addrs.keys().next().copied());
            if let Some(forget) = forget {
                self.peer_addrs.remove(&forget);
            }
        }
        self.peer_addrs.insert(id, addr);
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::BecameGoose { term } => {
                tracing::info!(term = term.0, "became goose");
                self.goose = true;
                self.report_role(true);
                self.notify_watchers(WatchEventKind::BecameGoose);
            }
            Event::BecameDuck { term, leader } => {
                tracing::info!(term = term.0, leader = ?leader.map(|l| l.0), "became duck");
                self.goose = false;
                self.report_role(true);
                self.notify_watchers(WatchEventKind::BecameDuck);
            }
            Event::LeaderChanged { term, leader } => {
                tracing::info!(term = term.0, leader = ?leader.map(|l| l.0), "leader changed");
                self.report_role(false);
                self.notify_watchers(WatchEventKind::LeaderChanged);
            }
            Event::MembershipCommitted { index, membership } => {
                let members: Vec<String> = membership
                    .members
                    .iter()
                    .map(|m| format!("{}={}({:?})", m.id, m.addr, m.role))
                    .collect();
                tracing::info!(
                    index = index.0,
                    term = self.node.hard_state().term.0,
                    ?members,
                    "membership committed"
                );
            }
            Event::Removed => {
                tracing::warn!("this node was removed from the cluster; it no longer takes part");
                self.notify_watchers(WatchEventKind::Removed);
            }
            Event::ContradictsCommitted { from, index } => {
                tracing::error!(
                    peer = from.0,
                    index = index.0,
                    "refused an append from node {from} that would replace committed entry {index}: \
                     evidence of a safety violation elsewhere (a copied or restored data directory, \
                     a disk that lost writes); this node keeps its log"
                );
            }
            Event::Done { id } => self.settle(id, Ok(())).await,
            Event::Rejected { id, reason } => self.settle(id, Err(reason)).await,
        }
    }

    /// Tells hooks, the state file and systemd about the role.
    fn report_role(&mut self, transition: bool) {
        let state = self.node.hard_state();
        let reason = if self.goose {
            self.goose_term = state.term;
            Reason::Elected
        } else if let Some(reason) = self.voluntary_reason() {
            reason
        } else if self.node.is_removed() || !self.node.is_voter() {
            Reason::Removed
        } else if state.term > self.goose_term {
            Reason::HigherTerm
        } else {
            Reason::LeaseLost
        };
        let current = Transition {
            goose: self.goose,
            term: state.term,
            leader: self.node.leader(),
            reason,
        };
        if transition {
            self.hooks.push(current);
        }
        if let Some(path) = &self.state_file {
            if let Err(error) = hooks::write_state_file(path, self.node.id(), current) {
                tracing::warn!(path = %path.display(), %error, "cannot write the state file");
            }
        }
        if self.notify_systemd {
            let role = if self.goose { "goose" } else { "duck" };
            let leader = current.leader.map_or("none".to_string(), |l| l.to_string());
            let mut status = format!("{role}, term {}, leader {leader}", state.term);
            if let Some(why) = self.eligibility.why_not() {
                status.push_str(&format!(", not eligible: {why}"));
            }
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&status)]);
        }
    }

    /// Why a voluntary handoff under way (or being asked for in this
    /// step) gives the role up.
    pub(crate) fn voluntary_reason(&self) -> Option<Reason> {
        self.handoff_reason.or_else(|| {
            self.node
                .handoff_reason()
                .map(|reason| self.eligibility.reason_of(reason))
        })
    }

    fn notify_watchers(&mut self, kind: WatchEventKind) {
        if self.watchers.is_empty() {
            return;
        }
        let status = self.local_status();
        let event = Reply::Event(WatchEvent { kind, status });
        self.watchers
            .retain(|watcher| watcher.try_send(event.clone()).is_ok());
    }

    /// This node's own answer, decided now from a fresh clock read.
    pub(crate) fn local_status(&mut self) -> NodeStatus {
        let answer = self.node.goose(clock::now());
        self.status_of(answer)
    }

    /// This node's status around `answer`, which the caller has just asked
    /// of the core (so its promise is recorded).
    fn status_of(&self, answer: GooseAnswer) -> NodeStatus {
        let listen = self.transport.local_addr().ok();
        let addr = self
            .node
            .membership()
            .get(self.node.id())
            .map(|member| member.addr)
            .or(listen)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let traffic = self.transport.traffic();
        NodeStatus {
            id: self.node.id(),
            addr,
            role: if answer.is_goose() {
                NodeRole::Goose
            } else {
                NodeRole::Duck
            },
            term: answer.term,
            leader_id: answer.leader,
            commit_index: self.node.commit_index(),
            voter: self.node.is_voter(),
            clock_ns: answer.decided_at.as_nanos(),
            lease_until_ns: answer.lease_until.map(Timestamp::as_nanos),
            last_index: self.node.last_index(),
            removed: self.node.is_removed(),
            drops: self
                .transport
                .drop_counters()
                .snapshot()
                .into_iter()
                .chain(peer_fault_counts(self.node.peer_faults()))
                .filter(|(_, count)| *count > 0)
                .map(|(reason, count)| (reason.to_string(), count))
                .collect(),
            eligible: self.node.is_eligible(),
            health: self.eligibility.health,
            health_reason: self.eligibility.health_reason.clone(),
            drained: self.eligibility.drained,
            priority: self.node.config().priority,
            observer: self.node.is_observer(),
            datagrams_sent: traffic.sent,
            datagrams_received: traffic.received,
        }
    }

    /// Tells systemd the daemon is ready (storage loaded, sockets bound).
    pub fn notify_ready(&self) {
        if self.notify_systemd {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        }
    }
}

/// The core's refusals, named as the transport's drops are.
fn peer_fault_counts(faults: PeerFaults) -> [(&'static str, u64); 3] {
    [
        ("wrong_identity", faults.wrong_identity),
        ("contradicts_committed", faults.contradicts_committed),
        ("malformed_append", faults.malformed),
    ]
}

/// systemd's watchdog interval, if it asked for pings.
fn sd_watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec))
    } else {
        None
    }
}
