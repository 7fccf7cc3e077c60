//! Operator requests: the control socket's calls and watches, status
//! gathered from every member, requests forwarded to the leader, and drills
//! carried out on every member. Each waiting caller is kept with a deadline
//! in a bounded map ([`Waiters`]), and answered exactly once.

use super::waiters::{Ids, Waiters};
use super::Driver;
use crate::clock;
use crate::control::ControlRequest;
use crate::net::peer::{DrillAction, ForwardedRequest, Outcome, PeerDatagram};
use crate::raft::{Input, MembershipChange, ProposalId, RejectReason};
use goose_common::answer;
use goose_common::control::{
    ClusterStatus, ErrorKind, HealthState, MemberInfo, NodeRole, NodeStatus, Reply, Request,
    WatchEvent, WatchEventKind, CHANGE_REPLY_TIMEOUT, CLUSTER_REPLY_TIMEOUT,
    MEMBER_ADD_REPLY_TIMEOUT,
};
use goose_common::partition::{Chain, Matcher, Rule};
use goose_common::{LogIndex, NodeId, Term, Timestamp};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The most callers of each kind waiting at once; more get `Busy`.
pub const WAITERS_MAX: usize = 64;

/// How long `goosectl status` waits for members' answers; the silent ones
/// are shown unreachable.
pub const STATUS_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long `partition split` / `heal` wait for members to confirm.
pub const DRILL_TIMEOUT: Duration = Duration::from_secs(1);

/// How much sooner than its caller each hop of a change gives up: the
/// leader's proposal expires one margin before the daemon that forwarded it
/// stops waiting, which is one margin before goosectl's reply timeout
/// (`Request::reply_timeout`). So the caller always hears from a daemon
/// what happened (the change timed out, the leader did not answer), never
/// just a socket that went quiet.
pub const HOP_MARGIN: Duration = Duration::from_secs(1);

// Every change leaves room for both hops; status probes and drills answer
// within the cluster reply timeout.
const _: () = assert!(2 * HOP_MARGIN.as_millis() < CHANGE_REPLY_TIMEOUT.as_millis());
const _: () = assert!(CHANGE_REPLY_TIMEOUT.as_millis() <= MEMBER_ADD_REPLY_TIMEOUT.as_millis());
const _: () = assert!(STATUS_PROBE_TIMEOUT.as_millis() < CLUSTER_REPLY_TIMEOUT.as_millis());
const _: () = assert!(DRILL_TIMEOUT.as_millis() < CLUSTER_REPLY_TIMEOUT.as_millis());

/// How long the daemon goosectl asked waits for the leader to answer a
/// change it forwarded.
pub(crate) fn forward_wait(change: &ForwardedRequest) -> Duration {
    change.reply_timeout() - HOP_MARGIN
}

/// How long the leader waits for a change to settle before its caller is
/// told it timed out (member add waits for catch-up and promotion).
pub(crate) fn proposal_wait(change: &ForwardedRequest) -> Duration {
    change.reply_timeout() - 2 * HOP_MARGIN
}

/// Who waits for a proposal or a forwarded request.
pub(crate) enum Caller {
    /// A goosectl on this host.
    Local(oneshot::Sender<Reply>),
    /// A member that forwarded its goosectl's request to us, the leader.
    Remote {
        node: NodeId,
        addr: SocketAddr,
        nonce: u64,
    },
}

struct Probe {
    reply: oneshot::Sender<Reply>,
    /// When the first probe was sent (local clock): no member decided its
    /// answer earlier, which bounds its promise on this clock.
    asked: Timestamp,
    expected: Vec<(NodeId, SocketAddr)>,
    answers: BTreeMap<NodeId, NodeStatus>,
}

impl Probe {
    /// Whether every member asked has answered.
    fn is_complete(&self) -> bool {
        self.expected
            .iter()
            .all(|(id, _)| self.answers.contains_key(id))
    }
}

struct Drill {
    reply: oneshot::Sender<Reply>,
    expected: Vec<NodeId>,
    answers: BTreeMap<NodeId, Outcome>,
}

impl Drill {
    /// Whether every member (this one included) has answered.
    fn is_complete(&self) -> bool {
        self.expected.iter().all(|id| self.answers.contains_key(id))
    }
}

