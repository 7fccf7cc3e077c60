//! Unit tests of the core through a tiny deterministic cluster: messages
//! take a fixed delay, nothing is lost unless a link is cut, every node's
//! clock is exact. The simulator in `tests/` covers faults and many seeds;
//! these tests pin the paper's rules one by one and cite the section.

use super::node::{Handoff, HandoffStage};
use super::*;
use goose_common::{
    Append, AppendReply, Entry, EntryPayload, HardState, Identity, InstallSnapshot, LogIndex,
    Membership, Message, MessageBody, NodeId, RequestVote, Round, Snapshot, Term, Timestamp,
    VoteReply,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const DELAY: Duration = Duration::from_micros(300);

struct Cluster {
    now: Timestamp,
    nodes: BTreeMap<NodeId, Node>,
    durable: BTreeMap<NodeId, PersistedState>,
    deadlines: BTreeMap<NodeId, Timestamp>,
    in_flight: Vec<(Timestamp, Message)>,
    cut: BTreeSet<(NodeId, NodeId)>,
    events: Vec<(NodeId, Event)>,
    /// Whether a node that starts a handoff is released at once, as a
    /// daemon with no runner and no `on_duck` hook does.
    auto_release: bool,
    /// TimeoutNow messages sent, by sender.
    timeout_now_from: Vec<NodeId>,
    /// Settings other than the defaults, by node, used at (re)start.
    configs: BTreeMap<NodeId, Config>,
    /// Appends sent, by (sender, receiver).
    appends_sent: BTreeMap<(NodeId, NodeId), u64>,
}

fn addr(id: u64) -> goose_common::SocketAddr {
    format!("127.0.0.1:{}", 7700 + id).parse().unwrap()
}

fn voters(ids: &[u64]) -> Membership {
    Membership::with_voters(ids.iter().map(|&id| (NodeId(id), addr(id))))
}

impl Cluster {
    fn new(size: u64) -> Cluster {
        let ids: Vec<u64> = (1..=size).collect();
        let mut cluster = Cluster {
            now: Timestamp(1_000_000_000),
            nodes: BTreeMap::new(),
            durable: BTreeMap::new(),
            deadlines: BTreeMap::new(),
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            events: Vec::new(),
            auto_release: true,
            timeout_now_from: Vec::new(),
            configs: BTreeMap::new(),
            appends_sent: BTreeMap::new(),
        };
        for &id in &ids {
            cluster.start(
                NodeId(id),
                PersistedState::bootstrap(Identity(id), voters(&ids)),
            );
        }
        cluster
    }

    fn start(&mut self, id: NodeId, state: PersistedState) {
        let config = self.configs.get(&id).cloned().unwrap_or(Config::new(id));
        let node = Node::new(config, state.clone(), id.0, self.now).unwrap();
        self.durable.insert(id, state);
        self.deadlines.insert(id, self.now);
        self.nodes.insert(id, node);
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.deadlines.remove(&id);
    }

    fn step(&mut self, id: NodeId, input: Input) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let ready = node.step(self.now, input);
        let releasing = node.awaits_release();
        self.durable.get_mut(&id).unwrap().apply(&ready.persist);
        for message in ready.messages {
            if message.body == MessageBody::TimeoutNow {
                self.timeout_now_from.push(message.from);
            }
            if matches!(message.body, MessageBody::Append(_)) {
                *self
                    .appends_sent
                    .entry((message.from, message.to))
                    .or_default() += 1;
            }
            if !self.cut.contains(&(message.from, message.to)) {
                self.in_flight.push((self.now.add(DELAY), message));
            }
        }
        self.events
            .extend(ready.events.into_iter().map(|event| (id, event)));
        self.deadlines.insert(id, ready.next_deadline);
        if releasing && self.auto_release {
            self.step(id, Input::Release { stopped: true });
        }
    }

    /// Runs until `until`, processing messages and deadlines in time order.
    fn run_until(&mut self, until: Timestamp) {
        loop {
            let next_message = self.in_flight.iter().map(|(at, _)| *at).min();
            let next_deadline = self.deadlines.values().copied().min();
            let next = match (next_message, next_deadline) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(until),
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = next.max(self.now);
            if let Some(position) = self.in_flight.iter().position(|(at, _)| *at <= self.now) {
                let (_, message) = self.in_flight.remove(position);
                self.step(message.to, Input::Receive(message));
                self.check_one_goose();
                continue;
            }
            let due: Vec<NodeId> = self
                .deadlines
                .iter()
                .filter(|(_, &at)| at <= self.now)
                .map(|(&id, _)| id)
                .collect();
            for id in due {
                self.step(id, Input::Tick);
            }
            self.check_one_goose();
        }
    }

    fn run_for(&mut self, duration: Duration) {
        let until = self.now.add(duration);
        self.run_until(until);
    }

    fn geese(&mut self) -> Vec<NodeId> {
        let now = self.now;
        self.nodes
            .iter_mut()
            .filter_map(|(&id, n)| n.goose(now).is_goose().then_some(id))
            .collect()
    }

    fn check_one_goose(&mut self) {
        let geese = self.geese();
        assert!(geese.len() <= 1, "two geese at {:?}: {geese:?}", self.now);
    }

    fn goose(&mut self) -> Option<NodeId> {
        self.geese().first().copied()
    }

    /// Restarts `id` from its durable state with `config`.
    fn restart_with(&mut self, id: NodeId, config: Config) {
        self.configs.insert(id, config);
        self.crash(id);
        let state = self.durable[&id].clone();
        self.start(id, state);
    }

    fn set_eligible(&mut self, id: NodeId, eligible: bool) {
        self.step(id, Input::Eligibility { eligible });
    }

    fn isolate(&mut self, id: NodeId) {
        for &other in self.durable.keys() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }
}

#[test]
fn a_single_node_becomes_the_goose() {
    // design.md §2: a lone voter is its own majority.
    let mut cluster = Cluster::new(1);
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.goose(), Some(NodeId(1)));
}

#[test]
fn three_nodes_elect_exactly_one_goose() {
    // Raft §5.2: one leader per term; design.md §2: it answers goose.
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(2));
    let goose = cluster.goose().expect("a goose within two seconds");
    let answer = cluster.nodes.get_mut(&goose).unwrap().goose(cluster.now);
    let promise = answer.lease_until.unwrap();
    assert!(promise > cluster.now && promise <= cluster.now.add(Duration::from_millis(10)));
    let leaders = cluster
        .nodes
        .values()
        .filter(|n| n.raft_role() == RaftRole::Leader)
        .count();
    assert_eq!(leaders, 1);
}

#[test]
fn a_restarted_node_grants_no_vote_for_an_election_timeout() {
    // design.md §2: a node that starts behaves as if it had just heard from a leader.
    let membership = voters(&[1, 2, 3]);
    let start = Timestamp(5_000_000_000);
    let mut node = Node::new(
        Config::new(NodeId(1)),
        PersistedState::bootstrap(Identity(1), membership),
        1,
        start,
    )
    .unwrap();
    let request = |term| Message {
        from: NodeId(2),
        from_identity: Identity::UNKNOWN,
        to: NodeId(1),
        to_identity: Identity::UNKNOWN,
        term: Term(term),
        body: MessageBody::RequestVote(RequestVote {
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
            handoff: false,
        }),
    };
    let early = node.step(
        start.add(Duration::from_millis(100)),
        Input::Receive(request(1)),
    );
    assert!(early.messages.is_empty(), "ignored while sticky: {early:?}");
    assert_eq!(node.hard_state().term, Term(0), "the term did not move");
    let later = node.step(
        start.add(Duration::from_millis(301)),
        Input::Receive(request(1)),
    );
    let granted = later
        .messages
        .iter()
        .any(|m| m.body == MessageBody::RequestVoteReply(VoteReply { granted: true }));
    assert!(granted, "granted once the timeout passed: {later:?}");
    assert_eq!(
        later.persist.hard_state.unwrap().vote,
        Some(NodeId(2)),
        "the vote is persisted"
    );
}

#[test]
fn a_pre_vote_never_changes_the_term() {
    // Dissertation §9.6: PreVote keeps a partitioned node from inflating terms.
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let goose = cluster.goose().unwrap();
    let duck = *cluster.nodes.keys().find(|&&id| id != goose).unwrap();
    let term = cluster.nodes[&goose].hard_state().term;
    cluster.isolate(duck);
    cluster.run_for(Duration::from_secs(5));
    assert_eq!(
        cluster.nodes[&duck].hard_state().term,
        term,
        "the isolated duck kept its term"
    );
    cluster.cut.clear();
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(
        cluster.goose(),
        Some(goose),
        "healing does not disturb the goose"
    );
    assert_eq!(cluster.nodes[&goose].hard_state().term, term);
}

