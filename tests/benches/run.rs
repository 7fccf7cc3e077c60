//! Benchmark of `goosectl run` (design.md §7): how long a singleton job is
//! down when the goose's host crashes and on a graceful handoff, measured
//! with real processes on loopback.
//!
//! Five `goosed run` daemons (`GOOSE_BENCH_NODES=N` for another number)
//! each have a `goosectl run --repeat` runner of
//! `goose-job`, which records its start on `CLOCK_BOOTTIME`. A *crash* is
//! SIGKILL of the goose's daemon and of its runner together (the job dies
//! with its runner); a *handoff* is `goosectl step-down` on the goose. Each
//! round measures from the fault (a `CLOCK_BOOTTIME` read just before it)
//! to the start of the job on another host: p50, p90 and max over `ROUNDS`
//! rounds, for the daemon's default timers and for the fast profile, with
//! the crash-failover floor `election_timeout_min - heartbeat/2` beside
//! them. For crashes, the first goose answer of the new goose (every node
//! polled every few milliseconds) splits the time into the failover itself
//! and the start of the job. At the end, no two runs of the job overlapped.
//!
//! Run with `cargo bench -p goose-tests --bench run`; `GOOSE_BENCH_ROUNDS=N`
//! changes the rounds (default 20).

use goose_tests::cluster::{boottime_ns, wait_for, Cluster, Options, RolePoller};
use goose_tests::jobs::{assert_no_overlap, current_run, read_runs, wait_for_new_run, Runners};
use std::path::PathBuf;
use std::time::Duration;

/// Nodes in the benchmark cluster unless `GOOSE_BENCH_NODES` says otherwise:
/// five, as in the seed story. Fewer nodes fail over a little slower: the
/// first of fewer followers' random election spreads comes later.
const NODES_DEFAULT: u64 = 5;

/// Rounds of each kind unless `GOOSE_BENCH_ROUNDS` says otherwise.
const ROUNDS_DEFAULT: usize = 20;

/// How long a restarted node gets to catch up before the next round.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Crash,
    Handoff,
}

fn main() {
    if !goose_tests::bench::wanted("run") {
        return;
    }
    let rounds = goose_tests::bench::rounds(ROUNDS_DEFAULT);
    let nodes = std::env::var("GOOSE_BENCH_NODES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(NODES_DEFAULT)
        .clamp(2, 9);
    let defaults = goosed::raft::Config::new(goose_common::NodeId(1));
    let fast = goosed::raft::Config::fast(goose_common::NodeId(1));
    for (name, options, config) in [
        ("default timers", Options::default(), defaults),
        ("fast profile", Options::fast_profile(), fast),
    ] {
        let floor = config.election_timeout_min - config.heartbeat_interval / 2;
        println!(
            "run benchmark, {name}: {nodes} nodes on loopback, heartbeat {} ms, election \
             timeout {} ms, {rounds} rounds; crash-failover floor {:.1} ms",
            config.heartbeat_interval.as_millis(),
            config.election_timeout_min.as_millis(),
            floor.as_secs_f64() * 1000.0
        );
        bench(options, nodes, rounds);
    }
}

fn bench(options: Options, nodes: u64, rounds: usize) {
    let mut cluster = Cluster::start(nodes, options);
    let job = PathBuf::from(env!("CARGO_BIN_EXE_goose-job"));
    let mut runners = Runners::new(cluster.root().join("jobs"), job);
    for id in cluster.ids() {
        runners.start(&cluster, id, &[]);
    }
    wait_for_new_run(runners.directory(), 0, "a first job");
    for fault in [Fault::Crash, Fault::Handoff] {
        let (downtimes, failovers): (Vec<Duration>, Vec<Option<Duration>>) = (0..rounds)
            .map(|_| round(&mut cluster, &mut runners, fault))
            .unzip();
        report(fault, downtimes);
        let failovers: Vec<Duration> = failovers.into_iter().flatten().collect();
        if !failovers.is_empty() {
            let (p50, p90, max) = quantiles(failovers);
            println!(
                "    of which the failover (to the new goose's first answer): p50 {p50:.1} ms  \
                 p90 {p90:.1} ms  max {max:.1} ms"
            );
        }
    }
    assert_no_overlap(&read_runs(runners.directory()));
    println!("  no two runs of the job overlapped");
}

/// One fault on the host that runs the job; returns the time from the
/// fault to the job's start elsewhere and, for a crash, to the new goose's
/// first goose answer. (A handoff is not polled: the poller's promises
/// would make it wait.)
fn round(
    cluster: &mut Cluster,
    runners: &mut Runners,
    fault: Fault,
) -> (Duration, Option<Duration>) {
    let directory = runners.directory().to_path_buf();
    let current = wait_for("the job to run", SETTLE_TIMEOUT, || current_run(&directory));
    let node = current.node;
    let poller = (fault == Fault::Crash).then(|| RolePoller::start(cluster.sockets()));
    let at = boottime_ns();
    match fault {
        Fault::Crash => {
            runners.kill(node);
            cluster.kill(node);
        }
        Fault::Handoff => {
            cluster.ctl_ok(node, &["step-down"]);
        }
    }
    let next = wait_for_new_run(&directory, current.start, "the job elsewhere");
    assert_ne!(next.node, node, "the job moved");
    if fault == Fault::Crash {
        cluster.start_node(node);
        // The runner's first connection must find the daemon listening, or
        // it backs off (200 ms and more) and may miss the next round.
        wait_for("the restarted daemon", SETTLE_TIMEOUT, || {
            cluster.status_direct(node).map(|_| ())
        });
        runners.start(cluster, node, &[]);
    }
    // Let every node follow the new goose before the next fault.
    wait_for("every node to follow the goose", SETTLE_TIMEOUT, || {
        let leader = next.node;
        cluster
            .ids()
            .into_iter()
            .all(|id| {
                cluster
                    .status_direct(id)
                    .is_some_and(|status| status.leader_id.map(|l| l.0) == Some(leader))
            })
            .then_some(())
    });
    // Stopped only now: the job may start before the poller's next round.
    let failover = poller.map(|poller| {
        let first = poller
            .stop()
            .into_iter()
            .filter(|sample| sample.goose && sample.node != node && sample.clock_ns > at)
            .map(|sample| sample.clock_ns)
            .min()
            .expect("the new goose answered goose");
        Duration::from_nanos(first - at)
    });
    (
        Duration::from_nanos(next.start.saturating_sub(at)),
        failover,
    )
}

fn report(fault: Fault, downtimes: Vec<Duration>) {
    let what = match fault {
        Fault::Crash => "host crash (SIGKILL of goosed and its runner) to the job elsewhere",
        Fault::Handoff => "step-down to the job elsewhere",
    };
    let rounds = downtimes.len();
    let (p50, p90, max) = quantiles(downtimes);
    println!("  {what} ({rounds} rounds): p50 {p50:.1} ms  p90 {p90:.1} ms  max {max:.1} ms");
}

/// p50, p90 and max in milliseconds.
fn quantiles(mut values: Vec<Duration>) -> (f64, f64, f64) {
    values.sort();
    let at = |quantile: f64| {
        let index = ((values.len() as f64 - 1.0) * quantile).round() as usize;
        values[index].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.9), at(1.0))
}