/// Every caller waiting for something, by kind, each kind at most
/// [`WAITERS_MAX`] at once; their proposal ids and nonces come from one
/// counter, so no two callers of any kind share one.
pub(crate) struct Waiting {
    ids: Ids,
    proposals: Waiters<ProposalId, (Caller, &'static str)>,
    forwards: Waiters<u64, oneshot::Sender<Reply>>,
    probes: Waiters<u64, Probe>,
    drills: Waiters<u64, Drill>,
}

impl Default for Waiting {
    fn default() -> Waiting {
        Waiting {
            ids: Ids::default(),
            proposals: Waiters::new(WAITERS_MAX),
            forwards: Waiters::new(WAITERS_MAX),
            probes: Waiters::new(WAITERS_MAX),
            drills: Waiters::new(WAITERS_MAX),
        }
    }
}

impl Waiting {
    /// The earliest deadline of anyone waiting.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        [
            self.proposals.next_deadline(),
            self.forwards.next_deadline(),
            self.probes.next_deadline(),
            self.drills.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The partition table's clock. The table (`net::rules`) times a rule's
/// expiry with `std::time::Instant`, and the transport checks every datagram
/// against `Instant::now()`, so the driver reads that clock for the table,
/// not the daemon's [`clock::now`]: a rule must expire on the clock it is
/// checked against, and the table's API is outside the driver.
fn partition_clock() -> Instant {
    Instant::now()
}

pub(crate) fn busy() -> Reply {
    Reply::error(
        ErrorKind::Busy,
        "too many requests in flight; try again shortly",
    )
}

fn too_many_changes() -> Outcome {
    Outcome::Failed {
        kind: ErrorKind::Busy,
        message: "too many changes in flight".into(),
    }
}

fn reject_kind(reason: &RejectReason) -> ErrorKind {
    match reason {
        RejectReason::NotLeader { .. } | RejectReason::LeadershipLost => ErrorKind::NotLeader,
        RejectReason::ChangeInProgress
        | RejectReason::HandoffInProgress
        | RejectReason::NotReady => ErrorKind::ChangeInProgress,
        RejectReason::HandoffTimedOut => ErrorKind::Timeout,
        _ => ErrorKind::InvalidRequest,
    }
}

fn outcome_reply(outcome: Outcome) -> Reply {
    match outcome {
        Outcome::Done(message) => Reply::Ok(message),
        Outcome::Failed { kind, message } => Reply::error(kind, message),
    }
}

fn unreachable_status(id: NodeId, addr: SocketAddr, voter: bool) -> NodeStatus {
    NodeStatus {
        id,
        addr,
        role: NodeRole::Unreachable,
        term: Term(0),
        leader_id: None,
        commit_index: LogIndex(0),
        voter,
        clock_ns: clock::now().as_nanos(),
        lease_until_ns: None,
        last_index: LogIndex(0),
        removed: false,
        drops: BTreeMap::new(),
        eligible: false,
        health: HealthState::Unknown,
        health_reason: None,
        drained: false,
        priority: 0,
        observer: false,
        datagrams_sent: 0,
        datagrams_received: 0,
    }
}

impl Driver {
    pub(crate) async fn on_control(&mut self, request: ControlRequest) -> Result<(), super::Exit> {
        match request {
            ControlRequest::Run {
                updates,
                peer,
                runner,
                grace,
            } => {
                self.add_runner(runner, grace, updates, peer);
                Ok(())
            }
            ControlRequest::Released { runner, handoff } => {
                self.on_released(runner, handoff);
                Ok(())
            }
            ControlRequest::Watch { events, .. } => {
                if self.watchers.len() >= super::WATCHERS_MAX {
                    let _ = events.try_send(busy());
                    return Ok(());
                }
                let status = self.local_status();
                let initial = Reply::Event(WatchEvent {
                    kind: WatchEventKind::Initial,
                    status,
                });
                if events.try_send(initial).is_ok() {
                    self.watchers.push(events);
                }
                Ok(())
            }
            ControlRequest::Call {
                request,
                peer,
                reply,
            } => {
                if request.is_mutating() {
                    tracing::info!(command = request.command_name(), uid = ?peer.map(|p| p.uid), "operator request");
                }
                self.on_call(request, reply).await
            }
        }
    }

