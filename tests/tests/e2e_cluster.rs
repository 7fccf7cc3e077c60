//! Goal: the real binaries keep the promise of design.md §2 on a real
//! network stack. Clusters of `goosed run` processes on 127.0.0.1 are driven
//! only through signals and `goosectl` (design.md §6) and observed through
//! `goosectl --json status --local` and, for the background checks of the
//! goose rule, the same request spoken directly over each control socket.
//!
//! The stories: the seed story of the Python prototype on 3 and 5 nodes
//! (kill the goose, split, kill the majority's goose, heal); a goose paused
//! with SIGSTOP past its lease; graceful handoff on SIGTERM and with
//! `step-down --to`; membership changes on a live cluster that survive a
//! full restart; hostile input on every interface (datagrams, a node with
//! another key, the control socket, the command line); the exit codes of
//! `is-goose` and the events of `watch`; and the hooks of design.md §7.
//!
//! Every wait is bounded. Tests that need speed run with a 20 ms heartbeat
//! and a 150 ms election timeout; the handoff test uses the defaults. The
//! harness runs one cluster at a time (tests/src/cluster.rs).

use goose_common::datagram::{seal, BootId, ClusterKey, Header};
use goose_common::NodeId;
use goose_tests::cluster::{
    assert_goose_rule, describe_exit, free_udp_ports, run_bounded, stderr_of, wait_for, Cluster,
    Options,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for a first election or a failover.
const GOOSE_WAIT: Duration = Duration::from_secs(10);

/// How long a side without a majority is watched for a goose (the seed
/// story's "no goose" step).
const NO_GOOSE_WATCH: Duration = Duration::from_secs(3);

/// The term a node reports in `status --local --json`.
fn term_of(cluster: &Cluster, id: u64) -> u64 {
    let status = cluster
        .status_local_json(id)
        .unwrap_or_else(|| panic!("node {id} does not answer status"));
    status["term"].as_u64().expect("status has a numeric term")
}

/// Waits until node `id` answers status naming `leader` as its leader;
/// returns that status.
fn wait_to_follow(cluster: &Cluster, id: u64, leader: u64) -> serde_json::Value {
    wait_for(
        &format!("node {id} to follow node {leader}"),
        GOOSE_WAIT,
        || {
            cluster
                .status_local_json(id)
                .filter(|status| status["leader_id"].as_u64() == Some(leader))
        },
    )
}

/// Waits until every running node answers status and knows `leader` as its
/// leader: the cluster has settled after a change.
fn wait_until_settled(cluster: &Cluster, leader: u64) {
    wait_for(
        &format!("every running node to follow node {leader}"),
        GOOSE_WAIT,
        || {
            let running = cluster.running_ids();
            let statuses = cluster.statuses();
            let settled = running.iter().all(|id| {
                statuses
                    .get(id)
                    .is_some_and(|status| status["leader_id"].as_u64() == Some(leader))
            });
            settled.then_some(())
        },
    );
}

// ---------------------------------------------------------------------------
// The seed story.
// ---------------------------------------------------------------------------

/// The seed story (shared/seed.md) on a cluster of `count` nodes cut into
/// `minority | majority`, with the goose rule checked throughout:
/// one goose; SIGKILL it and a new one appears; restart the old one; split;
/// the goose ends on the majority side and the minority has none; SIGKILL
/// the majority's goose and no node anywhere is goose; heal and a goose
/// returns, with no partition rule left on any node.
fn seed_story(count: u64, minority: &[u64], majority: &[u64]) {
    let mut cluster = Cluster::start(count, Options::fast());
    let poller = cluster.start_poller();

    let first = cluster.wait_for_goose(GOOSE_WAIT);
    let status: serde_json::Value =
        serde_json::from_str(&cluster.ctl_ok(first, &["--json", "status"]))
            .expect("status --json is JSON");
    assert_eq!(status["goose"], first, "status names the goose: {status}");
    assert_eq!(
        status["members"].as_array().map(Vec::len),
        Some(usize::try_from(count).unwrap()),
        "status lists every member: {status}"
    );
    let human = cluster.ctl_ok(first, &["status"]);
    assert!(
        human.contains(&format!("node {first} (")) && human.contains("goose"),
        "human status names the goose: {human}"
    );

    let killed_at = Instant::now();
    cluster.kill(first);
    let second = cluster.wait_for_goose(GOOSE_WAIT);
    assert_ne!(second, first, "the killed goose cannot be the goose");
    eprintln!(
        "{count} nodes: node {second} became goose {} ms after SIGKILL of node {first}",
        killed_at.elapsed().as_millis()
    );
    cluster.start_node(first);
    wait_until_settled(&cluster, second);

    let sides = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    cluster.ctl_ok(
        minority[0],
        &["partition", "split", &sides(minority), &sides(majority)],
    );
    let majority_goose = cluster.wait_for_goose_among(majority, GOOSE_WAIT);
    // Once the majority has a goose, the minority's old leases are over.
    let watch_until = Instant::now() + Duration::from_secs(1);
    let mut answers = 0;
    while Instant::now() < watch_until {
        for id in minority {
            if let Some(status) = cluster.status_local_json(*id) {
                answers += 1;
                assert_ne!(
                    status["role"], "goose",
                    "node {id} of the minority answered goose: {status}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(answers > 0, "the minority never answered a status question");

    cluster.kill(majority_goose);
    cluster.assert_no_goose_for(NO_GOOSE_WATCH);

    // Heal from the minority: split and heal reach every member even when
    // split. The killed node cannot be reached, so the command may report
    // it; what matters is the state of the live nodes.
    let heal = cluster.ctl(minority[0], &["partition", "heal"]);
    eprintln!(
        "partition heal with node {majority_goose} down: {} {}",
        describe_exit(heal.status),
        stderr_of(&heal)
    );
    let healed = cluster.wait_for_goose(GOOSE_WAIT);
    assert_ne!(healed, majority_goose);
    for id in cluster.running_ids() {
        let rules: serde_json::Value =
            serde_json::from_str(&cluster.ctl_ok(id, &["--json", "partition", "list"]))
                .expect("partition list --json is JSON");
        let empty = rules["rules"].as_array().is_some_and(Vec::is_empty);
        assert!(empty, "node {id} still has rules after heal: {rules}");
    }

    assert_goose_rule(&poller.stop(), &format!("seed story, {count} nodes"));
}

/// The seed story on three nodes: 1 | 2,3.
#[test]
fn seed_story_on_three_nodes() {
    seed_story(3, &[1], &[2, 3]);
}

/// The seed story on five nodes, the prototype's own split: 1,2 | 3,4,5.
#[test]
fn seed_story_on_five_nodes() {
    seed_story(5, &[1, 2], &[3, 4, 5]);
}

// ---------------------------------------------------------------------------
// A paused goose.
// ---------------------------------------------------------------------------

/// A goose frozen with SIGSTOP for three election timeouts loses the goose
/// to another node; resumed, it never answers goose with its old lease:
/// the background poller finds no overlapping promises and no goose answer
/// of an old term after one of a newer term (design.md §2). Done twice.
#[test]
fn a_paused_goose_never_overlaps_its_successor() {
    let mut cluster = Cluster::start(3, Options::fast());
    let pause = cluster.options().election_timeout() * 3;
    let poller = cluster.start_poller();
    for round in 0..2 {
        let old = cluster.wait_for_goose(GOOSE_WAIT);
        let old_term = term_of(&cluster, old);
        cluster.pause(old);
        let paused_at = Instant::now();
        let others: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old).collect();
        let new = cluster.wait_for_goose_among(&others, GOOSE_WAIT);
        let new_term = term_of(&cluster, new);
        assert!(new_term > old_term, "the new goose has a newer term");
        std::thread::sleep(pause.saturating_sub(paused_at.elapsed()));
        cluster.resume(old);
        wait_until_settled(&cluster, new);
        let status = cluster
            .status_local_json(old)
            .expect("resumed node answers");
        assert_eq!(status["role"], "duck", "round {round}: {status}");
    }
    assert_goose_rule(&poller.stop(), "SIGSTOP of the goose");
}

// ---------------------------------------------------------------------------
// Handoff.
// ---------------------------------------------------------------------------

/// With the default timers: SIGTERM makes the goose hand over and exit 0
/// within about one election timeout, and another node is goose soon after
/// (design.md §7); a duck exits 0 at once; `step-down --to ID` makes ID the
/// goose, and `step-down` alone hands over to someone. The goose rule holds
/// throughout, handoffs included.
#[test]
fn sigterm_and_step_down_hand_the_goose_over() {
    let options = Options::default();
    let election_timeout = options.election_timeout();
    let mut cluster = Cluster::start(3, options);
    let poller = cluster.start_poller();

    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    wait_until_settled(&cluster, goose);
    // A watcher on a node that stays up throughout (not the goose, which is
    // stopped below), writing one JSON object per event to a file.
    let watched = cluster.ids().into_iter().find(|id| *id != goose).unwrap();
    let watch_log = cluster.root().join("watch.jsonl");
    let mut watcher = Command::new(&cluster.binaries().goosectl)
        .arg("--socket")
        .arg(cluster.socket(watched))
        .args(["--json", "watch"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&watch_log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start goosectl watch");
    let signalled = Instant::now();
    let (status, exit_time) = cluster
        .terminate(goose, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("goose {goose} did not exit within 5 s of SIGTERM"));
    assert_eq!(
        status.code(),
        Some(0),
        "goose exit: {}",
        describe_exit(status)
    );
    let successor = cluster.wait_for_goose(GOOSE_WAIT);
    let handoff_time = signalled.elapsed();
    eprintln!(
        "SIGTERM of goose {goose}: exited 0 after {} ms, node {successor} goose after {} ms",
        exit_time.as_millis(),
        handoff_time.as_millis()
    );
    assert!(
        exit_time <= election_timeout * 3,
        "the goose took {} ms to exit; expected about one election timeout ({} ms)",
        exit_time.as_millis(),
        election_timeout.as_millis()
    );
    assert!(
        handoff_time <= election_timeout * 5,
        "a new goose took {} ms after a graceful handoff",
        handoff_time.as_millis()
    );

    let duck = cluster
        .running_ids()
        .into_iter()
        .find(|id| *id != successor)
        .expect("a duck");
    let (status, duck_exit) = cluster
        .terminate(duck, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("duck {duck} did not exit within 5 s of SIGTERM"));
    assert_eq!(
        status.code(),
        Some(0),
        "duck exit: {}",
        describe_exit(status)
    );
    assert!(
        duck_exit < Duration::from_secs(1),
        "a duck exits at once on SIGTERM, took {} ms",
        duck_exit.as_millis()
    );
    cluster.start_node(duck);
    cluster.start_node(goose);
    wait_until_settled(&cluster, successor);

    for target in cluster.ids() {
        let current = cluster.wait_for_goose(GOOSE_WAIT);
        if current == target {
            continue;
        }
        cluster.ctl_ok(current, &["step-down", "--to", &target.to_string()]);
        let after = cluster.wait_for_goose(GOOSE_WAIT);
        assert_eq!(after, target, "step-down --to {target} from {current}");
    }
    let current = cluster.wait_for_goose(GOOSE_WAIT);
    cluster.ctl_ok(current, &["step-down"]);
    let after = wait_for("another goose after step-down", GOOSE_WAIT, || {
        cluster.goose().filter(|id| *id != current)
    });
    eprintln!("step-down: node {current} handed over to node {after}");

    assert!(
        matches!(watcher.try_wait(), Ok(None)),
        "goosectl watch ended while its daemon ran"
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&watch_log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("watch --json prints JSON lines"))
        .collect();
    assert_eq!(
        events.first().map(|event| event["kind"].clone()),
        Some("initial".into()),
        "a watch starts with the current state: {events:?}"
    );
    let leaders: BTreeSet<u64> = events
        .iter()
        .filter_map(|event| event["status"]["leader_id"].as_u64())
        .collect();
    assert!(
        leaders.len() >= 2,
        "node {watched}'s watch saw the leader change: {events:?}"
    );

    assert_goose_rule(&poller.stop(), "handoffs");
}

// ---------------------------------------------------------------------------
// Membership.
// ---------------------------------------------------------------------------

/// The members of `member list --json` as (id, role), from a node.
fn members(cluster: &Cluster, id: u64) -> BTreeMap<u64, String> {
    let text = cluster.ctl_ok(id, &["--json", "member", "list"]);
    let value: serde_json::Value = serde_json::from_str(&text).expect("member list is JSON");
    let list = value["members"]
        .as_array()
        .unwrap_or_else(|| panic!("member list --json has no members: {value}"));
    list.iter()
        .map(|member| {
            (
                member["id"].as_u64().expect("member id"),
                member["role"].as_str().expect("member role").to_string(),
            )
        })
        .collect()
}

/// Observers (design.md §1): `member add --observer` of nodes started with
/// `--join` (one sent to the goose, one to a duck that forwards it) makes
/// members that follow the goose, answer `is-goose` with duck and show in
/// every status, but never vote: when two of the three voters stop, the
/// two observers do not make a majority, and there is no goose anywhere
/// until a voter comes back.
#[test]
fn observers_follow_the_goose_and_never_make_a_majority() {
    let mut cluster = Cluster::start(3, Options::fast());
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    let addr = cluster.start_joiner(4);
    let added = cluster.ctl_ok(
        goose,
        &["member", "add", "--observer", "4", &addr.to_string()],
    );
    assert!(added.contains("observer"), "{added}");
    let duck = cluster
        .ids()
        .into_iter()
        .find(|id| *id != goose && *id <= 3)
        .unwrap();
    let addr = cluster.start_joiner(5);
    cluster.ctl_ok(
        duck,
        &["member", "add", "--observer", "5", &addr.to_string()],
    );
    let list = members(&cluster, goose);
    assert_eq!(
        list.iter()
            .map(|(id, role)| (*id, role.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, "voter"),
            (2, "voter"),
            (3, "voter"),
            (4, "observer"),
            (5, "observer")
        ],
    );
    for observer in [4, 5] {
        let status = wait_to_follow(&cluster, observer, goose);
        assert_eq!(status["observer"], true, "{status}");
        assert_eq!(status["voter"], false, "{status}");
        assert_eq!(status["role"], "duck", "{status}");
        let answer = cluster.ctl(observer, &["is-goose"]);
        assert_eq!(answer.status.code(), Some(1), "an observer is a duck");
    }
    // Each daemon counts its datagrams: the goose has sent heartbeats and
    // received their acknowledgements.
    let first = cluster.status_local_json(goose).expect("the goose answers");
    std::thread::sleep(Duration::from_millis(200));
    let later = cluster.status_local_json(goose).expect("the goose answers");
    for field in ["datagrams_sent", "datagrams_received"] {
        let (before, after) = (
            first[field].as_u64().unwrap(),
            later[field].as_u64().unwrap(),
        );
        assert!(
            after > before && before > 0,
            "{field}: {before} then {after}"
        );
    }
    // Status from an observer names every member and the goose.
    let text = cluster.ctl_ok(4, &["status"]);
    assert_eq!(
        text.lines()
            .filter(|line| line.starts_with("node "))
            .count(),
        5,
        "{text}"
    );
    assert!(text.contains(&format!("goose: node {goose}")), "{text}");

    // The goose crashes: a voter takes over and the observers follow it.
    cluster.kill(goose);
    let successor = wait_for("a goose among the voters left", GOOSE_WAIT, || {
        cluster.goose().filter(|id| *id != goose)
    });
    assert!(successor <= 3, "an observer became the goose: {successor}");
    for observer in [4, 5] {
        wait_to_follow(&cluster, observer, successor);
    }
    // One voter of three is left with two observers: no majority.
    cluster.kill(successor);
    cluster.assert_no_goose_for(NO_GOOSE_WATCH);
    cluster.start_node(goose);
    let back = cluster.wait_for_goose(GOOSE_WAIT);
    assert!(back <= 3, "an observer became the goose: {back}");
}

/// Voters of the fleet test.
const FLEET_VOTERS: u64 = 5;

/// Observers of the fleet test: 64 members in all (design.md §1, §8).
const FLEET_OBSERVERS: u64 = 59;

/// Resident memory all 64 daemons of the fleet test may take together: a
/// daemon takes a few MB (README: Benchmarks), so this is room to spare on
/// the 24 GB CI machine while still catching a per-member blow-up.
const FLEET_RSS_MAX_KB: u64 = 64 * 32 * 1024;

/// Tries of the fleet's status until it names the goose (see the test).
const STATUS_TRIES: u32 = 5;

/// VmRSS of a process in kB (0 if it is gone).
fn resident_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A fleet (design.md §1, §8, README "Observers"): 5 voters and 59
/// observers, 64 daemons at the default timers, every change through
/// goosectl. `status` from an observer gathers all 64 members' own answers
/// and names the goose; every observer follows the goose and is a duck;
/// `member promote` and `member demote` move members between the roles
/// (a demoted goose hands the goose over to a voter and follows it); the
/// 64-observer limit is a clear refusal. The daemons' memory stays bounded.
#[test]
fn a_fleet_of_five_voters_and_fifty_nine_observers_runs_through_goosectl() {
    let started = Instant::now();
    let mut cluster = Cluster::start(FLEET_VOTERS, Options::default());
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    let last = FLEET_VOTERS + FLEET_OBSERVERS;
    for id in FLEET_VOTERS + 1..=last {
        let addr = cluster.start_joiner(id);
        let id = id.to_string();
        let added = cluster.ctl_ok(
            goose,
            &["member", "add", "--observer", &id, &addr.to_string()],
        );
        assert!(added.contains("observer"), "{added}");
    }
    let added = started.elapsed();

    // Every observer follows the goose locally (a joiner's socket
    // appears once its daemon is up).
    for observer in FLEET_VOTERS + 1..=last {
        wait_to_follow(&cluster, observer, goose);
    }

    // Status across every member, from the last observer. It judges the
    // goose's promise (10 ms) once every answer is in, so on a loaded
    // machine a slow round may name no goose: a few tries are allowed.
    let mut tries = 0;
    let (status, status_time) = loop {
        tries += 1;
        let asked = Instant::now();
        let text = cluster.ctl_ok(last, &["--json", "status"]);
        let status_time = asked.elapsed();
        let status: serde_json::Value = serde_json::from_str(&text).expect("status is JSON");
        if status["goose"].as_u64() == Some(goose) || tries == STATUS_TRIES {
            break (status, status_time);
        }
        eprintln!("status try {tries} named no goose (in {status_time:.1?}); again");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["goose"].as_u64(), Some(goose), "{status}");
    let answers = status["members"].as_array().expect("members");
    assert_eq!(answers.len() as u64, last, "{status}");
    let roles: BTreeMap<u64, (String, bool)> = answers
        .iter()
        .map(|member| {
            (
                member["id"].as_u64().unwrap(),
                (
                    member["role"].as_str().unwrap().to_string(),
                    member["observer"].as_bool().unwrap(),
                ),
            )
        })
        .collect();
    for id in 1..=last {
        let (role, observer) = &roles[&id];
        let expected = if id == goose { "goose" } else { "duck" };
        assert_eq!(role, expected, "node {id} in {status}");
        assert_eq!(*observer, id > FLEET_VOTERS, "node {id} in {status}");
    }

    for observer in FLEET_VOTERS + 1..=last {
        let answer = cluster.ctl(observer, &["is-goose"]);
        assert_eq!(answer.status.code(), Some(1), "node {observer} is a duck");
    }

    let rss_kb: u64 = cluster
        .ids()
        .into_iter()
        .filter_map(|id| cluster.pid(id))
        .map(|pid| resident_kb(pid.as_raw()))
        .sum();
    eprintln!(
        "fleet: {last} daemons, {added:.1?} to add {FLEET_OBSERVERS} observers, \
         status across all in {status_time:.1?}, {} MB resident in all",
        rss_kb / 1024
    );
    assert!(
        rss_kb > 0 && rss_kb < FLEET_RSS_MAX_KB,
        "{rss_kb} kB resident"
    );

    // Promote an observer (sent to an observer, which forwards it), demote
    // a voter duck; the roles are refused where they do not apply.
    let promoted = cluster.ctl_ok(last, &["member", "promote", "6"]);
    assert!(promoted.contains("promoted"), "{promoted}");
    let duck = (1..=FLEET_VOTERS).find(|id| *id != goose).unwrap();
    let demoted = cluster.ctl_ok(goose, &["member", "demote", &duck.to_string()]);
    assert!(demoted.contains("demoted"), "{demoted}");
    let list = members(&cluster, goose);
    assert_eq!(list[&6], "voter", "{list:?}");
    assert_eq!(list[&duck], "observer", "{list:?}");
    for (args, expected) in [
        (["member", "promote", "6"], "node 6 is not an observer"),
        (["member", "demote", "7"], "node 7 is not a voter"),
        (["member", "promote", "99"], "node 99 is not a member"),
    ] {
        let output = cluster.ctl(goose, &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let line = stderr_of(&output);
        assert!(line.contains(expected), "{args:?}: {line}");
    }

    // Demote the goose: it hands over to a voter and follows it.
    cluster.ctl_ok(goose, &["member", "demote", &goose.to_string()]);
    let successor = wait_for("a goose among the voters", GOOSE_WAIT, || {
        cluster.goose().filter(|id| *id != goose)
    });
    let list = members(&cluster, successor);
    assert_eq!(list[&successor], "voter", "{list:?}");
    assert_eq!(list[&goose], "observer", "{list:?}");
    let status = wait_to_follow(&cluster, goose, successor);
    assert_eq!(status["observer"], true, "{status}");

    // 60 observers now (59 − 1 promoted + 2 demoted); members at addresses
    // nobody answers fill the named limit of 64, and the next is refused.
    let ports = free_udp_ports(5);
    for (offset, port) in ports[..4].iter().enumerate() {
        let id = (100 + offset).to_string();
        cluster.ctl_ok(
            successor,
            &[
                "member",
                "add",
                "--observer",
                &id,
                &format!("127.0.0.1:{port}"),
            ],
        );
    }
    let refused = cluster.ctl(
        successor,
        &[
            "member",
            "add",
            "--observer",
            "104",
            &format!("127.0.0.1:{}", ports[4]),
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    let line = stderr_of(&refused);
    assert!(line.contains("at most 64"), "{line}");
    assert_eq!(cluster.goose(), Some(successor));

    // Promoting an observer that is not running waits for it and holds
    // every other change back; `member remove` backs it out, and the
    // waiting goosectl fails with the reason (README: Observers).
    let mut promote = cluster.ctl_command(successor, &["member", "promote", "100"]);
    let waiting = promote
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("goosectl starts");
    wait_for("the promotion to be in flight", GOOSE_WAIT, || {
        (members(&cluster, successor).get(&100).map(String::as_str) == Some("joining"))
            .then_some(())
    });
    let held = cluster.ctl(successor, &["member", "remove", "101"]);
    assert_eq!(held.status.code(), Some(2));
    let line = stderr_of(&held);
    assert!(line.contains("in progress"), "{line}");
    cluster.ctl_ok(successor, &["member", "remove", "100"]);
    assert!(!members(&cluster, successor).contains_key(&100));
    let cancelled = waiting.wait_with_output().expect("goosectl exits");
    assert_eq!(cancelled.status.code(), Some(2));
    let line = stderr_of(&cancelled);
    assert!(line.contains("the joining node was removed"), "{line}");
    assert_eq!(cluster.goose(), Some(successor), "no leader change needed");
}

/// On a live cluster (design.md §3): `member add` of nodes started with
/// `--join` returns once each is a voter (sent to the goose, then to a duck
/// that forwards it); removing a duck and then the goose commits, the
/// removed nodes say so, and the rest keep a goose; after every node is
/// restarted, membership and terms have survived.
#[test]
fn membership_changes_survive_a_full_restart() {
    let mut cluster = Cluster::start(3, Options::fast());
    let goose = cluster.wait_for_goose(GOOSE_WAIT);

    let addr = cluster.start_joiner(4);
    cluster.ctl_ok(goose, &["member", "add", "4", &addr.to_string()]);
    let list = members(&cluster, goose);
    assert_eq!(list.get(&4).map(String::as_str), Some("voter"), "{list:?}");
    let status = wait_for("node 4 to know it votes", GOOSE_WAIT, || {
        cluster
            .status_local_json(4)
            .filter(|status| status["voter"] == true)
    });
    assert_eq!(status["role"], "duck");

    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    let duck = cluster.ids().into_iter().find(|id| *id != goose).unwrap();
    let addr = cluster.start_joiner(5);
    let added = cluster.ctl(duck, &["member", "add", "5", &addr.to_string()]);
    assert!(
        added.status.success(),
        "member add sent to duck {duck} (the goose is {goose}) failed: {}",
        stderr_of(&added)
    );
    let list = members(&cluster, goose);
    assert_eq!(
        list.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5],
        "{list:?}"
    );
    assert!(list.values().all(|role| role == "voter"), "{list:?}");

    // Remove a duck.
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    let removed_duck = cluster.ids().into_iter().find(|id| *id != goose).unwrap();
    cluster.ctl_ok(goose, &["member", "remove", &removed_duck.to_string()]);
    assert!(!members(&cluster, goose).contains_key(&removed_duck));
    // What the removed nodes say is checked at the end, so that one
    // failure there does not hide the rest of the story.
    let mut findings = Vec::new();
    if let Err(last) = says_removed(&cluster, removed_duck) {
        findings.push(format!(
            "removed duck {removed_duck} did not say it was removed within {} s: {last}",
            REMOVED_WAIT.as_secs()
        ));
    }
    cluster.kill(removed_duck);

    // Remove the goose: it hands over once the change commits.
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    cluster.ctl_ok(goose, &["member", "remove", &goose.to_string()]);
    let successor = wait_for("a goose other than the removed one", GOOSE_WAIT, || {
        cluster.goose().filter(|id| *id != goose)
    });
    if let Err(last) = says_removed(&cluster, goose) {
        findings.push(format!(
            "removed goose {goose} did not say it was removed within {} s: {last}",
            REMOVED_WAIT.as_secs()
        ));
    }
    cluster.kill(goose);
    let before = members(&cluster, successor);
    let expected: BTreeSet<u64> = (1..=5)
        .filter(|id| ![removed_duck, goose].contains(id))
        .collect();
    assert_eq!(before.keys().copied().collect::<BTreeSet<_>>(), expected);

    // Restart every remaining node.
    let terms_before: BTreeMap<u64, u64> = expected
        .iter()
        .map(|id| (*id, term_of(&cluster, *id)))
        .collect();
    for id in &expected {
        let (status, _) = cluster
            .terminate(*id, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("node {id} did not exit within 5 s of SIGTERM"));
        assert_eq!(
            status.code(),
            Some(0),
            "node {id}: {}",
            describe_exit(status)
        );
    }
    for id in &expected {
        cluster.start_node(*id);
    }
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    for id in &expected {
        assert_eq!(members(&cluster, *id), before, "node {id} after restart");
        let term = term_of(&cluster, *id);
        assert!(
            term >= terms_before[id],
            "node {id}: term {term} after restart, {} before",
            terms_before[id]
        );
    }
    let status: serde_json::Value =
        serde_json::from_str(&cluster.ctl_ok(goose, &["--json", "status"])).unwrap();
    let ids: BTreeSet<u64> = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|member| member["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, expected, "status after restart: {status}");
    assert!(findings.is_empty(), "{}", findings.join("; "));
}

/// How long a removed node gets to learn that it was removed.
const REMOVED_WAIT: Duration = Duration::from_secs(5);

/// Waits until a removed node's status says `removed` (and duck); returns
/// its last status if it never does.
fn says_removed(cluster: &Cluster, id: u64) -> Result<(), String> {
    let deadline = Instant::now() + REMOVED_WAIT;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if let Some(status) = cluster.status_local_json(id) {
            if status["removed"] == true && status["role"] == "duck" {
                return Ok(());
            }
            last = status.to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(last)
}

// ---------------------------------------------------------------------------
// Hostile input.
// ---------------------------------------------------------------------------

/// A node's drop counters by reason.
fn drops(cluster: &Cluster, id: u64) -> BTreeMap<String, u64> {
    let status = cluster
        .status_local_json(id)
        .unwrap_or_else(|| panic!("node {id} does not answer"));
    status["drops"]
        .as_object()
        .unwrap_or_else(|| panic!("status of node {id} has no drops: {status}"))
        .iter()
        .map(|(reason, count)| (reason.clone(), count.as_u64().unwrap_or(0)))
        .collect()
}

/// Random bytes, truncated, oversize (1300 bytes), replayed, wrong-key,
/// bad-MAC and wrong-receiver datagrams sent at a node's UDP port are
/// dropped and counted under their reason (design.md §5); a flood of random
/// datagrams at every node changes neither the goose nor its term.
#[test]
fn bad_datagrams_are_dropped_and_counted() {
    let cluster = Cluster::start(3, Options::fast());
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    wait_until_settled(&cluster, goose);
    let term = term_of(&cluster, goose);
    let target = cluster.ids().into_iter().find(|id| *id != goose).unwrap();
    let target_addr = cluster.addr(target);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = drops(&cluster, target);

    let key = cluster.key().clone();
    let header = |receiver: u64, counter: u64| Header {
        sender: NodeId(99),
        receiver: NodeId(receiver),
        boot_id: BootId(0x5eed),
        counter,
    };
    let other_key = ClusterKey::generate().unwrap();
    let mut bad_mac = seal(&key, &header(target, 1), b"tampered").unwrap();
    *bad_mac.last_mut().unwrap() ^= 1;
    let replayed = seal(&key, &header(target, 2), b"not postcard at all").unwrap();
    let random: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
        .take(300)
        .collect();
    let mut random_unknown_version = random.clone();
    random_unknown_version[0] = 0xee;
    let expected: [(&str, Vec<u8>); 7] = [
        ("unknown_version", random_unknown_version),
        ("truncated", random[..20].to_vec()),
        ("oversize", vec![1u8; 1300]),
        (
            "wrong_cluster",
            seal(&other_key, &header(target, 1), b"x").unwrap(),
        ),
        ("bad_mac", bad_mac),
        (
            "wrong_receiver",
            seal(&key, &header(target + 10, 3), b"x").unwrap(),
        ),
        ("replayed", replayed.clone()),
    ];
    sender.send_to(&replayed, target_addr).unwrap();
    for (_, datagram) in &expected {
        sender.send_to(datagram, target_addr).unwrap();
    }
    let after = wait_for("the drops to be counted", GOOSE_WAIT, || {
        let after = drops(&cluster, target);
        expected
            .iter()
            .all(|(reason, _)| {
                after.get(*reason).copied().unwrap_or(0) > before.get(*reason).copied().unwrap_or(0)
            })
            .then_some(after)
    });
    eprintln!("drops of node {target}: before {before:?}, after {after:?}");

    // A bounded flood of random datagrams at every node.
    for _ in 0..500 {
        for id in cluster.ids() {
            let length = fastrand::usize(0..1400);
            let datagram: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
                .take(length)
                .collect();
            let _ = sender.send_to(&datagram, cluster.addr(id));
        }
    }
    std::thread::sleep(cluster.options().election_timeout() * 4);
    assert_eq!(cluster.wait_for_goose(GOOSE_WAIT), goose, "the goose stays");
    for id in cluster.ids() {
        assert_eq!(term_of(&cluster, id), term, "node {id}'s term stays");
    }
}

/// A node started with the cluster's peer list but another key never
/// becomes goose, and the cluster keeps its goose and term; its datagrams
/// are counted as another cluster's.
#[test]
fn a_node_with_another_key_cannot_join_or_disrupt() {
    let mut cluster = Cluster::start(3, Options::fast());
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    wait_until_settled(&cluster, goose);
    let terms: BTreeMap<u64, u64> = cluster
        .ids()
        .into_iter()
        .map(|id| (id, term_of(&cluster, id)))
        .collect();
    cluster.start_stranger(4);
    let watch_until = Instant::now() + cluster.options().election_timeout() * 20;
    let mut answers = 0;
    while Instant::now() < watch_until {
        if let Some(status) = cluster.status_direct(4) {
            answers += 1;
            assert_ne!(
                status.role,
                goose_common::control::NodeRole::Goose,
                "{status:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(answers > 0, "the stranger never answered a status question");
    assert!(cluster.is_running(4), "the stranger runs (its own cluster)");
    assert_eq!(cluster.wait_for_goose(GOOSE_WAIT), goose, "the goose stays");
    for (id, term) in terms {
        assert_eq!(term_of(&cluster, id), term, "node {id}'s term stays");
        let counted = drops(&cluster, id)
            .get("wrong_cluster")
            .copied()
            .unwrap_or(0);
        assert!(counted > 0, "node {id} counted no wrong_cluster datagram");
    }
}

/// Garbage, a huge length prefix, an unknown protocol version, a frame cut
/// short and a silent client on the control socket leave the daemon up and
/// answering others (design.md §6).
#[test]
fn malformed_control_frames_leave_the_daemon_up() {
    let cluster = Cluster::start(3, Options::fast());
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    let socket = cluster.socket(goose);
    let mut version_99 = Vec::new();
    version_99.extend_from_slice(&6u32.to_be_bytes());
    version_99.extend_from_slice(&99u16.to_be_bytes());
    version_99.extend_from_slice(&[0, 0, 0, 0]);
    let frames: Vec<(&str, Vec<u8>)> = vec![
        (
            "random bytes",
            std::iter::repeat_with(|| fastrand::u8(..))
                .take(4096)
                .collect(),
        ),
        ("huge length", vec![0xff, 0xff, 0xff, 0xff, 0, 1, 2, 3]),
        ("zero length", vec![0, 0, 0, 0]),
        ("unknown version", version_99),
        ("cut short", vec![0, 0, 0, 100, 0, 1, 7, 7]),
        ("bad body", vec![0, 0, 0, 4, 0, 1, 0xff, 0xff]),
    ];
    // A client that connects and says nothing must not block others.
    let _silent = UnixStream::connect(&socket).expect("connect");
    for (what, frame) in frames {
        let mut stream = UnixStream::connect(&socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        stream.write_all(&frame).unwrap_or_default();
        let _ = stream.shutdown(std::net::Shutdown::Write);
        // Whatever it answers (an error frame, or closing), it answers
        // within the deadline and stays up.
        let mut reply = Vec::new();
        let started = Instant::now();
        let _ = stream.read_to_end(&mut reply);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: the daemon held the connection open"
        );
        assert!(cluster.is_running(goose), "{what}: the daemon died");
        let answer = cluster.ctl(goose, &["is-goose"]);
        assert!(
            matches!(answer.status.code(), Some(0 | 1)),
            "{what}: is-goose after it: {} {}",
            describe_exit(answer.status),
            stderr_of(&answer)
        );
    }
    assert_eq!(cluster.wait_for_goose(GOOSE_WAIT), goose);
}

/// Bad command lines and unreachable daemons: goosectl exits 2 with one
/// line on stderr, never 1 (design.md §6).
#[test]
fn goosectl_errors_are_one_line_and_exit_2() {
    let cluster = Cluster::start(3, Options::fast());
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    let goosectl = &cluster.binaries().goosectl;
    let socket = cluster.socket(goose).display().to_string();
    let missing = cluster.root().join("missing.sock").display().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--socket", &socket, "frobnicate"],
        vec!["--socket", &socket, "status", "--lokal"],
        vec!["--socket", &socket, "partition", "add", "--in"],
        vec![
            "--socket",
            &socket,
            "partition",
            "add",
            "--in",
            "--peer",
            "2",
            "--drop-percent",
            "150",
        ],
        vec![
            "--socket",
            &socket,
            "partition",
            "add",
            "--out",
            "--addr",
            "10.0.0.0/99",
        ],
        vec!["--socket", &socket, "partition", "split", "1,2", "2,3"],
        vec!["--socket", &socket, "partition", "split", "1,x", "3"],
        vec!["--socket", &socket, "partition", "delete", "999"],
        vec!["--socket", &socket, "member", "add", "0", "127.0.0.1:1"],
        vec!["--socket", &socket, "member", "add", "4", "not-an-address"],
        vec!["--socket", &socket, "member", "remove", "99"],
        vec!["--socket", &socket, "step-down", "--to", "99"],
        vec!["--socket", &missing, "status"],
        vec!["--socket", &missing, "is-goose"],
    ];
    for arguments in cases {
        let output = run_bounded(
            Command::new(goosectl).args(&arguments).stdin(Stdio::null()),
            Duration::from_secs(30),
        )
        .unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(
            output.status.code(),
            Some(2),
            "goosectl {arguments:?}: {} {stderr}",
            describe_exit(output.status)
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "goosectl {arguments:?}: one line on stderr, got: {stderr}"
        );
    }
    assert_eq!(cluster.wait_for_goose(GOOSE_WAIT), goose, "nothing changed");
}

/// `is-goose` exits 0 on the goose, 1 on a duck, and 2 ("cannot tell")
/// on a daemon that does not answer, a stopped one included, within its
/// deadline (design.md §6).
#[test]
fn is_goose_exit_codes() {
    let mut cluster = Cluster::start(3, Options::fast());
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    wait_until_settled(&cluster, goose);
    let duck = cluster.ids().into_iter().find(|id| *id != goose).unwrap();
    assert_eq!(cluster.ctl(goose, &["is-goose"]).status.code(), Some(0));
    assert_eq!(cluster.ctl(duck, &["is-goose"]).status.code(), Some(1));
    cluster.pause(duck);
    let started = Instant::now();
    let stopped = cluster.ctl(duck, &["is-goose"]);
    let waited = started.elapsed();
    cluster.resume(duck);
    assert_eq!(
        stopped.status.code(),
        Some(2),
        "is-goose on a stopped daemon: {}",
        stderr_of(&stopped)
    );
    assert_eq!(stderr_of(&stopped).lines().count(), 1);
    assert!(
        waited < Duration::from_secs(10),
        "is-goose took {} ms on a stopped daemon",
        waited.as_millis()
    );
    cluster.kill(duck);
    let gone = cluster.ctl(duck, &["is-goose"]);
    assert_eq!(gone.status.code(), Some(2), "{}", stderr_of(&gone));
}

/// `goosed run` refuses a bad start-up (no key, a key readable by others, a
/// malformed key, id 0, a bad peer, a port in use, a data directory in use,
/// a log file that cannot be created) with a non-zero exit and one error
/// line on stderr, the last one (design.md §6).
#[test]
fn goosed_refuses_a_bad_start_up_with_one_line() {
    let cluster = Cluster::start(1, Options::fast());
    cluster.wait_for_goose(GOOSE_WAIT);
    let root = cluster.root().join("bad");
    std::fs::create_dir_all(&root).unwrap();
    let open_key = root.join("open.key");
    std::fs::copy(cluster.key_file(), &open_key).unwrap();
    std::fs::set_permissions(
        &open_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let bad_key = root.join("bad.key");
    std::fs::write(&bad_key, "not a key\n").unwrap();
    std::fs::set_permissions(
        &bad_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config = root.join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let port = free_udp_ports(1)[0];
    let listen = format!("127.0.0.1:{port}");
    let busy = cluster.addr(1).to_string();
    let key = cluster.key_file().display().to_string();
    let (config, open_key, bad_key) = (
        config.display().to_string(),
        open_key.display().to_string(),
        bad_key.display().to_string(),
    );
    let fresh_dir = |name: &str| root.join(name).display().to_string();
    let busy_data = cluster.data_dir(1).display().to_string();
    let start = |listen: &str, key: Option<&str>, data: &str, extra: &[&str]| -> Vec<String> {
        let socket = format!("{data}.sock");
        let mut arguments = vec![
            "run", "--config", &config, "--id", "7", "--listen", listen, "--peer",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        arguments.push(format!("7={listen}"));
        arguments.extend(["--data-dir".into(), data.into(), "--socket".into(), socket]);
        if let Some(key) = key {
            arguments.extend(["--key-file".into(), key.into()]);
        }
        arguments.extend(extra.iter().map(|s| s.to_string()));
        arguments
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("no key", start(&listen, None, &fresh_dir("a"), &[])),
        (
            "key mode 0644",
            start(&listen, Some(&open_key), &fresh_dir("b"), &[]),
        ),
        (
            "malformed key",
            start(&listen, Some(&bad_key), &fresh_dir("c"), &[]),
        ),
        ("id 0", {
            let mut a = start(&listen, Some(&key), &fresh_dir("d"), &[]);
            let position = a.iter().position(|s| s == "7").unwrap();
            a[position] = "0".into();
            a
        }),
        (
            "bad peer",
            start(
                &listen,
                Some(&key),
                &fresh_dir("e"),
                &["--peer", "2=nowhere"],
            ),
        ),
        (
            "port in use",
            start(&busy, Some(&key), &fresh_dir("f"), &[]),
        ),
        (
            "data directory in use",
            start(&listen, Some(&key), &busy_data, &[]),
        ),
        (
            // /proc exists, and no one (root included) may create a file there.
            "log file cannot be created",
            start(
                &listen,
                Some(&key),
                &fresh_dir("g"),
                &["--log-dir", "/proc"],
            ),
        ),
    ];
    for (what, arguments) in cases {
        let output = run_bounded(
            Command::new(&cluster.binaries().goosed)
                .args(&arguments)
                .stdin(Stdio::null())
                .env_remove("RUST_LOG"),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|error| panic!("{what}: goosed did not refuse to start: {error}"));
        let stderr = stderr_of(&output);
        assert!(
            !output.status.success(),
            "{what}: goosed started: {}",
            describe_exit(output.status)
        );
        // Logs go to stderr by default (design.md §7), so log lines written
        // before the failure may precede it; the error itself is one line,
        // the last.
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("goosed: "))
            .collect();
        assert_eq!(errors.len(), 1, "{what}: one error line, got: {stderr}");
        assert_eq!(
            stderr.lines().last(),
            Some(errors[0]),
            "{what}: the error is the last line: {stderr}"
        );
        eprintln!("{what}: {}", errors[0]);
    }
    assert!(cluster.is_running(1), "the running node is untouched");
}

// ---------------------------------------------------------------------------
// Hooks.
// ---------------------------------------------------------------------------

/// The line the harness writes into a hook log when it (re)starts a node:
/// a restarted daemon may or may not report its first role, and a killed
/// goose never ran its on_duck, so alternation is checked between restarts.
const RESTART_MARK: &str = "restart";

/// Appends the restart mark to a node's hook log and starts it.
fn start_marked(cluster: &mut Cluster, id: u64) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cluster.hook_log(id))
        .unwrap();
    writeln!(file, "{RESTART_MARK}").unwrap();
    cluster.start_node(id);
}

/// design.md §7: on a voluntary handoff `on_duck` runs to completion
/// before another node can be the goose, so what the hooks move (a virtual
/// IP) is never held by two hosts. Here on_duck takes 400 ms, far past the
/// lease of these timers; the next goose's on_goose begins after it ended.
#[test]
fn a_step_down_runs_on_duck_to_completion_before_the_next_goose() {
    let options = Options {
        record_hooks: true,
        on_duck_sleep: Some(Duration::from_millis(400)),
        ..Options::fast()
    };
    let cluster = Cluster::start(3, options);
    let first = cluster.wait_for_goose(GOOSE_WAIT);
    // (role, term, reason, began, ended) of each line of a node's hook log.
    let lines = |id: u64| -> Vec<(String, u64, String, u64, u64)> {
        let text = std::fs::read_to_string(cluster.hook_log(id)).unwrap_or_default();
        text.lines()
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                assert_eq!(fields.len(), 5, "node {id}: malformed hook line {line:?}");
                let number = |text: &str| text.parse::<u64>().expect("a number");
                let (term, began, ended) =
                    (number(fields[1]), number(fields[3]), number(fields[4]));
                (
                    fields[0].to_string(),
                    term,
                    fields[2].to_string(),
                    began,
                    ended,
                )
            })
            .collect()
    };
    wait_for("the first goose's on_goose", GOOSE_WAIT, || {
        lines(first)
            .iter()
            .any(|line| line.0 == "goose")
            .then_some(())
    });
    let started = Instant::now();
    cluster.ctl_ok(first, &["step-down"]);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "the step-down waited for on_duck: {waited:?}"
    );
    let second = wait_for("a new goose", GOOSE_WAIT, || {
        cluster.goose().filter(|&id| id != first)
    });
    let on_goose = wait_for("the new goose's on_goose", GOOSE_WAIT, || {
        lines(second).into_iter().find(|line| line.0 == "goose")
    });
    let on_duck = lines(first)
        .into_iter()
        .find(|line| line.0 == "duck" && line.2 == "step_down")
        .expect("the old goose's on_duck for the step-down");
    eprintln!(
        "on_duck took {:.1} ms; the next on_goose began {:.1} ms after it ended",
        (on_duck.4 - on_duck.3) as f64 / 1e6,
        (on_goose.3 as f64 - on_duck.4 as f64) / 1e6
    );
    assert!(on_duck.4 - on_duck.3 >= 400_000_000, "{on_duck:?}");
    assert!(
        on_goose.3 > on_duck.4,
        "node {second}'s on_goose began before node {first}'s on_duck ended: {on_goose:?} {on_duck:?}"
    );
    assert!(on_goose.1 > on_duck.1);
}

/// Hooks (design.md §7) through kills, a partition that isolates the goose,
/// a SIGTERM handoff and a step-down: on every node the on_goose and
/// on_duck lines alternate strictly (between restarts) with non-decreasing
/// terms, no term has goose lines from two nodes, and `GOOSE_REASON` says
/// why each goose stopped.
#[test]
fn hooks_alternate_and_name_one_goose_per_term() {
    let options = Options {
        record_hooks: true,
        ..Options::fast()
    };
    let mut cluster = Cluster::new(3, options);
    for id in cluster.ids() {
        start_marked(&mut cluster, id);
    }
    let first = cluster.wait_for_goose(GOOSE_WAIT);
    cluster.kill(first);
    let second = cluster.wait_for_goose(GOOSE_WAIT);
    start_marked(&mut cluster, first);
    wait_until_settled(&cluster, second);

    let others: Vec<String> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != second)
        .map(|id| id.to_string())
        .collect();
    cluster.ctl_ok(
        second,
        &["partition", "split", &second.to_string(), &others.join(",")],
    );
    let third = wait_for("a goose away from the isolated one", GOOSE_WAIT, || {
        cluster.goose().filter(|id| *id != second)
    });
    cluster.ctl_ok(third, &["partition", "heal"]);
    wait_until_settled(&cluster, third);

    cluster
        .terminate(third, Duration::from_secs(5))
        .expect("the goose exits on SIGTERM");
    let fourth = cluster.wait_for_goose(GOOSE_WAIT);
    start_marked(&mut cluster, third);
    wait_until_settled(&cluster, fourth);
    let target = cluster.ids().into_iter().find(|id| *id != fourth).unwrap();
    cluster.ctl_ok(fourth, &["step-down", "--to", &target.to_string()]);
    wait_for("the step-down target to be goose", GOOSE_WAIT, || {
        (cluster.goose() == Some(target)).then_some(())
    });
    // Hooks run after the role changes; give the last ones time to finish.
    std::thread::sleep(Duration::from_secs(1));

    let mut goose_of_term: BTreeMap<u64, u64> = BTreeMap::new();
    let mut reasons: BTreeSet<(u64, String, String)> = BTreeSet::new();
    let mut goose_lines = 0;
    for id in cluster.ids() {
        let text = std::fs::read_to_string(cluster.hook_log(id)).unwrap_or_default();
        let mut previous: Option<(String, u64)> = None;
        for line in text.lines() {
            if line == RESTART_MARK {
                previous = None;
                continue;
            }
            let mut fields = line.split(' ');
            let (Some(role), Some(term), Some(reason), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                panic!("node {id}: malformed hook line {line:?}:\n{text}");
            };
            reasons.insert((id, role.to_string(), reason.to_string()));
            if role == "goose" {
                assert_eq!(reason, "elected", "node {id}: {line:?}");
            }
            let term: u64 = term
                .parse()
                .unwrap_or_else(|_| panic!("node {id}: GOOSE_TERM {term:?} is not a number"));
            assert!(
                role == "goose" || role == "duck",
                "node {id}: GOOSE_ROLE {role:?}"
            );
            if let Some((previous_role, previous_term)) = &previous {
                assert_ne!(
                    previous_role, role,
                    "node {id}: two {role} lines in a row:\n{text}"
                );
                assert!(
                    *previous_term <= term,
                    "node {id}: term went back from {previous_term} to {term}:\n{text}"
                );
            }
            if role == "goose" {
                goose_lines += 1;
                let owner = goose_of_term.entry(term).or_insert(id);
                assert_eq!(*owner, id, "term {term} has goose hooks on two nodes");
            }
            previous = Some((role.to_string(), term));
        }
    }
    assert!(
        goose_of_term.len() >= 4,
        "expected goose hooks in at least 4 terms (one per change), saw {goose_of_term:?}"
    );
    // GOOSE_REASON says why each goose stopped: the isolated one lost its
    // lease, the SIGTERM'd one shut down, the last one stepped down.
    let duck = |id: u64, reason: &str| (id, "duck".to_string(), reason.to_string());
    for (id, reason) in [
        (second, "lease_lost"),
        (third, "shutdown"),
        (fourth, "step_down"),
    ] {
        assert!(
            reasons.contains(&duck(id, reason)),
            "node {id} has no on_duck with GOOSE_REASON={reason}: {reasons:?}"
        );
    }
    eprintln!("hooks: {goose_lines} goose lines, goose by term {goose_of_term:?}");
}