#[test]
fn an_isolated_goose_stops_at_its_lease_end_and_another_takes_over() {
    // design.md §2 condition 3 and CheckQuorum (dissertation §6.2).
    let mut cluster = Cluster::new(5);
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    cluster.isolate(old);
    cluster.run_for(Duration::from_millis(300));
    assert!(!cluster
        .nodes
        .get_mut(&old)
        .unwrap()
        .goose(cluster.now)
        .is_goose());
    cluster.run_for(Duration::from_secs(1));
    let new = cluster.goose().expect("the majority elects a new goose");
    assert_ne!(new, old);
    assert_ne!(
        cluster.nodes[&old].raft_role(),
        RaftRole::Leader,
        "CheckQuorum stepped it down"
    );
}

#[test]
fn a_crashed_goose_is_replaced_near_the_floor() {
    // design.md §3: failover approaches election_timeout_min plus a few round trips.
    let mut cluster = Cluster::new(5);
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    cluster.crash(old);
    let crashed_at = cluster.now;
    let mut step = 0;
    while cluster.goose().is_none() {
        cluster.run_for(Duration::from_millis(1));
        step += 1;
        assert!(step < 2000, "no goose two seconds after the crash");
    }
    let window = cluster.now.since(crashed_at);
    assert!(
        window < Duration::from_millis(420),
        "failover took {window:?}"
    );
}

#[test]
fn a_handoff_waits_out_promises_and_the_old_goose_never_returns_in_its_term() {
    // design.md §2 "the only exception is a handoff"; dissertation §3.10.
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    let target = NodeId(if old.0 == 3 { 1 } else { 3 });
    let term = cluster.nodes[&old].hard_state().term;
    let promise = cluster
        .nodes
        .get_mut(&old)
        .unwrap()
        .goose(cluster.now)
        .lease_until
        .unwrap();
    cluster.step(
        old,
        Input::Handoff {
            id: ProposalId(7),
            target: Some(target),
        },
    );
    assert!(!cluster
        .nodes
        .get_mut(&old)
        .unwrap()
        .goose(cluster.now)
        .is_goose());
    cluster.run_for(Duration::from_millis(200));
    assert!(cluster
        .events
        .contains(&(old, Event::Done { id: ProposalId(7) })));
    assert_eq!(cluster.goose(), Some(target));
    assert!(cluster.now > promise);
    assert!(cluster.nodes[&target].hard_state().term > term);
}

/// A runner is told the lease end itself, not `promise_max`. A handoff
/// holds (no TimeoutNow, the lease renewed, `releasing` telling the lease
/// end) until the driver's release, however long that takes, and then does
/// not wait for the runner's lease end: the release says its job is gone.
#[test]
fn a_handoff_holds_until_the_release_and_then_hands_over_at_once() {
    let mut cluster = Cluster::new(3);
    cluster.auto_release = false;
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    let target = NodeId(if old.0 == 3 { 1 } else { 3 });
    let term = cluster.nodes[&old].hard_state().term;
    let now = cluster.now;
    let node = cluster.nodes.get_mut(&old).unwrap();
    let short = node.goose(now).lease_until.unwrap();
    let long = node.runner_answer(now).lease_until.unwrap();
    assert_eq!(short, now.add(node.config().promise_max));
    assert!(
        long.since(now) > node.config().heartbeat_interval,
        "a runner is told the lease end, {:?} from now",
        long.since(now)
    );
    assert_eq!(node.releasing(now), None, "no handoff yet");
    cluster.step(
        old,
        Input::Handoff {
            id: ProposalId(8),
            target: Some(target),
        },
    );
    assert!(cluster.nodes[&old].awaits_release());
    let held = cluster.nodes[&old].releasing(cluster.now).unwrap();
    assert!(held >= long, "the lease still held while releasing");
    // A runner may take its whole grace: the lease is renewed meanwhile.
    cluster.run_for(Duration::from_secs(2));
    let node = cluster.nodes.get_mut(&old).unwrap();
    let renewed = node.releasing(cluster.now).expect("still releasing");
    assert!(renewed > cluster.now && renewed > long);
    assert!(!node.goose(cluster.now).is_goose());
    assert!(!node.runner_answer(cluster.now).is_goose());
    assert_eq!(cluster.nodes[&target].hard_state().term, term);
    assert!(cluster.timeout_now_from.is_empty());
    // Released well before the runner's lease end: TimeoutNow at once.
    let released_at = cluster.now;
    cluster.step(old, Input::Release { stopped: true });
    assert_eq!(cluster.timeout_now_from, vec![old]);
    assert_eq!(cluster.nodes[&old].releasing(cluster.now), None);
    assert!(cluster
        .events
        .contains(&(old, Event::Done { id: ProposalId(8) })));
    while cluster.goose() != Some(target) {
        cluster.run_for(Duration::from_millis(1));
        let waited = cluster.now.since(released_at);
        assert!(
            waited < Duration::from_millis(20),
            "no goose {waited:?} after the release"
        );
    }
}

/// design.md §7: a runner that does not confirm in time means no
/// TimeoutNow. The node gives the role up and another is elected only once
/// its lease has run out.
#[test]
fn a_release_that_did_not_stop_everything_gives_up_without_timeout_now() {
    let mut cluster = Cluster::new(3);
    cluster.auto_release = false;
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    cluster.step(
        old,
        Input::Handoff {
            id: ProposalId(9),
            target: None,
        },
    );
    cluster.run_for(Duration::from_millis(500));
    let lease_end = cluster.nodes[&old].releasing(cluster.now).unwrap();
    cluster.step(old, Input::Release { stopped: false });
    assert_eq!(cluster.nodes[&old].raft_role(), RaftRole::Follower);
    assert!(cluster.events.contains(&(
        old,
        Event::Rejected {
            id: ProposalId(9),
            reason: RejectReason::NotReleased
        }
    )));
    while cluster.now < lease_end {
        cluster.run_for(Duration::from_millis(1));
        if cluster.now < lease_end {
            assert_eq!(cluster.goose(), None, "a goose before the lease ran out");
        }
    }
    cluster.run_for(Duration::from_secs(1));
    assert!(cluster.goose().is_some());
    assert!(cluster.timeout_now_from.is_empty());
    // A late release for the handoff that is over changes nothing.
    let goose = cluster.goose().unwrap();
    cluster.step(old, Input::Release { stopped: true });
    cluster.step(goose, Input::Release { stopped: true });
    assert!(cluster.timeout_now_from.is_empty());
    assert_eq!(cluster.goose(), Some(goose));
}

/// A driver that never answers: the handoff gives up after
/// `RELEASE_WAIT_MAX`, without TimeoutNow.
#[test]
fn a_release_that_never_comes_gives_up_after_the_bound() {
    let mut cluster = Cluster::new(3);
    cluster.auto_release = false;
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    cluster.step(
        old,
        Input::Handoff {
            id: ProposalId(10),
            target: None,
        },
    );
    let started = cluster.now;
    cluster.run_for(membership::RELEASE_WAIT_MAX - Duration::from_millis(1));
    assert_eq!(cluster.nodes[&old].raft_role(), RaftRole::Leader);
    assert_eq!(cluster.goose(), None);
    cluster.run_for(Duration::from_millis(2));
    assert!(cluster.now.since(started) >= membership::RELEASE_WAIT_MAX);
    assert_ne!(cluster.nodes[&old].raft_role(), RaftRole::Leader);
    assert!(cluster.events.contains(&(
        old,
        Event::Rejected {
            id: ProposalId(10),
            reason: RejectReason::NotReleased
        }
    )));
    cluster.run_for(Duration::from_secs(1));
    assert!(cluster.goose().is_some());
    assert!(cluster.timeout_now_from.is_empty());
}

/// The target gets a whole election timeout after the last promise runs
/// out, however long that promise ran past the release.
#[test]
fn the_transfer_deadline_counts_from_the_last_promise() {
    let mut cluster = Cluster::new(3);
    cluster.auto_release = false;
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    let target = NodeId(if old.0 == 3 { 1 } else { 3 });
    let promise = cluster
        .nodes
        .get_mut(&old)
        .unwrap()
        .goose(cluster.now)
        .lease_until
        .unwrap();
    cluster.step(
        old,
        Input::Handoff {
            id: ProposalId(11),
            target: Some(target),
        },
    );
    cluster.step(old, Input::Release { stopped: true });
    let Some(Handoff {
        stage: HandoffStage::Transferring { by },
        ..
    }) = cluster.nodes[&old].leader_state().unwrap().handoff
    else {
        panic!("transferring after the release");
    };
    let timeout = cluster.nodes[&old].config().election_timeout_min;
    assert_eq!(by, promise.add(timeout));
    cluster.run_for(Duration::from_millis(100));
    assert_eq!(cluster.goose(), Some(target));
}