    async fn on_call(
        &mut self,
        request: Request,
        reply: oneshot::Sender<Reply>,
    ) -> Result<(), super::Exit> {
        let answer = match request {
            Request::Status { local: true } => Reply::NodeStatus(self.local_status()),
            Request::IsGoose => Reply::IsGoose(self.local_status()),
            Request::Status { local: false } => {
                self.start_probe(reply).await;
                return Ok(());
            }
            Request::MemberList => Reply::Members(self.member_list()),
            Request::MemberAdd { id, addr, observer } => {
                let change = if observer {
                    ForwardedRequest::ObserverAdd { id, addr }
                } else {
                    ForwardedRequest::MemberAdd { id, addr }
                };
                return self.forward_or_propose(change, Caller::Local(reply)).await;
            }
            Request::MemberRemove { id } => {
                return self
                    .forward_or_propose(ForwardedRequest::MemberRemove { id }, Caller::Local(reply))
                    .await;
            }
            Request::StepDown { to } => {
                return self
                    .forward_or_propose(ForwardedRequest::StepDown { to }, Caller::Local(reply))
                    .await;
            }
            Request::MemberPromote { id } => {
                return self
                    .forward_or_propose(ForwardedRequest::Promote { id }, Caller::Local(reply))
                    .await;
            }
            Request::MemberDemote { id } => {
                return self
                    .forward_or_propose(ForwardedRequest::Demote { id }, Caller::Local(reply))
                    .await;
            }
            Request::Drain { drained } => match self.set_drained(drained).await {
                Ok(line) => Reply::Ok(line),
                Err((line, exit)) => {
                    let _ = reply.send(Reply::error(ErrorKind::Internal, line));
                    return Err(exit);
                }
            },
            Request::PartitionList => Reply::Rules(
                self.transport
                    .with_partitions(|t| t.list(partition_clock())),
            ),
            Request::PartitionAdd(rule) => match self
                .transport
                .with_partitions(|t| t.add(rule, partition_clock()))
            {
                Ok(number) => Reply::Ok(format!("rule {number} added")),
                Err(error) => Reply::error(ErrorKind::InvalidRequest, error.to_string()),
            },
            Request::PartitionDelete(number) => {
                let number = usize::try_from(number).unwrap_or(usize::MAX);
                match self
                    .transport
                    .with_partitions(|t| t.delete(number, partition_clock()))
                {
                    Ok(_) => Reply::Ok(format!("rule {number} deleted")),
                    Err(error) => Reply::error(ErrorKind::InvalidRequest, error.to_string()),
                }
            }
            Request::PartitionFlush => {
                let count = self.transport.with_partitions(|t| t.flush());
                Reply::Ok(format!("{count} rules deleted"))
            }
            Request::PartitionSplit {
                sides: (left, right),
            } => {
                self.start_drill(DrillAction::Split { left, right }, reply)
                    .await;
                return Ok(());
            }
            Request::PartitionHeal => {
                self.start_drill(DrillAction::Heal, reply).await;
                return Ok(());
            }
            Request::Watch => Reply::error(ErrorKind::InvalidRequest, "watch is a stream"),
            Request::Run { .. } => Reply::error(ErrorKind::InvalidRequest, "run is a stream"),
            Request::Released { .. } => Reply::error(
                ErrorKind::InvalidRequest,
                "released is sent only on a run stream",
            ),
        };
        let _ = reply.send(answer);
        Ok(())
    }

    fn member_list(&self) -> Vec<MemberInfo> {
        self.node
            .membership()
            .members
            .iter()
            .map(|member| MemberInfo {
                id: member.id,
                addr: member.addr,
                role: member.role,
            })
            .collect()
    }

    /// Proposes on this node if it leads, else forwards to the leader.
    async fn forward_or_propose(
        &mut self,
        request: ForwardedRequest,
        caller: Caller,
    ) -> Result<(), super::Exit> {
        if self.node_is_leader() {
            return self.propose(request, caller).await;
        }
        let Caller::Local(reply) = caller else {
            let not_leader = Outcome::Failed {
                kind: ErrorKind::NotLeader,
                message: format!("node {} is no longer the leader; try again", self.node.id()),
            };
            self.answer(caller, not_leader).await;
            return Ok(());
        };
        let Some(leader) = self.node.leader() else {
            let message =
                "no goose: no leader is reachable from here, so the request cannot be carried out";
            let _ = reply.send(Reply::error(ErrorKind::NoGoose, message));
            return Ok(());
        };
        if !self.waiting.forwards.has_room() {
            let _ = reply.send(busy());
            return Ok(());
        }
        let nonce = self.waiting.ids.fresh();
        let deadline = clock::now().add(forward_wait(&request));
        if let Err(refused) = self.waiting.forwards.insert(nonce, reply, deadline) {
            // Not after `has_room` with a fresh nonce; answered all the same.
            let _ = refused.into_value().send(busy());
            return Ok(());
        }
        self.send_datagram(leader, &PeerDatagram::Forward { nonce, request })
            .await;
        Ok(())
    }

