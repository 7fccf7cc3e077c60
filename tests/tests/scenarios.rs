//! Goal: tell the stories the design promises, one named scenario each,
//! through the deterministic simulator with every checker on (design.md §9,
//! tier 2). No random faults: each story makes its own, and says which
//! section of design.md or of Ongaro's dissertation (2014) it checks.
//! A failing scenario prints its trace and the command that reruns it.
//!
//! Each story's transcript (every action, event, goose change and every
//! step that changed a node's state, with event numbers and true times) is
//! compared byte for byte with `tests/testdata/<story>.txt` when it ends:
//! a change of behaviour shows as a transcript diff. `GOOSE_REWRITE_GOLDEN=1`
//! rewrites the files (tests/README.md).

use goose_common::{MemberRole, NodeId, Term, Timestamp};
use goose_tests::golden::check_golden;
use goose_tests::sim::{node_addr, PartitionShape, RaftRole, ReleasePolicy, Sim, SimConfig};
use goosed::raft::{Config, Event, MembershipChange, RejectReason};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// The seed of every scenario (any seed tells the same story).
const SEED: u64 = 2024;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn id(number: u64) -> NodeId {
    NodeId(number)
}

/// The default timers (design.md §8).
fn timing() -> Config {
    Config::new(NodeId(1))
}

/// A story's simulation. When the story ends without a panic, its
/// transcript is compared with `tests/testdata/<name>.txt`.
struct Story {
    sim: Sim,
    name: String,
}

impl Story {
    /// Tells the story of `config` (its transcript kept) under `name`.
    fn new(mut config: SimConfig, name: &str) -> Story {
        config.transcript = true;
        Story {
            sim: Sim::new(config),
            name: name.to_string(),
        }
    }
}

impl Deref for Story {
    type Target = Sim;
    fn deref(&self) -> &Sim {
        &self.sim
    }
}

impl DerefMut for Story {
    fn deref_mut(&mut self) -> &mut Sim {
        &mut self.sim
    }
}

impl Drop for Story {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            check_golden(&self.name, self.sim.transcript());
        }
    }
}

/// A cluster of `voters` with default timers, a quiet sub-millisecond
/// network, drifting clocks and a goose check every millisecond or so,
/// telling the story of test `name`.
fn cluster(voters: usize, name: &str) -> Story {
    cluster_variant(voters, name, name)
}

/// [`cluster`] for one of several stories of test `test`, told under `name`.
fn cluster_variant(voters: usize, test: &str, name: &str) -> Story {
    cluster_releasing(voters, test, name, ReleasePolicy::prompt())
}

/// [`cluster_variant`] whose daemons release handoffs by `release`.
fn cluster_releasing(voters: usize, test: &str, name: &str, release: ReleasePolicy) -> Story {
    let mut config = SimConfig::new(SEED, voters, timing());
    config.release = release;
    config.probe_interval = Some(ms(1));
    config.replay_command =
        format!("cargo test -p goose-tests --test scenarios {test} -- --nocapture");
    Story::new(config, name)
}

/// Runs until some node answers goose (within `limit`) and returns it.
fn wait_for_goose(sim: &mut Sim, limit: Duration) -> NodeId {
    let took = sim.run_until(limit, |sim| sim.goose().is_some()).unwrap();
    assert!(
        took.is_some(),
        "no goose within {limit:?} at {:?}\n{}",
        sim.now(),
        sim.trace_text()
    );
    sim.goose().expect("a goose")
}

/// Runs until a node other than `old` answers goose and returns it with the wait.
fn wait_for_new_goose(sim: &mut Sim, old: NodeId, limit: Duration) -> (NodeId, Duration) {
    let took = sim
        .run_until(limit, |sim| sim.goose().is_some_and(|goose| goose != old))
        .unwrap();
    let took =
        took.unwrap_or_else(|| panic!("no new goose within {limit:?}\n{}", sim.trace_text()));
    (sim.goose().expect("a goose"), took)
}

/// The term node `id` is in.
fn term_of(sim: &Sim, node: NodeId) -> Term {
    sim.durable(node).hard_state.term
}

/// Whether node `node` emitted `event`.
fn emitted(sim: &Sim, node: NodeId, event: &Event) -> bool {
    sim.events(node).iter().any(|(_, seen)| seen == event)
}

/// The election bound used by the stories: the new goose of a failover
/// comes within two election timeouts (the floor is about one, design.md §3).
const FAILOVER_BOUND: Duration = Duration::from_millis(600);