#[test]
fn a_change_before_the_leaders_own_entry_commits_is_refused() {
    // The 2015 single-server change fix (Ongaro, raft-dev): NotReady until the no-op commits.
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let goose = cluster.goose().unwrap();
    // Freshly elected: force a new election and propose at the instant of winning.
    cluster.step(
        goose,
        Input::Handoff {
            id: ProposalId(1),
            target: None,
        },
    );
    let mut winner = None;
    for _ in 0..2000 {
        cluster.run_for(Duration::from_micros(100));
        winner = cluster
            .nodes
            .iter()
            .find(|(&id, n)| id != goose && n.raft_role() == RaftRole::Leader)
            .map(|(&id, _)| id);
        if winner.is_some() {
            break;
        }
    }
    let winner = winner.expect("a new leader");
    let node = &cluster.nodes[&winner];
    assert!(
        node.commit_index() < node.last_index(),
        "its no-op is not committed yet"
    );
    cluster.step(
        winner,
        Input::Propose {
            id: ProposalId(2),
            change: MembershipChange::Remove { id: NodeId(2) },
        },
    );
    let refused = Event::Rejected {
        id: ProposalId(2),
        reason: RejectReason::NotReady,
    };
    assert!(
        cluster.events.contains(&(winner, refused)),
        "{:?}",
        cluster.events
    );
}

#[test]
fn adding_a_voter_goes_through_a_learner_and_a_second_change_waits() {
    // Dissertation §4.2.1 (catch-up as learner) and §4.1 (one change at a time).
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let goose = cluster.goose().unwrap();
    cluster.start(NodeId(4), PersistedState::default());
    cluster.step(
        goose,
        Input::Propose {
            id: ProposalId(1),
            change: MembershipChange::AddVoter {
                id: NodeId(4),
                addr: addr(4),
            },
        },
    );
    cluster.step(
        goose,
        Input::Propose {
            id: ProposalId(2),
            change: MembershipChange::Remove { id: NodeId(2) },
        },
    );
    let refused = Event::Rejected {
        id: ProposalId(2),
        reason: RejectReason::ChangeInProgress,
    };
    assert!(cluster.events.contains(&(goose, refused)));
    cluster.run_for(Duration::from_secs(1));
    assert!(
        cluster
            .events
            .contains(&(goose, Event::Done { id: ProposalId(1) })),
        "{:?}",
        cluster.events
    );
    for node in cluster.nodes.values() {
        assert!(
            node.membership().is_voter(NodeId(4)),
            "node {} sees 4 as voter",
            node.id()
        );
    }
    cluster.step(
        goose,
        Input::Propose {
            id: ProposalId(3),
            change: MembershipChange::Remove { id: goose },
        },
    );
    cluster.run_for(Duration::from_secs(2));
    assert!(cluster
        .events
        .contains(&(goose, Event::Done { id: ProposalId(3) })));
    assert!(cluster.events.contains(&(goose, Event::Removed)));
    let new = cluster
        .goose()
        .expect("a goose after the old one removed itself");
    assert_ne!(new, goose);
    assert!(cluster.nodes[&goose].is_removed());
}

#[test]
fn a_leader_that_steps_down_grants_no_vote_while_its_promise_may_run() {
    // design.md §2: a leader counts as hearing from itself, also right after it
    // steps down on a higher term (simulator seed 95312 found two geese without this).
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let goose = cluster.goose().unwrap();
    let other = NodeId(if goose.0 == 1 { 2 } else { 1 });
    let now = cluster.now;
    let node = cluster.nodes.get_mut(&goose).unwrap();
    assert!(node.goose(now).is_goose());
    let term = node.hard_state().term;
    let higher = Message {
        from: other,
        from_identity: Identity::UNKNOWN,
        to: goose,
        to_identity: Identity::UNKNOWN,
        term: term.next(),
        body: MessageBody::AppendReply(AppendReply {
            round: Round(1),
            success: false,
            match_index: LogIndex(0),
            candidacy: Default::default(),
        }),
    };
    node.step(now, Input::Receive(higher));
    assert_eq!(node.raft_role(), RaftRole::Follower, "it stepped down");
    let request = |term: Term| Message {
        from: other,
        from_identity: Identity::UNKNOWN,
        to: goose,
        to_identity: Identity::UNKNOWN,
        term,
        body: MessageBody::RequestVote(RequestVote {
            last_log_index: LogIndex(100),
            last_log_term: term,
            handoff: false,
        }),
    };
    let soon = node.step(
        now.add(Duration::from_millis(50)),
        Input::Receive(request(term.next().next())),
    );
    assert!(
        soon.messages.is_empty(),
        "no vote while its promise may run: {soon:?}"
    );
    let later = node.step(
        now.add(Duration::from_millis(301)),
        Input::Receive(request(term.next().next())),
    );
    let granted = later
        .messages
        .iter()
        .any(|m| m.body == MessageBody::RequestVoteReply(VoteReply { granted: true }));
    assert!(
        granted,
        "it votes once an election timeout has passed: {later:?}"
    );
}

/// A message from `from` to node 2 with no identities bound.
fn to_node_2(from: u64, term: u64, body: MessageBody) -> Message {
    Message {
        from: NodeId(from),
        from_identity: Identity(from),
        to: NodeId(2),
        to_identity: Identity::UNKNOWN,
        term: Term(term),
        body,
    }
}

fn append(entries: Vec<Entry>, commit: u64, lease_guard: Duration) -> MessageBody {
    MessageBody::Append(Append {
        round: Round(1),
        prev_index: LogIndex(0),
        prev_term: Term(0),
        entries,
        commit: LogIndex(commit),
        lease_guard,
    })
}

fn vote_request(term: u64) -> Message {
    let body = MessageBody::RequestVote(RequestVote {
        last_log_index: LogIndex(9),
        last_log_term: Term(9),
        handoff: false,
    });
    to_node_2(3, term, body)
}

fn granted(ready: &Ready) -> bool {
    ready
        .messages
        .iter()
        .any(|m| m.body == MessageBody::RequestVoteReply(VoteReply { granted: true }))
}

fn fast_node_2(start: Timestamp) -> Node {
    let state = PersistedState::bootstrap(Identity(2), voters(&[1, 2, 3]));
    Node::new(Config::fast(NodeId(2)), state, 2, start).unwrap()
}

/// design.md §2, one timing: a voter with a 50 ms timeout that heard a
/// leader whose lease is computed from 300 ms grants no vote for 300 ms,
/// persists that guard, and waits it out again after a restart with the
/// fast timings.
#[test]
fn a_voter_waits_out_the_lease_guard_of_the_leader_it_heard() {
    let start = Timestamp(5_000_000_000);
    let mut node = fast_node_2(start);
    let heard_at = start.add(Duration::from_millis(100));
    let ready = node.step(
        heard_at,
        Input::Receive(to_node_2(
            1,
            1,
            append(vec![], 0, Duration::from_millis(300)),
        )),
    );
    let persisted = ready.persist.hard_state.expect("the guard is persisted");
    assert_eq!(persisted.lease_guard, Duration::from_millis(300));
    let early = node.step(
        heard_at.add(Duration::from_millis(200)),
        Input::Receive(vote_request(2)),
    );
    assert!(
        !granted(&early),
        "no vote inside the leader's guard: {early:?}"
    );
    let late = node.step(
        heard_at.add(Duration::from_millis(301)),
        Input::Receive(vote_request(2)),
    );
    assert!(granted(&late), "a vote once it passed: {late:?}");
    // Restarted from that disk with fast timings: still 300 ms.
    let state = PersistedState {
        hard_state: persisted,
        ..PersistedState::bootstrap(Identity(2), voters(&[1, 2, 3]))
    };
    let restart = heard_at.add(Duration::from_millis(1));
    let mut node = Node::new(Config::fast(NodeId(2)), state, 2, restart).unwrap();
    let early = node.step(
        restart.add(Duration::from_millis(100)),
        Input::Receive(vote_request(3)),
    );
    assert!(
        !granted(&early),
        "the restart waits out the persisted guard"
    );
    let late = node.step(
        restart.add(Duration::from_millis(301)),
        Input::Receive(vote_request(3)),
    );
    assert!(granted(&late));
}