    async fn propose(
        &mut self,
        request: ForwardedRequest,
        caller: Caller,
    ) -> Result<(), super::Exit> {
        if !self.waiting.proposals.has_room() {
            self.answer(caller, too_many_changes()).await;
            return Ok(());
        }
        let id = ProposalId(self.waiting.ids.fresh());
        let deadline = clock::now().add(proposal_wait(&request));
        let (input, what) = match request {
            ForwardedRequest::MemberAdd { id: node, addr } => (
                Input::Propose {
                    id,
                    change: MembershipChange::AddVoter { id: node, addr },
                },
                "member added as a voter",
            ),
            ForwardedRequest::ObserverAdd { id: node, addr } => (
                Input::Propose {
                    id,
                    change: MembershipChange::AddLearner { id: node, addr },
                },
                "member added as an observer",
            ),
            ForwardedRequest::MemberRemove { id: node } => (
                Input::Propose {
                    id,
                    change: MembershipChange::Remove { id: node },
                },
                "member removed",
            ),
            ForwardedRequest::Promote { id: node } => (
                Input::Propose {
                    id,
                    change: MembershipChange::Promote { id: node },
                },
                "member promoted to a voter",
            ),
            ForwardedRequest::Demote { id: node } => (
                Input::Propose {
                    id,
                    change: MembershipChange::Demote { id: node },
                },
                "member demoted to an observer",
            ),
            ForwardedRequest::StepDown { to } => {
                (Input::Handoff { id, target: to }, "handed the goose over")
            }
        };
        if let Err(refused) = self.waiting.proposals.insert(id, (caller, what), deadline) {
            // Not after `has_room` with a fresh id; answered all the same,
            // and nothing is proposed.
            let (caller, _) = refused.into_value();
            self.answer(caller, too_many_changes()).await;
            return Ok(());
        }
        self.step(input).await
    }

    /// Answers a proposal's caller when the core settles it.
    pub(crate) async fn settle(&mut self, id: ProposalId, result: Result<(), RejectReason>) {
        if id == super::SHUTDOWN_PROPOSAL_ID {
            self.shutdown_settled = true;
            match result {
                Ok(()) => tracing::info!("handed the goose over; exiting"),
                Err(reason) => {
                    tracing::warn!(%reason, "could not hand the goose over; exiting anyway")
                }
            }
            return;
        }
        let Some((caller, what)) = self.waiting.proposals.take(&id) else {
            return;
        };
        let outcome = match result {
            Ok(()) => Outcome::Done(format!("{what} (leader {})", self.node.id())),
            // The goose did leave this node, by election instead of a handoff.
            Err(reason @ RejectReason::NotReleased) => Outcome::Done(format!("{what}: {reason}")),
            Err(reason) => Outcome::Failed {
                kind: reject_kind(&reason),
                message: reason.to_string(),
            },
        };
        self.answer(caller, outcome).await;
    }

    async fn answer(&mut self, caller: Caller, outcome: Outcome) {
        match caller {
            Caller::Local(reply) => {
                let _ = reply.send(outcome_reply(outcome));
            }
            Caller::Remote { node, addr, nonce } => {
                self.send_datagram_to(node, addr, &PeerDatagram::ForwardReply { nonce, outcome })
                    .await;
            }
        }
    }

    /// Every member but this node, with its address.
    fn other_members(&self) -> Vec<(NodeId, SocketAddr)> {
        let me = self.node.id();
        self.node
            .membership()
            .members
            .iter()
            .filter(|member| member.id != me)
            .map(|member| (member.id, member.addr))
            .collect()
    }