/// The seed story (design.md §1, §2): five nodes, one goose; crash it and a
/// new one comes; split 2 | 3 with the goose on the 3 side and the 2 side has
/// none; crash that goose and there is none anywhere for ten seconds; heal
/// and a goose returns.
#[test]
fn seed_story() {
    let mut sim = cluster(5, "seed_story");
    let first = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(2000)).unwrap();
    assert_eq!(sim.goose(), Some(first), "a quiet cluster keeps its goose");

    sim.crash(first).unwrap();
    let (second, took) = wait_for_new_goose(&mut sim, first, FAILOVER_BOUND);
    println!("failover after a crash took {took:?}");
    sim.restart(first).unwrap();
    sim.run_for(ms(500)).unwrap();
    assert_eq!(sim.goose(), Some(second));

    let mut three: Vec<u64> = vec![second.0];
    let others: Vec<u64> = (1..=5).filter(|&n| n != second.0).collect();
    three.extend_from_slice(&others[..2]);
    let two = others[2..].to_vec();
    sim.partition(PartitionShape::Split(three.clone(), two.clone()))
        .unwrap();
    let changed = sim
        .run_until(ms(3000), |sim| sim.goose() != Some(second))
        .unwrap();
    assert_eq!(
        changed, None,
        "the goose on the majority side stays the goose"
    );

    sim.crash(second).unwrap();
    let appeared = sim
        .run_until(ms(10_000), |sim| sim.goose().is_some())
        .unwrap();
    assert_eq!(
        appeared, None,
        "no side has a majority, so no goose anywhere"
    );

    sim.heal().unwrap();
    let back = wait_for_goose(&mut sim, ms(10 * 300));
    assert_ne!(back, second, "the crashed goose is down");
    println!("story: geese {first}, {second}, then none, then {back}");
}

/// A graceful handoff (design.md §2, dissertation §3.10): the goose stops
/// answering at once, waits out its promises, sends TimeoutNow; the new
/// goose comes within the promise plus a few round trips, and the old one
/// never answers goose again in its term.
#[test]
fn graceful_handoff() {
    let mut sim = cluster(5, "graceful_handoff");
    let old = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(1000)).unwrap();
    let old_term = term_of(&sim, old);
    let asked_ns = sim.now_ns();
    let request = sim.handoff(old, None).unwrap();
    let (new, _) = wait_for_new_goose(&mut sim, old, FAILOVER_BOUND);
    assert!(
        emitted(&sim, old, &Event::Done { id: request }),
        "the handoff reports Done"
    );
    assert!(term_of(&sim, new) > old_term);

    let first_new = sim
        .goose_changes()
        .iter()
        .find(|c| c.goose.is_some_and(|(n, _)| n == new))
        .expect("seen");
    let window = Duration::from_nanos(first_new.time_ns - asked_ns);
    let bound = timing().promise_max + ms(10);
    println!("handoff goose-less window: {window:?} (bound {bound:?})");
    assert!(
        window <= bound,
        "the goose-less window {window:?} exceeds {bound:?}"
    );

    sim.run_for(ms(3000)).unwrap();
    let old_again = sim
        .goose_changes()
        .iter()
        .any(|c| c.time_ns > asked_ns && c.goose == Some((old, old_term)));
    assert!(
        !old_again,
        "the old goose answered goose again in term {old_term}"
    );
    assert_eq!(sim.goose(), Some(new), "the new goose keeps the goose");
}

/// design.md §7: a handoff waits for what acts on the role. Runners that
/// confirm late leave no goose until they do, and the handoff then goes on
/// at once; a runner that never confirms means no TimeoutNow: the node
/// gives the role up and the next goose comes only once its lease has run
/// out, by an ordinary election.
#[test]
fn a_handoff_waits_for_its_runners() {
    let test = "a_handoff_waits_for_its_runners";
    let late = ms(800);
    let policy = ReleasePolicy {
        prompt_max: late,
        late_percent: 0,
        unconfirmed_percent: 0,
        late_max: late,
    };
    let mut sim = cluster_releasing(5, test, "handoff_released_late", policy);
    let old = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(1000)).unwrap();
    let request = sim.handoff(old, None).unwrap();
    let (_, took) = wait_for_new_goose(&mut sim, old, ms(2000));
    assert!(emitted(&sim, old, &Event::Done { id: request }));
    let bound = late + timing().promise_max + ms(10);
    println!("late release: goose-less for {took:?} (release after {late:?})");
    assert!(
        took >= late && took <= bound,
        "goose-less for {took:?}: the release came after {late:?}, the bound is {bound:?}"
    );
    assert_eq!(sim.stats().releases, 1);

    let given_up_after = ms(400);
    let policy = ReleasePolicy {
        prompt_max: given_up_after,
        late_percent: 0,
        unconfirmed_percent: 100,
        late_max: given_up_after + ms(1),
    };
    let mut sim = cluster_releasing(5, test, "handoff_not_released", policy);
    let old = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(1000)).unwrap();
    let request = sim.handoff(old, None).unwrap();
    let (_, took) = wait_for_new_goose(&mut sim, old, ms(3000));
    let rejected = Event::Rejected {
        id: request,
        reason: RejectReason::NotReleased,
    };
    assert!(
        emitted(&sim, old, &rejected),
        "the handoff reports NotReleased"
    );
    // The voters heard the old leader until it gave up (its last heartbeat
    // at most one interval before), and grant no vote for an election
    // timeout after that.
    let floor = given_up_after + timing().election_timeout_min - timing().heartbeat_interval;
    println!("unconfirmed release: goose-less for {took:?} (floor {floor:?})");
    assert!(
        took >= floor,
        "goose-less for only {took:?}, floor {floor:?}"
    );
    assert!(took <= given_up_after + FAILOVER_BOUND);
    assert_eq!(sim.stats().releases_unconfirmed, 1);
}