/// The persisted guard comes down only once a shorter guard outlasts every
/// earlier one, so a restart never cuts a running guard short.
#[test]
fn the_persisted_guard_comes_down_only_when_no_longer_needed() {
    let start = Timestamp(5_000_000_000);
    let mut node = fast_node_2(start);
    let slow = to_node_2(1, 1, append(vec![], 0, Duration::from_millis(300)));
    node.step(start, Input::Receive(slow));
    let fast = |term| to_node_2(3, term, append(vec![], 0, Duration::from_millis(50)));
    node.step(
        start.add(Duration::from_millis(100)),
        Input::Receive(fast(2)),
    );
    assert_eq!(
        node.hard_state().lease_guard,
        Duration::from_millis(300),
        "still needed"
    );
    node.step(
        start.add(Duration::from_millis(260)),
        Input::Receive(fast(2)),
    );
    assert_eq!(
        node.hard_state().lease_guard,
        Duration::from_millis(50),
        "outlasted"
    );
}

/// design.md §2: input from peers never panics a node. An append that would
/// replace a committed entry is refused, reported and counted.
#[test]
fn an_append_contradicting_a_committed_entry_is_refused() {
    let start = Timestamp(5_000_000_000);
    let mut node = fast_node_2(start);
    let entry = |term| Entry {
        index: LogIndex(1),
        term: Term(term),
        payload: EntryPayload::NoOp,
    };
    let guard = Duration::from_millis(50);
    node.step(
        start,
        Input::Receive(to_node_2(1, 1, append(vec![entry(1)], 1, guard))),
    );
    assert_eq!(node.commit_index(), LogIndex(1));
    let later = start.add(Duration::from_secs(1));
    let ready = node.step(
        later,
        Input::Receive(to_node_2(3, 2, append(vec![entry(2)], 1, guard))),
    );
    let reported = Event::ContradictsCommitted {
        from: NodeId(3),
        index: LogIndex(1),
    };
    assert!(ready.events.contains(&reported), "{ready:?}");
    assert_eq!(node.entries()[0].term, Term(1), "the committed entry stays");
    assert_eq!(node.peer_faults().contradicts_committed, 1);
}

/// design.md §2: input from peers never panics a node. Appends no correct
/// leader sends (entries out of order, overlapping what they say precedes
/// them, from a future term, or a malformed membership) and snapshots from
/// a future term are dropped whole and counted; the log is untouched.
/// (Found by review: entries [3, 4] after prev 5 made commit run past the log.)
#[test]
fn malformed_appends_and_snapshots_are_dropped_and_counted() {
    let start = Timestamp(5_000_000_000);
    let mut node = fast_node_2(start);
    let noop = |index, term| Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: EntryPayload::NoOp,
    };
    let guard = Duration::from_millis(50);
    let mut now = start;
    let mut send = |node: &mut Node, body: MessageBody| {
        now = now.add(Duration::from_millis(1));
        node.step(now, Input::Receive(to_node_2(1, 2, body)))
    };
    send(
        &mut node,
        append((1..=6).map(|i| noop(i, 1)).collect(), 0, guard),
    );
    assert_eq!(node.last_index(), LogIndex(6));
    let shifted = MessageBody::Append(Append {
        round: Round(2),
        prev_index: LogIndex(5),
        prev_term: Term(1),
        entries: vec![noop(3, 1), noop(4, 1)],
        commit: LogIndex(7),
        lease_guard: guard,
    });
    let gapped = MessageBody::Append(Append {
        round: Round(3),
        prev_index: LogIndex(6),
        prev_term: Term(1),
        entries: vec![noop(8, 2)],
        commit: LogIndex(0),
        lease_guard: guard,
    });
    let future = MessageBody::Append(Append {
        round: Round(4),
        prev_index: LogIndex(6),
        prev_term: Term(1),
        entries: vec![noop(7, 3)],
        commit: LogIndex(0),
        lease_guard: guard,
    });
    let mut twice = voters(&[1, 3]);
    twice.members[1].id = NodeId(1);
    let bad_membership = MessageBody::Append(Append {
        round: Round(5),
        prev_index: LogIndex(6),
        prev_term: Term(1),
        entries: vec![Entry {
            index: LogIndex(7),
            term: Term(2),
            payload: EntryPayload::Membership(twice),
        }],
        commit: LogIndex(0),
        lease_guard: guard,
    });
    let future_snapshot = MessageBody::InstallSnapshot(InstallSnapshot {
        round: Round(6),
        snapshot: Snapshot {
            index: LogIndex(9),
            term: Term(3),
            membership: voters(&[1, 2, 3]),
        },
        lease_guard: guard,
    });
    for body in [shifted, gapped, future, bad_membership, future_snapshot] {
        let ready = send(&mut node, body);
        assert!(ready.messages.is_empty(), "no reply to it: {ready:?}");
    }
    assert_eq!(node.peer_faults().malformed, 5);
    assert_eq!(node.last_index(), LogIndex(6), "the log is untouched");
    assert_eq!(node.commit_index(), LogIndex(0));
    assert_eq!(node.hard_state().term, Term(2));
}

/// design.md §2, one identity per member: once node 1's identity is bound,
/// a message under its id from another data directory is dropped and
/// counted, and so is one meant for another incarnation of this node.
#[test]
fn messages_of_another_identity_are_dropped() {
    let start = Timestamp(5_000_000_000);
    let mut membership = voters(&[1, 2, 3]);
    membership.members[0].identity = Identity(1);
    membership.members[1].identity = Identity(2);
    let state = PersistedState::bootstrap(Identity(2), membership);
    let mut node = Node::new(Config::fast(NodeId(2)), state, 2, start).unwrap();
    let guard = Duration::from_millis(50);
    let mut impostor = to_node_2(1, 1, append(vec![], 0, guard));
    impostor.from_identity = Identity(77);
    let ready = node.step(start, Input::Receive(impostor));
    assert!(ready.messages.is_empty() && node.leader().is_none());
    let mut stale = to_node_2(1, 1, append(vec![], 0, guard));
    stale.to_identity = Identity(88);
    node.step(start, Input::Receive(stale));
    assert_eq!(node.peer_faults().wrong_identity, 2);
    let ready = node.step(
        start,
        Input::Receive(to_node_2(1, 1, append(vec![], 0, guard))),
    );
    assert_eq!(node.leader(), Some(NodeId(1)), "the member itself is heard");
    assert_eq!(ready.messages.len(), 1);
}

/// A `--join` node (no membership) votes for nobody (design.md §2).
#[test]
fn a_join_node_grants_no_vote() {
    let start = Timestamp(5_000_000_000);
    let state = PersistedState {
        identity: Identity(2),
        ..PersistedState::default()
    };
    let mut node = Node::new(Config::fast(NodeId(2)), state, 2, start).unwrap();
    let later = start.add(Duration::from_secs(1));
    let ready = node.step(later, Input::Receive(vote_request(5)));
    assert!(!granted(&ready), "{ready:?}");
    assert_eq!(node.hard_state().vote, None);
}

/// A rejection moves the probe back and resends at once only if it moved;
/// a hint below the match index (the peer lost entries) lowers the match.
#[test]
fn back_off_resends_only_when_the_probe_moved() {
    let mut progress = super::node::Progress::fresh(LogIndex(11), Round(1));
    progress.match_index = LogIndex(5);
    assert!(progress.back_off(LogIndex(8)), "probe moved to 9");
    assert_eq!(progress.next_index, LogIndex(9));
    progress.next_index = LogIndex(6);
    assert!(
        !progress.back_off(LogIndex(7)),
        "already just past the match: no storm"
    );
    assert!(progress.back_off(LogIndex(2)), "the peer lost entries");
    assert_eq!(
        (progress.match_index, progress.next_index),
        (LogIndex(2), LogIndex(3))
    );
}

/// A rebuilt node whose log still ends in its predecessor's membership
/// (its id bound to another identity) neither campaigns nor votes, however
/// long it waits: it is not that member (simulator seed 34533).
#[test]
fn a_node_whose_id_is_bound_to_another_identity_neither_campaigns_nor_votes() {
    let start = Timestamp(5_000_000_000);
    // The bootstrap membership names node 2 with no identity bound yet;
    // the entry after it binds node 2 to its predecessor's identity.
    let mut bound = voters(&[2]);
    bound.members[0].identity = Identity(5);
    let state = PersistedState {
        entries: vec![Entry {
            index: LogIndex(1),
            term: Term(1),
            payload: EntryPayload::Membership(bound),
        }],
        hard_state: HardState {
            term: Term(1),
            ..HardState::default()
        },
        ..PersistedState::bootstrap(Identity(9), voters(&[2]))
    };
    let mut node = Node::new(Config::fast(NodeId(2)), state, 2, start).unwrap();
    let later = start.add(Duration::from_secs(5));
    node.step(later, Input::Tick);
    assert_eq!(node.raft_role(), RaftRole::Follower, "it did not campaign");
    let ready = node.step(later, Input::Receive(vote_request(5)));
    assert!(!granted(&ready));
}