    /// Asks every other member for its own answer.
    async fn start_probe(&mut self, reply: oneshot::Sender<Reply>) {
        if !self.waiting.probes.has_room() {
            let _ = reply.send(busy());
            return;
        }
        let expected = self.other_members();
        let nonce = self.waiting.ids.fresh();
        let asked = clock::now();
        for &(id, addr) in &expected {
            self.send_datagram_to(id, addr, &PeerDatagram::StatusProbe { nonce })
                .await;
        }
        let probe = Probe {
            reply,
            asked,
            expected,
            answers: BTreeMap::new(),
        };
        let deadline = clock::now().add(STATUS_PROBE_TIMEOUT);
        if let Err(refused) = self.waiting.probes.insert(nonce, probe, deadline) {
            // Not after `has_room` with a fresh nonce; answered at once
            // with the members shown unreachable.
            self.finish_probe(refused.into_value());
            return;
        }
        self.finish_probe_if_complete(nonce);
    }

    /// Answers a probe once every member asked has answered.
    fn finish_probe_if_complete(&mut self, nonce: u64) {
        if let Some(probe) = self.waiting.probes.take_if(&nonce, Probe::is_complete) {
            self.finish_probe(probe);
        }
    }

    /// Answers a probe's caller with what it gathered; the silent members
    /// are shown unreachable.
    fn finish_probe(&mut self, probe: Probe) {
        let Probe {
            reply,
            asked,
            expected,
            mut answers,
        } = probe;
        // Every answer is decided now, when the reply goes out: this node's
        // from a fresh clock read, the members' goose answers by whether
        // their promises, carried onto this clock from when they were asked,
        // still run (design.md §2, "answers are for the instant they are
        // acted on").
        let local = self.local_status();
        let now = clock::now();
        let drift_ppm = self.node.config().clock_drift_ppm;
        let membership = self.node.membership();
        let mut expired = Vec::new();
        let mut members: Vec<NodeStatus> = expected
            .into_iter()
            .map(|(id, addr)| match answers.remove(&id) {
                Some(status) => {
                    let (status, decision) =
                        answer::judge_remote_status(status, asked, now, drift_ppm);
                    if decision.reason() == Some(answer::DuckReason::PromiseExpired) {
                        tracing::debug!(member = %id, %decision, "a member's goose answer ran out before the status reply");
                        expired.push(id);
                    }
                    status
                }
                None => unreachable_status(id, addr, membership.is_voter(id)),
            })
            .collect();
        members.push(local.clone());
        members.sort_by_key(|status| status.id);
        let goose = members
            .iter()
            .filter(|s| s.is_goose())
            .max_by_key(|s| s.term)
            .map(|s| s.id);
        let _ = reply.send(Reply::Status(ClusterStatus {
            local,
            members,
            goose,
            expired,
        }));
    }

    /// Sends a drill to every member and applies it here.
    async fn start_drill(&mut self, action: DrillAction, reply: oneshot::Sender<Reply>) {
        if !self.waiting.drills.has_room() {
            let _ = reply.send(busy());
            return;
        }
        let me = self.node.id();
        let targets = self.other_members();
        let nonce = self.waiting.ids.fresh();
        for &(id, addr) in &targets {
            let datagram = PeerDatagram::Drill {
                nonce,
                action: action.clone(),
            };
            self.send_datagram_to(id, addr, &datagram).await;
        }
        let mut answers = BTreeMap::new();
        answers.insert(me, self.apply_drill(&action));
        let mut expected: Vec<NodeId> = targets.iter().map(|(id, _)| *id).collect();
        expected.push(me);
        let drill = Drill {
            reply,
            expected,
            answers,
        };
        let deadline = clock::now().add(DRILL_TIMEOUT);
        if let Err(refused) = self.waiting.drills.insert(nonce, drill, deadline) {
            // Not after `has_room` with a fresh nonce; answered at once
            // with what is known (the others shown unreachable).
            self.finish_drill(refused.into_value());
            return;
        }
        self.finish_drill_if_complete(nonce);
    }