/// Adding a node (design.md §3, dissertation §4.2.1): it starts empty, is
/// added as a learner (Joining), catches up, is promoted to voter by a
/// second entry, and the proposal reports Done only once the promotion commits.
#[test]
fn add_node() {
    let mut sim = cluster(3, "add_node");
    let goose = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(500)).unwrap();
    let new = id(4);
    let request = sim
        .propose(
            goose,
            MembershipChange::AddVoter {
                id: new,
                addr: node_addr(new),
            },
        )
        .unwrap();
    let done = sim
        .run_until(ms(3000), |sim| {
            emitted(sim, goose, &Event::Done { id: request })
        })
        .unwrap();
    assert!(done.is_some(), "the addition settles\n{}", sim.trace_text());
    assert!(
        sim.node(goose).unwrap().membership().is_voter(new),
        "Done comes once the promotion commits"
    );
    sim.run_for(ms(200)).unwrap();

    let committed: Vec<_> = sim
        .events(goose)
        .iter()
        .filter_map(|(_, event)| match event {
            Event::MembershipCommitted { membership, .. } => membership.get(new).map(|m| m.role),
            _ => None,
        })
        .collect();
    assert_eq!(
        committed,
        vec![MemberRole::Joining, MemberRole::Voter],
        "learner first, then voter"
    );
    let leader = sim.node(goose).unwrap();
    assert!(leader.membership().is_voter(new));
    let joined = sim.node(new).unwrap();
    assert_eq!(
        joined.commit_index(),
        leader.commit_index(),
        "the new node caught up"
    );
    assert!(joined.membership().is_voter(new));
    assert_eq!(
        sim.goose(),
        Some(goose),
        "adding a node does not disturb the goose"
    );
}

/// Removing a duck (design.md §3, dissertation §4.1): the change commits
/// without waiting for the duck, the goose stays, and the removed duck
/// takes no further part: it is never goose and the members' terms stay flat.
/// The leader keeps replicating to the removed duck until it has seen its
/// removal committed, so it says so (design.md §3).
#[test]
fn remove_duck() {
    let mut sim = cluster(5, "remove_duck");
    let goose = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(500)).unwrap();
    let term = term_of(&sim, goose);
    let duck = NodeId(if goose.0 == 5 { 4 } else { 5 });
    let request = sim
        .propose(goose, MembershipChange::Remove { id: duck })
        .unwrap();
    let done = sim
        .run_until(ms(2000), |sim| {
            emitted(sim, goose, &Event::Done { id: request })
        })
        .unwrap();
    assert!(done.is_some(), "the removal settles");
    sim.run_for(ms(3000)).unwrap();
    assert!(sim.node(goose).unwrap().membership().get(duck).is_none());
    // design.md §3: "a removed node stops taking part and says so".
    assert!(
        emitted(&sim, duck, &Event::Removed),
        "the removed duck says so"
    );
    assert!(sim.node(duck).unwrap().is_removed());
    for n in (1..=5).filter(|&n| n != duck.0) {
        let node = sim.node(id(n)).unwrap();
        assert!(
            node.membership().get(duck).is_none(),
            "node {n} still lists the duck"
        );
        assert_eq!(node.hard_state().term, term, "node {n}'s term moved");
    }
    assert_eq!(sim.goose(), Some(goose));
}

/// Removing the goose (design.md §3, dissertation §4.2.2): it keeps leading
/// until the change commits, then hands over and stops, saying Removed; a
/// new goose comes from the remaining voters.
#[test]
fn remove_goose() {
    let mut sim = cluster(5, "remove_goose");
    let goose = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(500)).unwrap();
    let removed_at_ns = sim.now_ns();
    let request = sim
        .propose(goose, MembershipChange::Remove { id: goose })
        .unwrap();
    let (new, took) = wait_for_new_goose(&mut sim, goose, FAILOVER_BOUND);
    println!("the removed goose handed over to {new} in {took:?}");
    assert!(emitted(&sim, goose, &Event::Done { id: request }));
    assert!(
        emitted(&sim, goose, &Event::Removed),
        "the old goose says it was removed"
    );
    sim.run_for(ms(3000)).unwrap();
    let removed = sim.node(goose).unwrap();
    assert!(removed.is_removed());
    assert_ne!(removed.raft_role(), RaftRole::Leader);
    let again = sim
        .goose_changes()
        .iter()
        .any(|c| c.time_ns > removed_at_ns && c.goose.is_some_and(|(n, _)| n == goose));
    assert!(!again, "the removed node never answers goose again");
    assert_eq!(sim.goose(), Some(new));
}

/// One change at a time (dissertation §4.1): a second change proposed
/// while the first is uncommitted is rejected with ChangeInProgress.
#[test]
fn second_change_while_pending_is_rejected() {
    let mut sim = cluster(3, "second_change_while_pending_is_rejected");
    let goose = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(500)).unwrap();
    let first = sim
        .propose(
            goose,
            MembershipChange::AddVoter {
                id: id(4),
                addr: node_addr(id(4)),
            },
        )
        .unwrap();
    let second = sim
        .propose(
            goose,
            MembershipChange::Remove {
                id: NodeId(if goose.0 == 1 { 2 } else { 1 }),
            },
        )
        .unwrap();
    let rejected = Event::Rejected {
        id: second,
        reason: RejectReason::ChangeInProgress,
    };
    assert!(
        emitted(&sim, goose, &rejected),
        "events: {:?}",
        sim.events(goose)
    );
    let done = sim
        .run_until(ms(3000), |sim| {
            emitted(sim, goose, &Event::Done { id: first })
        })
        .unwrap();
    assert!(done.is_some(), "the first change still completes");
}