/// design.md §2, eligibility: an ineligible goose hands over, voluntarily,
/// to an eligible voter, never to an ineligible one, and an ineligible node
/// takes no transfer.
#[test]
fn an_ineligible_goose_hands_over_to_an_eligible_voter_only() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    let others: Vec<NodeId> = (1..=3).map(NodeId).filter(|&id| id != old).collect();
    let (sleepy, heir) = (others[0], others[1]);
    cluster.set_eligible(sleepy, false);
    cluster.run_for(Duration::from_millis(200));
    assert_eq!(
        cluster.goose(),
        Some(old),
        "a duck's eligibility moves nothing"
    );
    // A step-down to the ineligible node is refused at once.
    cluster.step(
        old,
        Input::Handoff {
            id: ProposalId(5),
            target: Some(sleepy),
        },
    );
    assert!(cluster.events.iter().any(|(_, event)| matches!(
        event,
        Event::Rejected {
            id: ProposalId(5),
            reason: RejectReason::NoTarget(_)
        }
    )));
    cluster.auto_release = false;
    cluster.set_eligible(old, false);
    let node = &cluster.nodes[&old];
    assert_eq!(node.handoff_reason(), Some(HandoffReason::Ineligible));
    assert!(node.awaits_release(), "the voluntary path: runners first");
    assert!(!cluster
        .nodes
        .get_mut(&old)
        .unwrap()
        .goose(cluster.now)
        .is_goose());
    cluster.step(old, Input::Release { stopped: true });
    cluster.run_for(Duration::from_millis(300));
    assert_eq!(cluster.goose(), Some(heir));
    assert_eq!(cluster.timeout_now_from, vec![old]);
}

/// design.md §2: with no eligible voter there is no goose, but the majority
/// still acknowledges a leader (eligibility never decides whether a
/// majority exists); the first voter to recover becomes the goose.
#[test]
fn with_no_eligible_voter_there_is_no_goose_until_one_recovers() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    for id in 1..=3 {
        cluster.set_eligible(NodeId(id), false);
    }
    for _ in 0..50 {
        cluster.run_for(Duration::from_millis(100));
        assert_eq!(cluster.goose(), None, "no eligible voter, no goose");
    }
    let leaders = cluster
        .nodes
        .values()
        .filter(|n| n.raft_role() == RaftRole::Leader)
        .count();
    assert_eq!(leaders, 1, "an ineligible leader keeps the log moving");
    cluster.set_eligible(NodeId(2), true);
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.goose(), Some(NodeId(2)));
}

/// The only eligible voter lags the committed log, so no majority votes for
/// it: an ineligible node campaigns after its longer delay, catches it up
/// and hands over (simulator seed 351).
#[test]
fn an_eligible_voter_that_lags_is_caught_up_by_an_ineligible_leader() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    let lagging = NodeId(if old.0 == 1 { 2 } else { 1 });
    cluster.isolate(lagging);
    cluster.step(
        old,
        Input::Propose {
            id: ProposalId(3),
            change: MembershipChange::AddLearner {
                id: NodeId(9),
                addr: addr(9),
            },
        },
    );
    cluster.run_for(Duration::from_millis(200));
    assert!(cluster.nodes[&lagging].last_index() < cluster.nodes[&old].last_index());
    for id in 1..=3 {
        if NodeId(id) != lagging {
            cluster.set_eligible(NodeId(id), false);
        }
    }
    cluster.crash(old);
    let state = cluster.durable[&old].clone();
    cluster.start(old, state);
    cluster.set_eligible(old, false);
    cluster.cut.clear();
    cluster.run_for(Duration::from_secs(3));
    assert_eq!(cluster.goose(), Some(lagging));
}

/// design.md §2, priority: a voter of higher priority takes over once it has
/// been eligible for its preempt delay; one that flaps faster than that never
/// does, so the goose does not flap; `preempt = false` never preempts.
#[test]
fn a_higher_priority_preempts_after_its_delay_and_a_flapping_one_never() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    let keen = NodeId(if old.0 == 3 { 1 } else { 3 });
    let delay = Duration::from_secs(1);
    let config = Config {
        priority: 200,
        preempt_delay: delay,
        ..Config::new(keen)
    };
    cluster.restart_with(keen, config.clone());
    // Flapping: eligible for 700 ms, ineligible for 300 ms, for 6 s.
    for _ in 0..6 {
        cluster.set_eligible(keen, false);
        cluster.run_for(Duration::from_millis(300));
        assert_eq!(cluster.goose(), Some(old));
        cluster.set_eligible(keen, true);
        cluster.run_for(Duration::from_millis(700));
        assert_eq!(cluster.goose(), Some(old), "a flapping node never preempts");
    }
    assert!(cluster.timeout_now_from.is_empty(), "no handoff at all");
    // Steady: it takes over once its delay has run out.
    cluster.run_for(delay);
    assert_eq!(cluster.goose(), Some(keen));
    // With preemption off, the same node never takes over from a goose of
    // lower priority.
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    let polite = NodeId(if old.0 == 3 { 1 } else { 3 });
    cluster.restart_with(
        polite,
        Config {
            preempt: false,
            ..Config {
                id: polite,
                ..config
            }
        },
    );
    cluster.run_for(Duration::from_secs(4));
    assert_eq!(
        cluster.goose(),
        Some(old),
        "preempt = false keeps the goose put"
    );
    assert!(!cluster.nodes[&polite].is_preempting(cluster.now));
}

/// Lower priorities wait longer before campaigning; 255 draws no spread.
#[test]
fn the_campaign_delay_follows_priority_and_eligibility() {
    let node = |priority: u8, seed: u64| {
        let config = Config {
            priority,
            ..Config::new(NodeId(1))
        };
        Node::new(
            config,
            PersistedState::bootstrap(Identity(1), voters(&[1, 2, 3])),
            seed,
            Timestamp(0),
        )
        .unwrap()
    };
    let jitter = Config::new(NodeId(1)).election_jitter_max;
    let (mut high_sum, mut default_sum) = (Duration::ZERO, Duration::ZERO);
    for seed in 0..100 {
        assert_eq!(node(255, seed).campaign_delay(), Duration::ZERO);
        let high = node(200, seed).campaign_delay();
        let default = node(100, seed).campaign_delay();
        assert!(high <= jitter * 55 / 155 && default <= jitter);
        high_sum += high;
        default_sum += default;
        let low = node(0, seed).campaign_delay();
        assert!(low >= jitter && low <= jitter * 2, "{low:?}");
    }
    assert!(
        high_sum < default_sum,
        "a higher priority usually campaigns first"
    );
    let mut ineligible = node(100, 1);
    ineligible.step(Timestamp(0), Input::Eligibility { eligible: false });
    let timeout = ineligible.config().election_timeout_min;
    assert!(ineligible.campaign_delay() >= timeout * eligibility::INELIGIBLE_CAMPAIGN_TIMEOUTS);
}

/// A leader whose removal commits leaves even when no other voter is
/// eligible: TimeoutNow goes to a caught-up voter (which ignores it), and
/// an ineligible node's last-resort campaign elects a leader that is never
/// the goose (found in review: the removed leader retried forever).
#[test]
fn a_removed_leader_leaves_even_when_no_other_voter_is_eligible() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    for id in (1..=3).map(NodeId).filter(|&id| id != old) {
        cluster.set_eligible(id, false);
    }
    cluster.run_for(Duration::from_millis(200));
    cluster.step(
        old,
        Input::Propose {
            id: ProposalId(8),
            change: MembershipChange::Remove { id: old },
        },
    );
    cluster.run_for(Duration::from_secs(3));
    assert!(cluster.events.contains(&(old, Event::Removed)), "it left");
    assert_ne!(cluster.nodes[&old].raft_role(), RaftRole::Leader);
    assert_eq!(cluster.timeout_now_from, vec![old]);
    let leader = cluster
        .nodes
        .iter()
        .find(|(_, node)| node.raft_role() == RaftRole::Leader)
        .map(|(&id, _)| id);
    assert!(leader.is_some_and(|id| id != old), "a leader, not a goose");
    assert_eq!(cluster.goose(), None);
}

