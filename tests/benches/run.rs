//! Benchmark of `goosectl run` (design.md §7): how long a singleton job is
//! down when the goose's host crashes and on a graceful handoff, measured
//! with real processes on loopback.
//!
//! Three `goosed run` daemons each have a `goosectl run --repeat` runner of
//! `goose-job`, which records its start on `CLOCK_BOOTTIME`. A *crash* is
//! SIGKILL of the goose's daemon and of its runner together (the job dies
//! with its runner); a *handoff* is `goosectl step-down` on the goose. Each
//! round measures from the fault (a `CLOCK_BOOTTIME` read just before it)
//! to the start of the job on another host: p50, p90 and max over `ROUNDS`
//! rounds, for the daemon's default timers and for the fast profile, with
//! the crash-failover floor `election_timeout_min - heartbeat/2` beside
//! them. At the end, no two runs of the job overlapped.
//!
//! Run with `cargo bench -p goose-tests --bench run`; `GOOSE_BENCH_ROUNDS=N`
//! changes the rounds (default 20).

use goose_tests::cluster::{boottime_ns, wait_for, Cluster, Options};
use goose_tests::jobs::{assert_no_overlap, current_run, read_runs, wait_for_new_run, Runners};
use std::path::PathBuf;
use std::time::Duration;

/// Nodes in the benchmark cluster.
const NODES: u64 = 3;

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
    let defaults = goosed::raft::Config::new(goose_common::NodeId(1));
    let fast = goosed::raft::Config::fast(goose_common::NodeId(1));
    for (name, options, config) in [
        ("default timers", Options::default(), defaults),
        ("fast profile", Options::fast_profile(), fast),
    ] {
        let floor = config.election_timeout_min - config.heartbeat_interval / 2;
        println!(
            "run benchmark, {name}: {NODES} nodes on loopback, heartbeat {} ms, election \
             timeout {} ms, {rounds} rounds; crash-failover floor {:.1} ms",
            config.heartbeat_interval.as_millis(),
            config.election_timeout_min.as_millis(),
            floor.as_secs_f64() * 1000.0
        );
        bench(options, rounds);
    }
}

fn bench(options: Options, rounds: usize) {
    let mut cluster = Cluster::start(NODES, options);
    let job = PathBuf::from(env!("CARGO_BIN_EXE_goose-job"));
    let mut runners = Runners::new(cluster.root().join("jobs"), job);
    for id in cluster.ids() {
        runners.start(&cluster, id, &[]);
    }
    wait_for_new_run(runners.directory(), 0, "a first job");
    for fault in [Fault::Crash, Fault::Handoff] {
        let downtimes: Vec<Duration> = (0..rounds)
            .map(|_| round(&mut cluster, &mut runners, fault))
            .collect();
        report(fault, downtimes);
    }
    assert_no_overlap(&read_runs(runners.directory()));
    println!("  no two runs of the job overlapped");
}

/// One fault on the host that runs the job; returns the time from the
/// fault to the job's start elsewhere.
fn round(cluster: &mut Cluster, runners: &mut Runners, fault: Fault) -> Duration {
    let directory = runners.directory().to_path_buf();
    let current = wait_for("the job to run", SETTLE_TIMEOUT, || current_run(&directory));
    let node = current.node;
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
    Duration::from_nanos(next.start.saturating_sub(at))
}

fn report(fault: Fault, mut downtimes: Vec<Duration>) {
    downtimes.sort();
    let at = |quantile: f64| {
        let index = ((downtimes.len() as f64 - 1.0) * quantile).round() as usize;
        downtimes[index].as_secs_f64() * 1000.0
    };
    let what = match fault {
        Fault::Crash => "host crash (SIGKILL of goosed and its runner) to the job elsewhere",
        Fault::Handoff => "step-down to the job elsewhere",
    };
    println!(
        "  {what} ({} rounds): p50 {:.1} ms  p90 {:.1} ms  max {:.1} ms",
        downtimes.len(),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}