/// The 2015 single-server change bug (Ongaro, raft-dev, 2015; design.md §3):
/// a new leader must commit an entry of its own term before it accepts a
/// change; until then it answers NotReady.
#[test]
fn new_leader_refuses_change_before_its_noop_commits() {
    let mut sim = cluster(5, "new_leader_refuses_change_before_its_noop_commits");
    let old = wait_for_goose(&mut sim, ms(3000));
    let old_term = term_of(&sim, old);
    sim.crash(old).unwrap();
    let elected = sim
        .run_until(FAILOVER_BOUND, |sim| {
            sim.node_ids().into_iter().any(|n| {
                sim.node(n).is_some_and(|node| {
                    node.raft_role() == RaftRole::Leader && node.hard_state().term > old_term
                })
            })
        })
        .unwrap();
    assert!(elected.is_some(), "a new leader is elected");
    let leader = sim
        .node_ids()
        .into_iter()
        .find(|&n| {
            sim.node(n)
                .is_some_and(|node| node.raft_role() == RaftRole::Leader)
        })
        .expect("the leader");
    let node = sim.node(leader).unwrap();
    assert!(
        node.commit_index() < node.last_index(),
        "the no-op is not committed yet"
    );
    let early = sim
        .propose(leader, MembershipChange::Remove { id: old })
        .unwrap();
    let not_ready = Event::Rejected {
        id: early,
        reason: RejectReason::NotReady,
    };
    assert!(
        emitted(&sim, leader, &not_ready),
        "events: {:?}",
        sim.events(leader)
    );
    assert_eq!(sim.goose(), None, "and it is not the goose yet either");

    wait_for_goose(&mut sim, ms(100));
    let later = sim
        .propose(leader, MembershipChange::Remove { id: old })
        .unwrap();
    let done = sim
        .run_until(ms(1000), |sim| {
            emitted(sim, leader, &Event::Done { id: later })
        })
        .unwrap();
    assert!(
        done.is_some(),
        "once the no-op commits, the change goes through"
    );
}

/// A removed node does not disrupt the cluster (dissertation §4.2.3): cut
/// off while it was removed, it never learns it, times out again and again,
/// and the others' terms stay flat because PreVote and leader stickiness
/// turn it away.
#[test]
fn removed_node_does_not_disrupt() {
    let mut sim = cluster(5, "removed_node_does_not_disrupt");
    let goose = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(500)).unwrap();
    let outcast = NodeId(if goose.0 == 5 { 4 } else { 5 });
    sim.partition(PartitionShape::Isolate(outcast.0)).unwrap();
    let request = sim
        .propose(goose, MembershipChange::Remove { id: outcast })
        .unwrap();
    let done = sim
        .run_until(ms(2000), |sim| {
            emitted(sim, goose, &Event::Done { id: request })
        })
        .unwrap();
    assert!(done.is_some(), "the removal commits without the outcast");
    assert!(
        !sim.node(outcast).unwrap().is_removed(),
        "the outcast did not hear of it"
    );
    sim.heal().unwrap();
    let terms_before: Vec<Term> = (1..=5)
        .filter(|&n| n != outcast.0)
        .map(|n| term_of(&sim, id(n)))
        .collect();
    let changed = sim
        .run_until(ms(10_000), |sim| sim.goose() != Some(goose))
        .unwrap();
    assert_eq!(changed, None, "the goose stays the goose");
    let terms_after: Vec<Term> = (1..=5)
        .filter(|&n| n != outcast.0)
        .map(|n| term_of(&sim, id(n)))
        .collect();
    assert_eq!(terms_before, terms_after, "the members' terms stay flat");
}

/// A flapping node (dissertation §9.6, PreVote): cut off and reconnected
/// again and again, each time long enough to time out, it never raises the
/// cluster's term and never unseats the goose.
#[test]
fn flapping_node_does_not_inflate_terms() {
    let mut sim = cluster(5, "flapping_node_does_not_inflate_terms");
    let goose = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(500)).unwrap();
    let term = term_of(&sim, goose);
    let flapper = NodeId(if goose.0 == 3 { 2 } else { 3 });
    for _ in 0..10 {
        sim.partition(PartitionShape::Isolate(flapper.0)).unwrap();
        sim.run_for(ms(1000)).unwrap();
        sim.heal().unwrap();
        sim.run_for(ms(500)).unwrap();
        assert_eq!(sim.goose(), Some(goose), "the goose keeps the goose");
    }
    for n in 1..=5 {
        assert_eq!(term_of(&sim, id(n)), term, "node {n}'s term moved");
    }
}