/// A preemption quiets the node's next ones across terms, and a member
/// counts as eligible (for its preempt delay) only while it is a voter.
#[test]
fn preemptions_are_spaced_and_only_voters_count_as_eligible() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    let keen = NodeId(if old.0 == 3 { 1 } else { 3 });
    let config = Config {
        priority: 200,
        preempt_delay: Duration::from_millis(500),
        ..Config::new(keen)
    };
    cluster.restart_with(keen, config);
    cluster.run_for(Duration::from_secs(2));
    assert_eq!(cluster.goose(), Some(keen));
    // The old goose, now a follower, still holds its quiet period (its own
    // preempt delay, 5 s, from the preemption less than 2 s ago): were it
    // elected again, it would not hand straight back.
    let quiet = cluster.nodes[&old].preempt_quiet_until;
    assert!(
        quiet > cluster.now,
        "the old goose remembers its preemption"
    );
    // A learner is never eligible, whatever its health.
    let mut membership = voters(&[1, 2]);
    membership.members.push(goose_common::Member {
        id: NodeId(3),
        addr: addr(3),
        role: goose_common::MemberRole::Learner,
        identity: Identity::UNKNOWN,
    });
    let mut learner = Node::new(
        Config::new(NodeId(3)),
        PersistedState::bootstrap(Identity(3), membership),
        3,
        Timestamp(0),
    )
    .unwrap();
    learner.step(Timestamp(10_000_000_000), Input::Tick);
    assert!(!learner.is_eligible() && learner.is_observer());
    assert!(!learner.is_preempting(Timestamp(20_000_000_000)));
}

/// A preempted goose hands to the voter of highest priority caught up when
/// TimeoutNow goes, not to the first preempter it heard (simulator seed
/// 8975778: a new goose preempted at its first reply handed to a voter of
/// priority 200 while one of 255 was caught up, and the goose stayed at 200
/// for its whole preemption quiet).
#[test]
fn a_preempted_goose_hands_to_the_best_voter_when_it_lets_go() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let old = cluster.goose().unwrap();
    let others: Vec<NodeId> = (1..=3).map(NodeId).filter(|&id| id != old).collect();
    let (keen, best) = (others[0], others[1]);
    // `keen` preempts after 300 ms; `best` outranks it but waits a minute.
    for (id, priority, delay) in [(keen, 200, 300), (best, 255, 60_000)] {
        let config = Config {
            priority,
            preempt_delay: Duration::from_millis(delay),
            ..Config::new(id)
        };
        cluster.restart_with(id, config);
    }
    cluster.auto_release = false;
    let mut waited = Duration::ZERO;
    while cluster.nodes[&old].handoff_reason() != Some(HandoffReason::Preempted) {
        assert!(waited < Duration::from_secs(3), "keen never preempted");
        cluster.run_for(Duration::from_millis(10));
        waited += Duration::from_millis(10);
    }
    assert!(!cluster.nodes[&best].is_preempting(cluster.now));
    cluster.run_for(Duration::from_millis(50));
    cluster.step(old, Input::Release { stopped: true });
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.timeout_now_from, vec![old]);
    assert_eq!(
        cluster.goose(),
        Some(best),
        "the goose went to priority 255"
    );
}

/// design.md §2, one identity per member: a member removed, wiped and added
/// back is a new data directory. A reply of its old incarnation that arrives
/// late, after the leader started replicating to the new one, must not bind
/// the old identity (simulator seed 7904531: leader and new node then refused
/// each other for good). The leader trusts only replies to rounds it sent
/// after it began replicating to the member.
#[test]
fn a_late_reply_of_a_wiped_members_old_incarnation_is_ignored() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let goose = cluster.goose().unwrap();
    let wiped = NodeId(if goose == NodeId(3) { 2 } else { 3 });
    // Hold back one successful reply of the old incarnation.
    cluster.run_for(Duration::from_millis(200));
    let mut stale = None;
    while stale.is_none() {
        cluster.run_for(Duration::from_micros(100));
        if let Some(position) = cluster.in_flight.iter().position(|(_, m)| {
            m.from == wiped
                && m.to == goose
                && matches!(
                    m.body,
                    MessageBody::AppendReply(AppendReply { success: true, .. })
                )
        }) {
            stale = Some(cluster.in_flight.remove(position).1);
        }
    }
    let stale = stale.unwrap();
    assert_eq!(stale.from_identity, Identity(wiped.0));
    cluster.step(
        goose,
        Input::Propose {
            id: ProposalId(1),
            change: MembershipChange::Remove { id: wiped },
        },
    );
    cluster.run_for(Duration::from_secs(1));
    assert!(cluster
        .events
        .contains(&(goose, Event::Done { id: ProposalId(1) })));
    cluster.crash(wiped);
    let fresh = Identity(99);
    cluster.start(
        wiped,
        PersistedState {
            identity: fresh,
            ..PersistedState::default()
        },
    );
    cluster.step(
        goose,
        Input::Propose {
            id: ProposalId(2),
            change: MembershipChange::AddVoter {
                id: wiped,
                addr: addr(wiped.0),
            },
        },
    );
    // The old incarnation's reply arrives before any of the new one's.
    cluster.step(goose, Input::Receive(stale));
    cluster.run_for(Duration::from_secs(2));
    assert!(
        cluster
            .events
            .contains(&(goose, Event::Done { id: ProposalId(2) })),
        "the wiped member is a voter again"
    );
    let member = cluster.nodes[&goose]
        .membership()
        .get(wiped)
        .cloned()
        .unwrap();
    assert_eq!(member.identity, fresh, "bound to the new data directory");
    assert_eq!(cluster.nodes[&wiped].peer_faults().wrong_identity, 0);
    assert_eq!(cluster.nodes[&goose].peer_faults().wrong_identity, 0);
}

/// A goose whose release is not confirmed gives up without TimeoutNow, and
/// then lets another voter win the election that follows: it waits one more
/// election timeout before it campaigns (simulator seed 8256959: without
/// the wait it won again every time, since the others' first pre-votes
/// met its own vote guard). Two voters, so the other needs its vote.
#[test]
fn after_a_release_that_is_not_confirmed_another_voter_becomes_the_goose() {
    for round in 0..10 {
        let mut cluster = Cluster::new(2);
        cluster.auto_release = false;
        cluster.run_for(Duration::from_secs(1) + Duration::from_millis(round * 13));
        let old = cluster.goose().unwrap();
        cluster.step(
            old,
            Input::Handoff {
                id: ProposalId(9),
                target: None,
            },
        );
        cluster.run_for(Duration::from_millis(100));
        cluster.step(old, Input::Release { stopped: false });
        cluster.run_for(Duration::from_secs(2));
        let new = cluster.goose().expect("a goose after the give-up");
        assert_ne!(new, old, "round {round}: the goose that gave up won again");
        assert!(cluster.timeout_now_from.is_empty());
    }
}

impl Cluster {
    fn propose(&mut self, at: NodeId, id: u64, change: MembershipChange) {
        let id = ProposalId(id);
        self.step(at, Input::Propose { id, change });
    }

    /// How proposal `id` settled on node `at`, if it has.
    fn settled(&self, at: NodeId, id: u64) -> Option<Result<(), RejectReason>> {
        self.events.iter().find_map(|(node, event)| match event {
            Event::Done { id: done } if *node == at && done.0 == id => Some(Ok(())),
            Event::Rejected {
                id: rejected,
                reason,
            } if *node == at && rejected.0 == id => Some(Err(reason.clone())),
            _ => None,
        })
    }

    /// Starts node `id` as a brand-new `--join` node with identity `id`.
    fn start_joining(&mut self, id: NodeId) {
        let state = PersistedState {
            identity: Identity(id.0),
            ..PersistedState::default()
        };
        self.start(id, state);
    }

    /// Adds observer `id` through the goose and waits until it settles.
    fn add_observer(&mut self, id: NodeId, proposal: u64) -> Result<(), RejectReason> {
        let goose = self.goose().expect("a goose to ask");
        self.start_joining(id);
        let change = MembershipChange::AddLearner {
            id,
            addr: addr(id.0),
        };
        self.propose(goose, proposal, change);
        for _ in 0..40 {
            if let Some(outcome) = self.settled(goose, proposal) {
                return outcome;
            }
            self.run_for(Duration::from_millis(50));
        }
        panic!("adding observer {id} never settled");
    }
}

