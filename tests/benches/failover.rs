//! Goal: measure failover with the simulator (design.md §3, §9 tier 5):
//! the goose-less window after the goose crashes, after it is cut off from
//! everyone, and during a graceful handoff, as distributions over many
//! seeds, for the default (50/300 ms) and fast (10/50 ms) timers, each with
//! our small election jitter (a tenth of the timeout) taken in turns (the
//! default) or drawn at random, and with plain Raft's spread (jitter = the
//! timeout, i.e. random in [T, 2T)). A benchmark, not a
//! test: it prints figures and asserts nothing about them.
//!
//! Run: `cargo bench -p goose-tests --bench failover` (`GOOSE_BENCH_SEEDS=N`
//! changes the seeds per row, default 500; `GOOSE_BENCH_SLOWEST=N` lists
//! each row's N slowest seeds; `GOOSE_BENCH_TRACE=SEED` prints that seed's
//! simulator trace of every row to stderr, to see why it was slow).

use goose_common::NodeId;
use goose_tests::sim::{PartitionShape, Sim, SimConfig, Timing};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seeds per row unless `GOOSE_BENCH_SEEDS` says otherwise.
const SEEDS_DEFAULT: u64 = 500;

/// Cluster size of every row.
const VOTERS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Crash,
    Isolate,
    Handoff,
}

/// The goose-less window of one run, or why there was none.
fn measure(fault: Fault, (timing, slots): (Timing, bool), seed: u64) -> Result<Duration, String> {
    let mut node_config = timing.config(NodeId(1));
    node_config.campaign_slots = slots;
    let heartbeat = node_config.heartbeat_interval;
    let timeout = node_config.election_timeout_min;
    let mut config = SimConfig::new(seed, VOTERS, node_config);
    // Goose checks every ~0.2% of the timeout bound the measurement error.
    config.probe_interval = Some(timeout / 500);
    config.replay_command = format!("failover bench, {fault:?} {timing:?} seed {seed}");
    config.trace_to_stderr =
        std::env::var("GOOSE_BENCH_TRACE").is_ok_and(|s| s == seed.to_string());
    let mut sim = Sim::new(config);
    let limit = timeout * 20;
    sim.run_until(limit, |sim| sim.goose().is_some())
        .map_err(|f| f.to_string())?
        .ok_or("no first goose")?;
    // Let the cluster settle, then strike at a random phase of the heartbeat.
    let mut rng = fastrand::Rng::with_seed(seed);
    let phase = Duration::from_nanos(rng.u64(0..2 * heartbeat.as_nanos() as u64));
    sim.run_for(timeout * 2 + phase)
        .map_err(|f| f.to_string())?;
    let old = sim.goose().ok_or("no goose before the fault")?;
    let fault_ns = sim.now_ns();
    let result = match fault {
        Fault::Crash => sim.crash(old),
        Fault::Isolate => sim.partition(PartitionShape::Isolate(old.0)),
        Fault::Handoff => sim.handoff(old, None).map(|_| ()),
    };
    result.map_err(|f| f.to_string())?;
    let took = sim
        .run_until(limit, |sim| sim.goose().is_some_and(|goose| goose != old))
        .map_err(|f| f.to_string())?;
    took.ok_or("no new goose")?;
    let changes = sim.goose_changes();
    let first_new = changes.last().expect("the new goose was seen");
    // The old goose's last goose answer: the check before it was first seen a duck.
    let old_last_ns = changes
        .iter()
        .rev()
        .find(|c| c.goose.is_none() && c.time_ns >= fault_ns)
        .map_or(fault_ns, |c| c.previous_seen_ns.max(fault_ns));
    Ok(Duration::from_nanos(first_new.time_ns - old_last_ns))
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let position = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[position]
}

fn millis(duration: Duration) -> String {
    format!("{:7.1}", duration.as_secs_f64() * 1000.0)
}

fn row(fault: Fault, timing: (Timing, bool), seeds: u64) -> Vec<(Duration, u64)> {
    let next = AtomicU64::new(0);
    let windows = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds {
                    break;
                }
                match measure(fault, timing, seed + 1) {
                    Ok(window) => windows
                        .lock()
                        .expect("no panic holding the lock")
                        .push((window, seed + 1)),
                    Err(why) => eprintln!("{fault:?} {timing:?} seed {}: {why}", seed + 1),
                }
            });
        }
    });
    let mut windows = windows.into_inner().expect("no panic holding the lock");
    windows.sort();
    windows
}

fn main() {
    let seeds = std::env::var("GOOSE_BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS_DEFAULT);
    let slowest: usize = std::env::var("GOOSE_BENCH_SLOWEST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let started = Instant::now();
    println!("failover: {VOTERS} voters, links 0.1 ms + exponential tail of mean 0.1 ms (max 0.9 ms), clocks drifting within ±1000 ppm");
    println!(
        "goose-less window in ms over {seeds} seeds per row (goose checks every timeout/500)\n"
    );
    println!(
        "{:<38} {:<8} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "timers", "fault", "p50", "p90", "p99", "max", "runs"
    );
    // Each timing with followers taking turns in the jitter span (the
    // default, `Config::campaign_slots`) and drawing from it at random.
    let timings = [
        ((Timing::Default, true), "default 50/300 ms, 30 ms in turns"),
        ((Timing::Default, false), "default, 30 ms at random"),
        (
            (Timing::DefaultPlainJitter, false),
            "default, plain Raft 300 ms at random",
        ),
        ((Timing::Fast, true), "fast 10/50 ms, 5 ms in turns"),
        ((Timing::Fast, false), "fast, 5 ms at random"),
        (
            (Timing::FastPlainJitter, false),
            "fast, plain Raft 50 ms at random",
        ),
    ];
    for (timing, name) in timings {
        for fault in [Fault::Crash, Fault::Isolate, Fault::Handoff] {
            let runs = row(fault, timing, seeds);
            let windows: Vec<Duration> = runs.iter().map(|&(window, _)| window).collect();
            if windows.is_empty() {
                println!("{name:<38} {:<8} no successful run", format!("{fault:?}"));
                continue;
            }
            println!(
                "{name:<38} {:<8} {} {} {} {} {:>7}",
                format!("{fault:?}").to_lowercase(),
                millis(percentile(&windows, 0.5)),
                millis(percentile(&windows, 0.9)),
                millis(percentile(&windows, 0.99)),
                millis(*windows.last().expect("not empty")),
                windows.len()
            );
            if slowest > 0 {
                let list: Vec<String> = runs
                    .iter()
                    .rev()
                    .take(slowest)
                    .map(|(window, seed)| format!("{seed} ({})", millis(*window).trim()))
                    .collect();
                println!("    slowest seeds: {}", list.join(", "));
            }
        }
    }
    println!();
    for (timing, name) in [(Timing::Default, "default"), (Timing::Fast, "fast")] {
        let config = timing.config(NodeId(1));
        let floor = config.election_timeout_min - config.heartbeat_interval / 2;
        println!(
            "theoretical crash floor ({name}): election_timeout_min - heartbeat/2 = {} ms; lease {} ms",
            millis(floor).trim(),
            millis(config.lease_duration()).trim()
        );
    }
    println!("\nwall time {:.1} s", started.elapsed().as_secs_f64());
}