/// A minority goose stops answering goose when its lease ends (design.md §2):
/// cut off at its local time L, it is a duck by its own clock's L + lease,
/// and a new goose comes on the majority side only after that.
#[test]
fn isolated_goose_is_a_duck_by_lease_end() {
    let mut sim = cluster(5, "isolated_goose_is_a_duck_by_lease_end");
    let goose = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(1000)).unwrap();
    assert!(sim
        .ask(goose)
        .unwrap()
        .is_some_and(|answer| answer.is_goose()));
    let cut_local = sim.local_now(goose);
    sim.partition(PartitionShape::Isolate(goose.0)).unwrap();
    let lease_end_local = Timestamp(cut_local.0 + timing().lease_duration().as_nanos() as u64);
    let lease_end = sim.true_time_of(goose, lease_end_local);
    let left = lease_end - sim.now();
    sim.run_for(left).unwrap();
    let answer = sim.ask(goose).unwrap().expect("running");
    assert!(
        !answer.is_goose(),
        "still goose at its lease end: {answer:?}"
    );
    let (new, _) = wait_for_new_goose(&mut sim, goose, FAILOVER_BOUND);
    let first_new_ns = sim
        .goose_changes()
        .iter()
        .find(|c| c.goose.is_some_and(|(n, _)| n == new))
        .unwrap()
        .time_ns;
    let last_old_ns = sim
        .goose_changes()
        .iter()
        .filter(|c| c.goose.is_none())
        .map(|c| c.previous_seen_ns)
        .next_back()
        .unwrap();
    assert!(
        last_old_ns < first_new_ns,
        "the new goose came after the old one's lease"
    );
}

/// A paused goose (design.md §2: the clock runs on while a host sleeps):
/// paused past its lease, it resumes as a duck at once, before it has
/// processed anything, and the cluster has a new goose meanwhile.
#[test]
fn paused_goose_resumes_as_a_duck() {
    let mut sim = cluster(5, "paused_goose_resumes_as_a_duck");
    let goose = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(500)).unwrap();
    sim.pause(goose).unwrap();
    let (new, _) = wait_for_new_goose(&mut sim, goose, FAILOVER_BOUND);
    sim.run_for(ms(1000)).unwrap();
    sim.resume(goose).unwrap();
    let answer = sim.ask(goose).unwrap().expect("running");
    assert!(
        !answer.is_goose(),
        "the resumed node answered goose: {answer:?}"
    );
    sim.run_for(ms(1000)).unwrap();
    assert_eq!(sim.goose(), Some(new));
    assert_eq!(
        sim.node(goose).unwrap().leader(),
        Some(new),
        "it follows the new goose"
    );
}

/// Runs until `node` answers goose, asking the current goose to hand over
/// to it as often as needed.
fn make_goose(sim: &mut Sim, node: NodeId) {
    for _ in 0..10 {
        let goose = wait_for_goose(sim, ms(5000));
        if goose == node {
            return;
        }
        sim.handoff(goose, Some(node)).unwrap();
        let took = sim
            .run_until(ms(1000), |sim| sim.goose() == Some(node))
            .unwrap();
        if took.is_some() {
            return;
        }
    }
    panic!("n{node} never became the goose\n{}", sim.trace_text());
}

/// One timing (design.md §2, "what the protocol enforces"): a rolling
/// restart to the fast profile passes through a cluster whose voters wait
/// 50 ms while the goose's lease was computed from 300 ms. The goose is
/// then cut off; the fast voters must wait out the goose's lease (its
/// timeout travels in every append), not their own timeout. Before the
/// fix they elected a goose about 60 ms after the cut while the old one
/// still answered goose for another 220 ms, which checker (a) reports.
#[test]
fn mixed_election_timeouts_never_overlap() {
    let mut config = SimConfig::new(SEED, 3, Config::fast(NodeId(1)));
    config.probe_interval = Some(ms(1));
    config.liveness_bound = Some(ms(3000));
    config.replay_command =
        "cargo test -p goose-tests --test scenarios mixed_election_timeouts_never_overlap -- --nocapture".into();
    let mut sim = Story::new(config, "mixed_election_timeouts_never_overlap");
    wait_for_goose(&mut sim, ms(3000));
    sim.restart_with(id(1), Config::new(id(1))).unwrap();
    make_goose(&mut sim, id(1));
    sim.run_for(ms(200)).unwrap();
    let cut_at = sim.now();
    sim.partition(PartitionShape::Isolate(1)).unwrap();
    let (new, took) = wait_for_new_goose(&mut sim, id(1), ms(3000));
    assert_ne!(new, id(1));
    // The new goose waited out the default timeout, not its own 50 ms.
    assert!(
        sim.now() - cut_at >= ms(290),
        "a fast voter elected n{new} {took:?} after the cut, inside the old goose's lease"
    );
    sim.heal().unwrap();
    sim.run_for(ms(2000)).unwrap();
    assert!(sim.goose().is_some(), "a goose after healing");
}