/// design.md §1 and §8: 9 voters and 64 observers, and the 65th is
/// refused. An observer's entry binds no identity, which keeps that
/// membership (IPv4) within one datagram; every observer follows the goose
/// and never answers goose itself.
#[test]
fn a_fleet_of_nine_voters_and_sixty_four_observers_fits_and_the_next_is_refused() {
    let mut cluster = Cluster::new(9);
    cluster.run_for(Duration::from_secs(1));
    for n in 0..64 {
        let id = NodeId(10 + n);
        assert_eq!(cluster.add_observer(id, 100 + n), Ok(()), "observer {id}");
    }
    let goose = cluster.goose().unwrap();
    let membership = cluster.nodes[&goose].membership().clone();
    assert_eq!(membership.voters().count(), 9);
    let observers: Vec<_> = membership
        .members
        .iter()
        .filter(|m| m.role == goose_common::MemberRole::Learner)
        .collect();
    assert_eq!(observers.len(), 64);
    assert!(observers.iter().all(|m| !m.identity.is_known()));
    let bytes = goose_common::wire::encoded_len(&EntryPayload::Membership(membership));
    assert!(
        bytes + 24 <= goose_common::limits::MESSAGE_BYTES_MAX - 64,
        "{bytes} bytes"
    );
    assert_eq!(
        cluster.add_observer(NodeId(200), 999),
        Err(RejectReason::Limit("at most 64 learners".into()))
    );
    cluster.crash(NodeId(200));
    cluster.run_for(Duration::from_secs(1));
    let term = cluster.nodes[&goose].hard_state().term;
    let commit = cluster.nodes[&goose].commit_index();
    let now = cluster.now;
    for n in 0..64 {
        let observer = cluster.nodes.get_mut(&NodeId(10 + n)).unwrap();
        let answer = observer.goose(now);
        assert!(!answer.is_goose());
        assert_eq!((answer.term, answer.leader), (term, Some(goose)));
        assert_eq!(observer.commit_index(), commit);
        assert!(!observer.can_campaign());
    }
}

/// An observer needs the goose, the term and the commit index, not the
/// lease: once caught up it gets one heartbeat round in
/// `OBSERVER_REFRESH_ROUNDS`, a voter every round.
#[test]
fn a_caught_up_observer_gets_one_heartbeat_round_in_four() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.add_observer(NodeId(4), 1), Ok(()));
    cluster.run_for(Duration::from_secs(1));
    let goose = cluster.goose().unwrap();
    let voter = NodeId(if goose == NodeId(1) { 2 } else { 1 });
    let sent = |cluster: &Cluster, to: NodeId| cluster.appends_sent.get(&(goose, to)).copied();
    let before = (sent(&cluster, voter), sent(&cluster, NodeId(4)));
    cluster.run_for(Duration::from_secs(2));
    let to_voter = (sent(&cluster, voter).unwrap() - before.0.unwrap()) as usize;
    let to_observer = (sent(&cluster, NodeId(4)).unwrap() - before.1.unwrap()) as usize;
    assert!(
        (39..=41).contains(&to_voter),
        "{to_voter} appends to a voter in 2 s"
    );
    let rounds = replication::OBSERVER_REFRESH_ROUNDS as usize;
    let expected = to_voter / rounds;
    assert!(
        (expected.saturating_sub(1)..=expected + 1).contains(&to_observer),
        "{to_observer} appends to the observer against {to_voter} to a voter"
    );
    let observer = &cluster.nodes[&NodeId(4)];
    assert_eq!(observer.leader(), Some(goose));
    assert_eq!(
        observer.commit_index(),
        cluster.nodes[&goose].commit_index()
    );
}

/// `member promote` and `member demote` (design.md §6): one change at a
/// time; a promoted observer catches up and its identity is bound; a
/// demoted voter's is not; a demoted goose stops answering goose at once
/// and hands over once the change commits; the last voter stays.
#[test]
fn observers_are_promoted_and_voters_demoted_and_a_demoted_goose_hands_over() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.add_observer(NodeId(4), 1), Ok(()));
    let goose = cluster.goose().unwrap();
    cluster.propose(goose, 2, MembershipChange::Promote { id: NodeId(4) });
    cluster.propose(goose, 3, MembershipChange::Demote { id: NodeId(4) });
    assert_eq!(
        cluster.settled(goose, 3),
        Some(Err(RejectReason::ChangeInProgress))
    );
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.settled(goose, 2), Some(Ok(())));
    let member = cluster.nodes[&goose].membership().get(NodeId(4)).cloned();
    assert_eq!(
        member.map(|m| (m.role, m.identity)),
        Some((goose_common::MemberRole::Voter, Identity(4)))
    );
    cluster.propose(goose, 4, MembershipChange::Promote { id: NodeId(4) });
    assert!(matches!(
        cluster.settled(goose, 4),
        Some(Err(RejectReason::Invalid(_)))
    ));

    // Demote the goose itself.
    cluster.propose(goose, 5, MembershipChange::Demote { id: goose });
    assert_eq!(
        cluster.geese(),
        Vec::<NodeId>::new(),
        "a demoted goose stops at once"
    );
    cluster.run_for(Duration::from_secs(2));
    assert_eq!(cluster.settled(goose, 5), Some(Ok(())));
    let new = cluster.goose().expect("a goose after the demotion");
    assert_ne!(new, goose);
    let demoted = &cluster.nodes[&goose];
    let member = demoted.membership().get(goose).cloned().unwrap();
    assert_eq!(member.role, goose_common::MemberRole::Learner);
    assert!(!member.identity.is_known());
    assert!(!demoted.is_removed() && !demoted.can_campaign());
    assert_eq!(demoted.leader(), Some(new));
    assert!(!cluster
        .events
        .iter()
        .any(|(id, e)| *id == goose && *e == Event::Removed));

    // Down to one voter, which stays.
    let mut proposal = 10;
    for id in [1, 2, 3, 4].map(NodeId) {
        let goose = cluster.goose().unwrap();
        if id == goose || !cluster.nodes[&goose].membership().is_voter(id) {
            continue;
        }
        cluster.propose(goose, proposal, MembershipChange::Demote { id });
        cluster.run_for(Duration::from_secs(1));
        assert_eq!(
            cluster.settled(goose, proposal),
            Some(Ok(())),
            "demote {id}"
        );
        proposal += 1;
    }
    let goose = cluster.goose().unwrap();
    assert_eq!(cluster.nodes[&goose].membership().voters().count(), 1);
    cluster.propose(goose, 99, MembershipChange::Demote { id: goose });
    assert_eq!(
        cluster.settled(goose, 99),
        Some(Err(RejectReason::Limit(
            "cannot demote the last voter".into()
        )))
    );
}

/// An observer's data directory is wiped and it comes back under its id:
/// the leader's progress, bound to the old directory's replies, starts
/// again (the reply that showed the change counts for nothing, and is
/// counted as `wrong_identity`), so the new one catches up, and a
/// promotion binds the new identity, never a mix of the two.
#[test]
fn a_wiped_observer_is_caught_up_again_and_promoted_under_its_new_identity() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.add_observer(NodeId(4), 1), Ok(()));
    cluster.run_for(Duration::from_secs(1));
    let goose = cluster.goose().unwrap();
    assert_eq!(cluster.nodes[&goose].peer_faults().wrong_identity, 0);
    cluster.crash(NodeId(4));
    let fresh = Identity(98);
    cluster.start(
        NodeId(4),
        PersistedState {
            identity: fresh,
            ..PersistedState::default()
        },
    );
    cluster.run_for(Duration::from_secs(1));
    assert!(cluster.nodes[&goose].peer_faults().wrong_identity >= 1);
    let observer = &cluster.nodes[&NodeId(4)];
    assert_eq!(observer.leader(), Some(goose));
    assert_eq!(observer.last_index(), cluster.nodes[&goose].last_index());
    cluster.propose(goose, 2, MembershipChange::Promote { id: NodeId(4) });
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.settled(goose, 2), Some(Ok(())));
    let member = cluster.nodes[&goose]
        .membership()
        .get(NodeId(4))
        .cloned()
        .unwrap();
    assert_eq!(member.identity, fresh);
}