    /// Carries out a drill on this node's partition table.
    fn apply_drill(&mut self, action: &DrillAction) -> Outcome {
        let me = self.node.id();
        match action {
            DrillAction::Heal => {
                let count = self.transport.with_partitions(|t| t.flush());
                tracing::info!(rules = count, "drill: healed (all partition rules deleted)");
                Outcome::Done(format!("node {me}: {count} rules deleted"))
            }
            DrillAction::Split { left, right } => {
                let others = if left.contains(&me) {
                    right
                } else if right.contains(&me) {
                    left
                } else {
                    return Outcome::Done(format!("node {me}: on neither side, no rules"));
                };
                let now = partition_clock();
                let result = self.transport.with_partitions(|table| {
                    others
                        .iter()
                        .map(|&peer| {
                            table.add(Rule::drop_all(Chain::Both, Matcher::Peer(peer)), now)
                        })
                        .collect::<Result<Vec<usize>, _>>()
                });
                match result {
                    Ok(numbers) => {
                        tracing::info!(
                            ?others,
                            "drill: split (dropping traffic with the other side)"
                        );
                        Outcome::Done(format!("node {me}: {} rules added", numbers.len()))
                    }
                    Err(error) => Outcome::Failed {
                        kind: ErrorKind::InvalidRequest,
                        message: format!("node {me}: {error}"),
                    },
                }
            }
        }
    }

    /// Answers a drill once every member has answered.
    fn finish_drill_if_complete(&mut self, nonce: u64) {
        if let Some(drill) = self.waiting.drills.take_if(&nonce, Drill::is_complete) {
            self.finish_drill(drill);
        }
    }

    /// Answers a drill's caller with every member's outcome; the silent
    /// members are reported unreachable.
    fn finish_drill(&mut self, drill: Drill) {
        let Drill {
            reply,
            expected,
            answers,
        } = drill;
        let mut lines = Vec::new();
        let mut failed = false;
        for id in expected {
            match answers.get(&id) {
                Some(Outcome::Done(message)) => lines.push(message.clone()),
                Some(Outcome::Failed { message, .. }) => {
                    failed = true;
                    lines.push(message.clone());
                }
                None => {
                    failed = true;
                    lines.push(format!("node {id}: unreachable"));
                }
            }
        }
        let message = lines.join("; ");
        let answer = if failed {
            Reply::error(ErrorKind::Timeout, message)
        } else {
            Reply::Ok(message)
        };
        let _ = reply.send(answer);
    }

    /// Handles every datagram other than Raft messages. A storage failure
    /// while proposing a forwarded request is fatal, as anywhere else: the
    /// core already holds the entry in memory, so carrying on would send what
    /// never reached the disk.
    pub(crate) async fn on_operator_datagram(
        &mut self,
        sender: NodeId,
        from: SocketAddr,
        datagram: PeerDatagram,
    ) -> Result<(), super::Exit> {
        match datagram {
            PeerDatagram::Raft(_) => {}
            PeerDatagram::StatusProbe { nonce } => {
                let status = self.local_status();
                self.send_datagram_to(sender, from, &PeerDatagram::StatusReply { nonce, status })
                    .await;
            }
            PeerDatagram::StatusReply { nonce, status } => {
                if let Some(probe) = self.waiting.probes.get_mut(&nonce) {
                    if probe.expected.iter().any(|(id, _)| *id == sender) && status.id == sender {
                        probe.answers.insert(sender, status);
                    }
                }
                self.finish_probe_if_complete(nonce);
            }
            PeerDatagram::Forward { nonce, request } => {
                tracing::info!(from = %sender, ?request, "request forwarded to this node");
                let caller = Caller::Remote {
                    node: sender,
                    addr: from,
                    nonce,
                };
                return self.forward_or_propose(request, caller).await;
            }
            PeerDatagram::ForwardReply { nonce, outcome } => {
                if let Some(reply) = self.waiting.forwards.take(&nonce) {
                    let _ = reply.send(outcome_reply(outcome));
                }
            }
            PeerDatagram::Drill { nonce, action } => {
                let outcome = self.apply_drill(&action);
                self.send_datagram_to(sender, from, &PeerDatagram::DrillReply { nonce, outcome })
                    .await;
            }
            PeerDatagram::DrillReply { nonce, outcome } => {
                if let Some(drill) = self.waiting.drills.get_mut(&nonce) {
                    if drill.expected.contains(&sender) {
                        drill.answers.insert(sender, outcome);
                    }
                }
                self.finish_drill_if_complete(nonce);
            }
        }
        Ok(())
    }