/// The same guard across a restart: a voter that acknowledged a slow goose
/// and then restarts with fast timings still waits out the goose's lease,
/// because the guard it acknowledged is persisted with its term and vote.
#[test]
fn a_voter_restarted_with_fast_timings_waits_out_the_lease_it_acknowledged() {
    let mut sim = cluster(
        3,
        "a_voter_restarted_with_fast_timings_waits_out_the_lease_it_acknowledged",
    );
    make_goose(&mut sim, id(1));
    sim.run_for(ms(500)).unwrap();
    let guard = sim.durable(id(2)).hard_state.lease_guard;
    assert_eq!(guard, ms(300), "n2 persisted the goose's guard");
    // Both other voters switch to the fast profile while n1 leads, then n1
    // is cut off just after the second restart.
    sim.restart_with(id(3), Config::fast(id(3))).unwrap();
    sim.run_for(ms(500)).unwrap();
    sim.restart_with(id(2), Config::fast(id(2))).unwrap();
    let cut_at = sim.now();
    sim.partition(PartitionShape::Isolate(1)).unwrap();
    let (_, _) = wait_for_new_goose(&mut sim, id(1), ms(3000));
    assert!(
        sim.now() - cut_at >= ms(290),
        "the fast voters waited out n1's lease"
    );
    sim.heal().unwrap();
    sim.run_for(ms(1000)).unwrap();
    // Once every leader they hear is fast, the persisted guard comes down.
    sim.run_for(ms(1000)).unwrap();
    let (slow, fast) = (sim.durable(id(1)).hard_state, sim.durable(id(2)).hard_state);
    assert_eq!(
        fast.lease_guard,
        ms(50),
        "n2's guard follows its fast leader again"
    );
    assert_eq!(
        slow.lease_guard,
        ms(300),
        "n1's own timeout is still 300 ms"
    );
}

/// The README's recovery procedure, done wrong on purpose (design.md §2,
/// "one identity per member"): in {L, S, W} with L the goose, S is
/// stopped and removed; W is stopped, removed, rebuilt with an empty data
/// directory and started with `--join` under its old id; then S comes back
/// with its old data directory, still believing the configuration is
/// {L, S, W}. Before the fix W (a `--join` node with an empty log) granted
/// S its votes, S led a term and its appends crashed L ("a committed entry
/// must never be truncated"). Now a `--join` node votes for nobody, L
/// stays the goose, and the rebuilt W is added back under its old id with
/// its new identity; messages from any other identity under its id are
/// dropped.
#[test]
fn a_rebuilt_member_and_a_returning_removed_one_cannot_elect_a_second_goose() {
    for cut in [false, true] {
        let test = "a_rebuilt_member_and_a_returning_removed_one_cannot_elect_a_second_goose";
        let variant = if cut { "cut-off" } else { "connected" };
        let mut sim = cluster_variant(3, test, &format!("{test}-{variant}"));
        let leader = wait_for_goose(&mut sim, ms(3000));
        sim.run_for(ms(500)).unwrap();
        let others: Vec<NodeId> = (1..=3).map(id).filter(|&n| n != leader).collect();
        let (stale, rebuilt) = (others[0], others[1]);
        for &gone in &[stale, rebuilt] {
            sim.crash(gone).unwrap();
            let request = sim
                .propose(leader, MembershipChange::Remove { id: gone })
                .unwrap();
            let done = sim
                .run_until(ms(2000), |sim| {
                    emitted(sim, leader, &Event::Done { id: request })
                })
                .unwrap();
            assert!(done.is_some(), "n{gone} is removed");
        }
        let old_identity = sim.durable(rebuilt).identity;
        sim.rebuild(rebuilt).unwrap();
        assert_ne!(sim.durable(rebuilt).identity, old_identity);
        if cut {
            sim.partition(PartitionShape::Split(
                vec![leader.0],
                vec![stale.0, rebuilt.0],
            ))
            .unwrap();
        }
        sim.restart(stale).unwrap();
        // Checker (a) fails the run if the stale member ever overlaps L.
        sim.run_for(ms(4000)).unwrap();
        assert_eq!(sim.goose(), Some(leader), "L stays the goose (cut: {cut})");
        let stale_role = sim.node(stale).unwrap().raft_role();
        assert_ne!(
            stale_role,
            RaftRole::Leader,
            "the returning member leads nothing"
        );
        assert!(
            sim.node(rebuilt).unwrap().hard_state().vote.is_none(),
            "W voted for nobody"
        );
        sim.heal().unwrap();
        sim.run_for(ms(1000)).unwrap();
        let addr = node_addr(rebuilt);
        let request = sim
            .propose(leader, MembershipChange::AddVoter { id: rebuilt, addr })
            .unwrap();
        let done = sim
            .run_until(ms(3000), |sim| {
                emitted(sim, leader, &Event::Done { id: request })
            })
            .unwrap();
        assert!(done.is_some(), "the rebuilt W is added back");
        // The bookkeeping of an id added again starts fresh: no storm.
        let sent_before = sim.stats().messages_sent;
        sim.run_for(ms(2000)).unwrap();
        let sent = sim.stats().messages_sent - sent_before;
        assert!(sent < 1000, "{sent} messages in 2 s of a quiet cluster");
        let membership = sim.node(leader).unwrap().membership().clone();
        let member = membership.get(rebuilt).expect("W is a member");
        assert_eq!(member.role, MemberRole::Voter);
        assert_eq!(
            member.identity,
            sim.durable(rebuilt).identity,
            "bound to W's new identity"
        );
        assert_eq!(sim.goose(), Some(leader));
        let dropped = sim.node(leader).unwrap().peer_faults().wrong_identity;
        println!("cut {cut}: L dropped {dropped} messages from another identity");
    }
}