/// A removed observer says so, though its entry binds no identity; a
/// rebuilt one, catching up through the history of the observer it
/// replaces (added, then removed), does not take that removal for its own.
#[test]
fn a_removed_observer_says_so_and_a_rebuilt_one_does_not_take_its_predecessors_removal() {
    let mut cluster = Cluster::new(3);
    cluster.configs.insert(
        NodeId(1),
        Config {
            compaction_threshold: 10_000,
            ..Config::new(NodeId(1))
        },
    );
    cluster.run_for(Duration::from_secs(1));
    // Many observers make every membership entry large, so the rebuilt one
    // catches up an entry or two per append, through every step between.
    for n in 0..40 {
        assert_eq!(cluster.add_observer(NodeId(10 + n), 100 + n), Ok(()));
    }
    assert_eq!(cluster.add_observer(NodeId(4), 1), Ok(()));
    cluster.run_for(Duration::from_secs(1));
    let goose = cluster.goose().unwrap();
    cluster.propose(goose, 2, MembershipChange::Remove { id: NodeId(4) });
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.settled(goose, 2), Some(Ok(())));
    assert!(cluster.events.contains(&(NodeId(4), Event::Removed)));
    assert!(cluster.nodes[&NodeId(4)].is_removed());

    cluster.crash(NodeId(4));
    cluster.events.clear();
    cluster.start(
        NodeId(4),
        PersistedState {
            identity: Identity(97),
            ..PersistedState::default()
        },
    );
    let change = MembershipChange::AddLearner {
        id: NodeId(4),
        addr: addr(4),
    };
    cluster.propose(goose, 3, change);
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.settled(goose, 3), Some(Ok(())));
    let rebuilt = &cluster.nodes[&NodeId(4)];
    assert!(
        rebuilt.entries().len() > 40,
        "it caught up through the history"
    );
    assert!(!rebuilt.is_removed());
    assert!(!cluster.events.contains(&(NodeId(4), Event::Removed)));
}

/// design.md §2, one identity per member, and liveness after a member is
/// rebuilt while another is down (simulator seed 8042235): node N crashes
/// right after appending the removal of member X, before it learns that the
/// removal committed. While N is down, X's data directory is wiped, X is
/// added back under a new identity and becomes the goose. N restarts with a
/// log whose latest membership lacks X and whose previous one binds X to
/// its old identity. It must still follow the new X and catch up: a
/// leader's authority comes from the votes of voters that bound its
/// identity, so an append from an id the latest membership does not hold
/// is not judged by the membership before it.
#[test]
fn a_node_restarted_behind_a_members_rebuild_follows_the_rebuilt_goose() {
    let mut cluster = Cluster::new(5);
    cluster.run_for(Duration::from_secs(1));
    let goose = cluster.goose().unwrap();
    let others: Vec<NodeId> = (1..=5).map(NodeId).filter(|&id| id != goose).collect();
    let (lagging, rebuilt) = (others[0], others[1]);
    cluster.propose(goose, 1, MembershipChange::Remove { id: rebuilt });
    // Crash the lagging node as soon as it holds the removal.
    while cluster.nodes[&lagging].membership().get(rebuilt).is_some() {
        cluster.run_for(Duration::from_micros(50));
    }
    let removal_at = cluster.nodes[&lagging].last_index();
    assert!(
        cluster.nodes[&lagging].commit_index() < removal_at,
        "the lagging node has not learnt that the removal committed"
    );
    cluster.crash(lagging);
    cluster.run_for(Duration::from_secs(1));
    assert!(cluster
        .events
        .contains(&(goose, Event::Done { id: ProposalId(1) })));
    // The removed member's data directory is wiped; it is added back.
    cluster.crash(rebuilt);
    let fresh = Identity(77);
    cluster.start(
        rebuilt,
        PersistedState {
            identity: fresh,
            ..PersistedState::default()
        },
    );
    cluster.propose(
        goose,
        2,
        MembershipChange::AddVoter {
            id: rebuilt,
            addr: addr(rebuilt.0),
        },
    );
    cluster.run_for(Duration::from_secs(2));
    assert!(cluster
        .events
        .contains(&(goose, Event::Done { id: ProposalId(2) })));
    cluster.step(
        goose,
        Input::Handoff {
            id: ProposalId(3),
            target: Some(rebuilt),
        },
    );
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.goose(), Some(rebuilt), "the rebuilt member leads");
    // The lagging node comes back and must catch up with the new goose.
    let state = cluster.durable[&lagging].clone();
    cluster.start(lagging, state);
    cluster.run_for(Duration::from_secs(2));
    let node = &cluster.nodes[&lagging];
    assert_eq!(node.leader(), Some(rebuilt), "follows the rebuilt goose");
    assert_eq!(
        node.commit_index(),
        cluster.nodes[&rebuilt].commit_index(),
        "caught up with the goose's commit"
    );
    assert_eq!(
        node.membership().get(rebuilt).map(|member| member.identity),
        Some(fresh),
        "knows the rebuilt member by its new identity"
    );
    assert_eq!(cluster.nodes[&rebuilt].peer_faults().wrong_identity, 0);
}

/// Followers take turns in the spread (`Config::campaign_slots`): the
/// voters other than the leader share it in slots in the order of their
/// ids, each drawing from the first quarter of its own slot; without a
/// known leader every voter has a slot.
#[test]
fn followers_take_turns_in_the_election_spread() {
    let jitter = Config::new(NodeId(1)).election_jitter_max;
    let delay = |id: u64, leader: Option<u64>, seed: u64| {
        let mut node = Node::new(
            Config::new(NodeId(id)),
            PersistedState::bootstrap(Identity(id), voters(&[1, 2, 3, 4, 5])),
            seed,
            Timestamp(0),
        )
        .unwrap();
        node.leader = leader.map(NodeId);
        node.campaign_delay()
    };
    for seed in 0..50 {
        // Leader 3: slots 1, 2, 4, 5 of a quarter of the spread each.
        let width = jitter / 4;
        for (slot, id) in [1, 2, 4, 5].into_iter().enumerate() {
            let got = delay(id, Some(3), seed);
            let start = width * u32::try_from(slot).unwrap();
            assert!(
                got >= start && got <= start + width / 4,
                "node {id} slot {slot}: {got:?}"
            );
        }
        // No leader known: five slots.
        let got = delay(5, None, seed);
        assert!(got >= jitter / 5 * 4 && got <= jitter / 5 * 4 + jitter / 20);
    }
}

/// With turns, a crash of the goose is followed by one election in the
/// next term, won by the first follower in id order: no split vote.
#[test]
fn after_a_crash_the_first_follower_in_turn_wins_without_a_split_vote() {
    for round in 0..20 {
        let mut cluster = Cluster::new(5);
        cluster.run_for(Duration::from_secs(1) + Duration::from_millis(round * 7));
        let old = cluster.goose().unwrap();
        let term = cluster.nodes[&old].hard_state().term;
        cluster.crash(old);
        cluster.run_for(Duration::from_secs(1));
        let new = cluster.goose().expect("a new goose");
        let first = (1..=5).map(NodeId).find(|&id| id != old).unwrap();
        assert_eq!(new, first, "round {round}");
        assert_eq!(cluster.nodes[&new].hard_state().term, term.next());
    }
}

/// `member add` (or `promote`) of a node that never answers waits for it
/// and holds every other change; removing that node cancels the wait: the
/// add is refused ("the joining node was removed") and the removal commits,
/// without a leader change. Any other change is still refused meanwhile.
#[test]
fn removing_a_stopped_joining_node_cancels_its_pending_add() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(1));
    let goose = cluster.goose().unwrap();
    let stopped = NodeId(4);
    cluster.propose(
        goose,
        1,
        MembershipChange::AddVoter {
            id: stopped,
            addr: addr(4),
        },
    );
    cluster.run_for(Duration::from_secs(1));
    cluster.propose(
        goose,
        2,
        MembershipChange::AddLearner {
            id: NodeId(5),
            addr: addr(5),
        },
    );
    assert!(cluster.events.contains(&(
        goose,
        Event::Rejected {
            id: ProposalId(2),
            reason: RejectReason::ChangeInProgress
        }
    )));
    cluster.propose(goose, 3, MembershipChange::Remove { id: stopped });
    assert!(cluster.events.contains(&(
        goose,
        Event::Rejected {
            id: ProposalId(1),
            reason: RejectReason::Invalid("the joining node was removed".into())
        }
    )));
    cluster.run_for(Duration::from_secs(1));
    assert!(cluster
        .events
        .contains(&(goose, Event::Done { id: ProposalId(3) })));
    assert_eq!(cluster.goose(), Some(goose), "no leader change needed");
    assert!(cluster.nodes[&goose].membership().get(stopped).is_none());
    // And the next change goes through.
    cluster.propose(
        goose,
        4,
        MembershipChange::AddLearner {
            id: NodeId(5),
            addr: addr(5),
        },
    );
    cluster.run_for(Duration::from_secs(1));
    assert!(cluster
        .events
        .contains(&(goose, Event::Done { id: ProposalId(4) })));
}