    /// Answers everyone whose deadline has passed.
    pub(crate) async fn expire_waiters(&mut self) {
        let now = clock::now();
        for (_, probe) in self.waiting.probes.take_expired(now) {
            self.finish_probe(probe);
        }
        for (_, drill) in self.waiting.drills.take_expired(now) {
            self.finish_drill(drill);
        }
        for (_, reply) in self.waiting.forwards.take_expired(now) {
            let message = "no answer from the leader in time; the change may still happen";
            let _ = reply.send(Reply::error(ErrorKind::Timeout, message));
        }
        for (_, (caller, _)) in self.waiting.proposals.take_expired(now) {
            let outcome = Outcome::Failed {
                kind: ErrorKind::Timeout,
                message: "the change did not settle in time; it may still happen".into(),
            };
            self.answer(caller, outcome).await;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the driver's waiting callers are bounded per kind by
    //! `WAITERS_MAX` (one full kind leaves the others room), share one
    //! counter of ids, and wake the loop at the earliest deadline of any kind.
    use super::*;
    use crate::driver::waiters::Refused;
    use crate::driver::SHUTDOWN_PROPOSAL_ID;

    fn reply() -> oneshot::Sender<Reply> {
        oneshot::channel().0
    }

    fn drill() -> Drill {
        Drill {
            reply: reply(),
            expected: vec![NodeId(1)],
            answers: BTreeMap::new(),
        }
    }

    /// Each kind takes `WAITERS_MAX` callers and refuses the next (the
    /// caller is told Busy); the other kinds still have room.
    #[test]
    fn each_kind_is_bounded_on_its_own() {
        let mut waiting = Waiting::default();
        let deadline = Timestamp(1);
        for _ in 0..WAITERS_MAX {
            assert!(waiting.forwards.has_room());
            let nonce = waiting.ids.fresh();
            assert!(waiting.forwards.insert(nonce, reply(), deadline).is_ok());
        }
        assert!(!waiting.forwards.has_room());
        let nonce = waiting.ids.fresh();
        let refused = waiting.forwards.insert(nonce, reply(), deadline);
        assert!(matches!(refused, Err(Refused::Full(_))));
        assert!(waiting.proposals.has_room());
        assert!(waiting.probes.has_room());
        assert!(waiting.drills.has_room());
    }

    /// The loop wakes for the earliest deadline whatever kind holds it;
    /// with nobody waiting there is none (the core's deadline alone rules).
    #[test]
    fn the_next_deadline_is_the_earliest_of_any_kind() {
        let mut waiting = Waiting::default();
        assert_eq!(waiting.next_deadline(), None);
        let now = Timestamp(1_000_000_000);
        let forward = waiting.ids.fresh();
        let change = now.add(forward_wait(&ForwardedRequest::StepDown { to: None }));
        assert!(waiting.forwards.insert(forward, reply(), change).is_ok());
        assert_eq!(waiting.next_deadline(), Some(change));
        let nonce = waiting.ids.fresh();
        let drill_deadline = now.add(DRILL_TIMEOUT);
        assert!(waiting
            .drills
            .insert(nonce, drill(), drill_deadline)
            .is_ok());
        assert_eq!(waiting.next_deadline(), Some(drill_deadline));
        assert!(waiting.drills.take(&nonce).is_some());
        assert_eq!(waiting.next_deadline(), Some(change));
    }

    /// Each hop of a change gives up before the one that waits for it: the
    /// leader's proposal, then the forwarding daemon, then goosectl's
    /// control request, so every caller is told what happened.
    #[test]
    fn each_hop_of_a_change_gives_up_before_its_caller() {
        for change in crate::net::peer::every_change() {
            let goosectl = change.request().reply_timeout().unwrap();
            assert!(proposal_wait(&change) < forward_wait(&change));
            assert!(forward_wait(&change) < goosectl);
            assert!(proposal_wait(&change) > Duration::ZERO);
        }
        let add = ForwardedRequest::MemberAdd {
            id: NodeId(4),
            addr: "127.0.0.1:7700".parse().unwrap(),
        };
        assert_eq!(forward_wait(&add), MEMBER_ADD_REPLY_TIMEOUT - HOP_MARGIN);
    }

    /// Proposal ids and nonces come from one counter: no two callers of any
    /// kind get the same one, and none gets the shutdown handoff's.
    #[test]
    fn ids_are_shared_by_every_kind() {
        let mut waiting = Waiting::default();
        let proposal = waiting.ids.fresh();
        let nonce = waiting.ids.fresh();
        assert_ne!(proposal, nonce);
        assert_ne!(ProposalId(proposal), SHUTDOWN_PROPOSAL_ID);
        assert_ne!(ProposalId(nonce), SHUTDOWN_PROPOSAL_ID);
    }
}