/// Identities of the initial voters are bound by the first leader: after
/// that, every member's identity is known to the whole cluster.
#[test]
fn the_first_leader_binds_every_identity() {
    let mut sim = cluster(5, "the_first_leader_binds_every_identity");
    let goose = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(1000)).unwrap();
    for n in 1..=5 {
        let node = sim.node(id(n)).unwrap();
        for member in &node.membership().members {
            assert_eq!(
                member.identity,
                sim.durable(member.id).identity,
                "n{n} knows n{}'s identity",
                member.id
            );
        }
        assert_eq!(node.committed_membership(), node.membership());
    }
    assert_eq!(sim.goose(), Some(goose));
}

/// design.md §2, "one identity per member": another process started under
/// a running member's id with a fresh data directory and the member's
/// `--peer` flags, at the member's address (either process gets what is
/// sent there). Once the member's identity is bound, the impostor's
/// datagrams are dropped and counted by every peer, it learns nothing and
/// never leads, though it campaigns; the member it shadows, the goose
/// here, stays the only goose throughout, and the cluster is whole again
/// once the impostor is stopped. The same with `--join`, which waits.
#[test]
fn a_process_started_under_a_running_members_id_is_ignored() {
    for peers in [true, false] {
        a_process_under_the_goose_id(peers);
    }
}

fn a_process_under_the_goose_id(peers: bool) {
    let test = "a_process_started_under_a_running_members_id_is_ignored";
    let variant = if peers { "peers" } else { "join" };
    let mut sim = cluster_variant(3, test, &format!("{test}-{variant}"));
    let goose = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(1000)).unwrap();
    let faults_before: Vec<u64> = (1..=3)
        .map(|n| sim.node(id(n)).unwrap().peer_faults().wrong_identity)
        .collect();
    sim.start_impostor(goose, peers).unwrap();
    let impostor_identity = sim.impostor().unwrap().identity();
    assert_ne!(impostor_identity, sim.durable(goose).identity);
    // Several election timeouts, with every checker on after every event.
    sim.run_for(ms(3000)).unwrap();
    let impostor = sim.impostor().expect("the impostor still runs");
    assert_eq!(impostor.last_index().0, 0, "the impostor learnt no entry");
    assert_eq!(impostor.commit_index().0, 0);
    assert_ne!(impostor.raft_role(), RaftRole::Leader);
    assert!(impostor.peer_faults().wrong_identity > 0);
    let dropped_by_peers: u64 = (1..=3)
        .filter(|&n| id(n) != goose)
        .map(|n| {
            sim.node(id(n)).unwrap().peer_faults().wrong_identity - faults_before[n as usize - 1]
        })
        .sum();
    // A --join impostor waits for a leader and sends nothing; one started
    // with --peer flags campaigns, and every peer drops what it sends.
    assert_eq!(
        dropped_by_peers > 0,
        peers,
        "the peers dropped {dropped_by_peers} of the impostor's datagrams"
    );
    assert_eq!(sim.goose(), Some(goose), "the member kept the goose");
    let changes = sim.goose_changes().len();
    sim.retire_impostor().unwrap();
    sim.run_for(ms(2000)).unwrap();
    assert_eq!(sim.goose(), Some(goose));
    assert_eq!(sim.goose_changes().len(), changes, "no goose change at all");
    for n in 1..=3 {
        let node = sim.node(id(n)).unwrap();
        let member = node.membership().get(goose).unwrap();
        assert_eq!(member.identity, sim.durable(goose).identity, "n{n}");
    }
}

/// [`cluster_variant`] whose members have `priorities` (priority, preempt,
/// preempt delay), by id from 1.
fn cluster_with_priorities(
    voters: usize,
    test: &str,
    priorities: Vec<(u8, bool, Duration)>,
) -> Story {
    let mut config = SimConfig::new(SEED, voters, timing());
    config.priorities = priorities;
    config.probe_interval = Some(ms(1));
    config.replay_command =
        format!("cargo test -p goose-tests --test scenarios {test} -- --nocapture");
    Story::new(config, test)
}

/// Runs for `duration`, failing if `node` answers goose at any check.
fn never_goose(sim: &mut Sim, node: NodeId, duration: Duration) {
    let seen = sim
        .run_until(duration, |sim| sim.goose() == Some(node))
        .unwrap();
    assert!(
        seen.is_none(),
        "n{node} became the goose at {:?}",
        sim.now()
    );
}

/// design.md §2 and §7: a goose whose health check fails hands over the
/// voluntary way (a handoff, not a failover: no election timeout lost) to
/// an eligible voter, and never answers goose while unhealthy.
#[test]
fn an_unhealthy_goose_hands_over() {
    let mut sim = cluster(5, "an_unhealthy_goose_hands_over");
    let old = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(1000)).unwrap();
    sim.set_healthy(old, false).unwrap();
    assert_ne!(sim.goose(), Some(old), "duck at once");
    let (new, took) = wait_for_new_goose(&mut sim, old, ms(2000));
    println!("unhealthy goose n{old}: n{new} took over after {took:?}");
    assert!(
        took < timing().election_timeout_min / 2,
        "a handoff, not a failover: {took:?}"
    );
    never_goose(&mut sim, old, ms(3000));
    sim.set_healthy(old, true).unwrap();
    sim.run_for(ms(2000)).unwrap();
    assert_eq!(sim.goose(), Some(new), "recovering moves nothing back");
}

/// design.md §2: with no eligible voter there is no goose (status says
/// why); the first voter whose check passes again becomes the goose.
#[test]
fn all_unhealthy_means_no_goose_until_one_recovers() {
    let mut sim = cluster(3, "all_unhealthy_means_no_goose_until_one_recovers");
    wait_for_goose(&mut sim, ms(3000));
    for node in 1..=3 {
        sim.set_healthy(id(node), false).unwrap();
    }
    let seen = sim
        .run_until(ms(5000), |sim| sim.goose().is_some())
        .unwrap();
    assert!(seen.is_none(), "a goose while every voter is unhealthy");
    let leaders = sim
        .node_ids()
        .into_iter()
        .filter(|&node| sim.node(node).unwrap().raft_role() == RaftRole::Leader)
        .count();
    assert_eq!(
        leaders, 1,
        "a leader (not a goose) still holds the majority"
    );
    let recovered = id(2);
    sim.set_healthy(recovered, true).unwrap();
    let goose = wait_for_goose(&mut sim, FAILOVER_BOUND);
    assert_eq!(goose, recovered);
}

/// A drain is the operator's intent: a drained goose hands over, and a
/// drained node does not become the goose again across its restart (nor
/// when the goose fails) until it is undrained.
#[test]
fn a_drain_holds_across_a_restart_until_undrained() {
    let mut sim = cluster(3, "a_drain_holds_across_a_restart_until_undrained");
    let old = wait_for_goose(&mut sim, ms(3000));
    sim.run_for(ms(500)).unwrap();
    sim.set_drained(old, true).unwrap();
    let (second, took) = wait_for_new_goose(&mut sim, old, ms(2000));
    assert!(took < timing().election_timeout_min / 2, "{took:?}");
    sim.crash(old).unwrap();
    sim.run_for(ms(500)).unwrap();
    sim.restart(old).unwrap();
    never_goose(&mut sim, old, ms(2000));
    // The goose fails: the third node, not the drained one, takes over.
    sim.crash(second).unwrap();
    let (third, _) = wait_for_new_goose(&mut sim, second, ms(3000));
    assert_ne!(third, old);
    sim.restart(second).unwrap();
    never_goose(&mut sim, old, ms(2000));
    sim.set_drained(old, false).unwrap();
    // The goose learns of it from the next heartbeat's reply.
    sim.run_for(timing().heartbeat_interval * 2).unwrap();
    sim.handoff(third, Some(old)).unwrap();
    let (back, _) = wait_for_new_goose(&mut sim, third, ms(2000));
    assert_eq!(back, old, "undrained, it may be the goose again");
}

/// design.md §2, priority: a voter of higher priority that flaps faster
/// than its preempt delay never makes the goose move; once it stays
/// eligible for the delay it takes over; with `preempt = false` it never does.
#[test]
fn preemption_waits_for_the_delay_and_ignores_a_flapping_node() {
    let delay = ms(2000);
    let priorities = vec![(100, true, delay), (100, true, delay), (200, true, delay)];
    let test = "preemption_waits_for_the_delay_and_ignores_a_flapping_node";
    let mut sim = cluster_with_priorities(3, test, priorities);
    let keen = id(3);
    sim.set_drained(keen, true).unwrap();
    let old = wait_for_goose(&mut sim, ms(3000));
    assert_ne!(old, keen);
    sim.set_drained(keen, false).unwrap();
    // Healthy for 1.5 s, unhealthy for 0.5 s, for 8 s: never 2 s in a row.
    for _ in 0..4 {
        sim.run_for(ms(1500)).unwrap();
        sim.set_healthy(keen, false).unwrap();
        sim.run_for(ms(500)).unwrap();
        sim.set_healthy(keen, true).unwrap();
    }
    assert_eq!(sim.goose(), Some(old), "a flapping node moved the goose");
    assert!(sim.goose_changes().len() <= 2, "{:?}", sim.goose_changes());
    let steady_since = sim.now();
    let (new, took) = wait_for_new_goose(&mut sim, old, delay + ms(1000));
    assert_eq!(new, keen);
    println!("preempted {took:?} after the preempter became steady (delay {delay:?})");
    assert!(took >= delay && took <= delay + ms(200), "{took:?}");
    assert!(sim.now() >= steady_since + delay);
}

/// `preempt = false` (keepalived's `nopreempt`): a higher priority never
/// takes over from a healthy goose, but is still preferred when the goose
/// hands over.
#[test]
fn without_preemption_a_higher_priority_waits_for_a_handoff() {
    let delay = ms(1000);
    let priorities = vec![(100, true, delay), (100, true, delay), (200, false, delay)];
    let test = "without_preemption_a_higher_priority_waits_for_a_handoff";
    let mut sim = cluster_with_priorities(3, test, priorities);
    let polite = id(3);
    sim.set_drained(polite, true).unwrap();
    let old = wait_for_goose(&mut sim, ms(3000));
    sim.set_drained(polite, false).unwrap();
    never_goose(&mut sim, polite, ms(5000));
    assert_eq!(sim.goose(), Some(old));
    sim.handoff(old, None).unwrap();
    let (new, _) = wait_for_new_goose(&mut sim, old, ms(2000));
    assert_eq!(new, polite, "a handoff prefers the highest priority");
}
