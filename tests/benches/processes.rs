//! Real-process benchmark (design.md §9, tier 5): what the daemons cost and
//! how long a cluster of five is without a goose, measured on loopback.
//!
//! - The goose-less window after SIGKILL of the goose, after isolating the
//!   goose with `partition split` (it alone against the rest), and after
//!   SIGTERM (a graceful handoff): p50, p90 and max over `ROUNDS` rounds.
//!   The window runs from the last goose answer of the old goose to the
//!   first goose answer of its successor, both read from the daemons'
//!   `clock_ns` (one `CLOCK_BOOTTIME` on one host); the time from the event
//!   (signal or split) to that first answer is shown beside it. Every node
//!   is polled over the control protocol directly, a round every 2 ms.
//! - The same window and time after the goose's health check begins to
//!   fail (its file removed, `--health-check "test -f FILE"`), on a cluster
//!   of its own with `--health-interval-ms 100 --health-fall 3` (half as
//!   many rounds), then at the check's defaults, 1000 ms and 3 (a quarter as
//!   many), each beside its bound `health_fall × health_interval` (plus a
//!   handoff); the file is removed at a random phase of the checks.
//! - `is-goose` answers per second from one client on one connection over
//!   the control protocol, and from the goosectl binary (a process per
//!   answer) for comparison.
//! - Resident memory (VmRSS) per daemon, and CPU per daemon while idle
//!   (utime + stime over 10 s).
//!
//! - With `GOOSE_BENCH_FLEET=1`, only the fleet table (design.md §1): 5
//!   voters and 0, 16, 32 and [`FLEET_OBSERVERS_MAX`] observers (64 members
//!   in all), each row on a cluster of its own:
//!   the idle CPU of the goose, of a voter duck and of an observer (from
//!   `/proc/PID/schedstat` over 10 s), the datagrams the goose sends per
//!   second, the time of `goosectl status` across every member, and the
//!   crash failover (`GOOSE_BENCH_ROUNDS`, default 5 here) p50.
//!   `GOOSE_BENCH_OBSERVERS=0,8` picks other observer counts.
//!
//! Run with `cargo bench -p goose-tests --bench processes`. Defaults: 20
//! rounds and the daemon's default timers (heartbeat 50 ms, election
//! timeout 300 ms). `GOOSE_BENCH_ROUNDS=N` changes the rounds;
//! `GOOSE_BENCH_FAST=1` uses the fast profile of design.md §8 (heartbeat
//! 10 ms, election timeout 50 ms, promise 5 ms, lease margin 2 ms).

use goose_common::control::{read_frame, write_frame, NodeStatus, Reply, Request};
use goose_common::NodeId;
use goose_tests::cluster::{control_call, run_bounded, wait_for, Cluster, Options};
use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Nodes in the benchmark cluster.
const NODES: u64 = 5;

/// Rounds of each failover kind unless `GOOSE_BENCH_ROUNDS` says otherwise.
const ROUNDS_DEFAULT: usize = 20;

/// How long one failover may take before the benchmark gives up.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the cluster may take to settle between rounds.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// The pause between two polling rounds of every node.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// How long each query-rate measurement runs.
const QUERY_RUN: Duration = Duration::from_secs(3);

/// How long the idle CPU is measured.
const IDLE_RUN: Duration = Duration::from_secs(10);

/// The health check's file in each node's directory (present: healthy).
const HEALTH_FILE: &str = "healthy";

/// `--health-fall` of the health-check failover (the daemon's default).
const HEALTH_FALL: u32 = 3;

/// The health-check intervals measured, in ms, and the share of the rounds
/// each gets (a round at the default 1000 ms takes seconds).
const HEALTH_INTERVALS: [(u64, usize); 2] = [(100, 2), (1000, 4)];

/// Voters of the fleet table.
const FLEET_VOTERS: u64 = 5;

/// The most observers of the fleet table: 64 members in all, the fleet of
/// design.md §1 (README: Observers).
const FLEET_OBSERVERS_MAX: u64 = 59;

/// Failover rounds per row of the fleet table unless `GOOSE_BENCH_ROUNDS`.
const FLEET_ROUNDS_DEFAULT: usize = 5;

/// How many `goosectl status` runs the fleet table times per row.
const FLEET_STATUS_RUNS: usize = 10;

/// What ended the old goose's reign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Kill,
    Isolate,
    Terminate,
    /// The goose's health check begins to fail (its file is removed).
    HealthCheckFails {
        interval_ms: u64,
        fall: u32,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Kill => f.write_str("SIGKILL of the goose"),
            Event::Isolate => f.write_str("partition split, goose alone"),
            Event::Terminate => f.write_str("SIGTERM of the goose (handoff)"),
            Event::HealthCheckFails { interval_ms, fall } => write!(
                f,
                "health check of the goose fails (interval {interval_ms} ms, fall {fall}; \
                 bound fall x interval = {} ms, plus a handoff)",
                u64::from(*fall) * interval_ms
            ),
        }
    }
}

/// One failover: the goose-less window and the time from the event.
#[derive(Clone, Copy, Debug)]
struct Failover {
    window: Duration,
    from_event: Duration,
}

fn main() {
    if !goose_tests::bench::wanted("processes") {
        return;
    }
    let options = if std::env::var_os("GOOSE_BENCH_FAST").is_some() {
        Options::fast_profile()
    } else {
        Options::default()
    };
    if std::env::var_os("GOOSE_BENCH_FLEET").is_some() {
        bench_fleet(&options, goose_tests::bench::rounds(FLEET_ROUNDS_DEFAULT));
        return;
    }
    let rounds = goose_tests::bench::rounds(ROUNDS_DEFAULT);
    println!(
        "processes benchmark: {NODES} nodes on loopback, heartbeat {} ms, election timeout {} ms, \
         {rounds} rounds",
        options.heartbeat_ms.unwrap_or(50),
        options.election_timeout().as_millis()
    );
    let mut cluster = Cluster::start(NODES, options.clone());
    cluster.wait_for_goose(SETTLE_TIMEOUT);
    settle(&cluster);

    bench_idle(&cluster);
    bench_queries(&cluster);
    for event in [Event::Kill, Event::Isolate, Event::Terminate] {
        let failovers: Vec<Failover> = (0..rounds).map(|_| failover(&mut cluster, event)).collect();
        report(event, &failovers);
    }
    // One cluster at a time: the health-check clusters take the harness's
    // lock after this one has let it go.
    drop(cluster);
    for (interval_ms, share) in HEALTH_INTERVALS {
        bench_health_check(&options, interval_ms, rounds.div_ceil(share));
    }
}

/// The health-check failover on a cluster of its own whose nodes check
/// for their [`HEALTH_FILE`] every `interval_ms`.
fn bench_health_check(options: &Options, interval_ms: u64, rounds: usize) {
    let options = Options {
        health_check: Some(format!("test -f '{{dir}}/{HEALTH_FILE}'")),
        extra_arguments: vec![
            "--health-interval-ms".to_string(),
            interval_ms.to_string(),
            "--health-fall".to_string(),
            HEALTH_FALL.to_string(),
        ],
        ..options.clone()
    };
    let mut cluster = Cluster::new(NODES, options);
    for id in cluster.ids() {
        set_healthy(&cluster, id, true);
        cluster.start_node(id);
    }
    cluster.wait_for_goose(SETTLE_TIMEOUT);
    let event = Event::HealthCheckFails {
        interval_ms,
        fall: HEALTH_FALL,
    };
    let failovers: Vec<Failover> = (0..rounds).map(|_| failover(&mut cluster, event)).collect();
    report(event, &failovers);
}

/// Makes node `id`'s health check pass (`true`) or fail from now on.
fn set_healthy(cluster: &Cluster, id: u64, healthy: bool) {
    let path = cluster.node_dir(id).join(HEALTH_FILE);
    if healthy {
        std::fs::write(&path, "ok\n").expect("create the health file");
    } else {
        std::fs::remove_file(&path).expect("remove the health file");
    }
}

/// Waits until every node runs, answers, is eligible (its health check, if
/// any, passes) and follows one goose; returns it.
fn settle(cluster: &Cluster) -> u64 {
    wait_for("the cluster to settle", SETTLE_TIMEOUT, || {
        let statuses: Vec<NodeStatus> = cluster
            .ids()
            .into_iter()
            .filter_map(|id| cluster.status_direct(id))
            .collect();
        let geese: Vec<&NodeStatus> = statuses.iter().filter(|s| s.is_goose()).collect();
        let [goose] = geese.as_slice() else {
            return None;
        };
        let all_follow = statuses.len() == cluster.ids().len()
            && statuses.iter().all(|status| {
                status.leader_id == Some(goose.id) && (status.eligible || status.observer)
            });
        all_follow.then_some(goose.id.0)
    })
}

/// Persistent connections to every node's socket, polled in turn.
struct Pollers {
    connections: BTreeMap<u64, Option<UnixStream>>,
    sockets: BTreeMap<u64, std::path::PathBuf>,
}

impl Pollers {
    /// Pollers of every voter (observers are never the goose).
    fn new(cluster: &Cluster) -> Pollers {
        let sockets: BTreeMap<u64, std::path::PathBuf> = cluster
            .sockets()
            .into_iter()
            .filter(|(id, _)| {
                cluster
                    .status_direct(*id)
                    .is_none_or(|status| !status.observer)
            })
            .collect();
        Pollers {
            connections: sockets.keys().map(|id| (*id, None)).collect(),
            sockets,
        }
    }

    /// One answer from every node that gives one.
    fn poll(&mut self) -> Vec<NodeStatus> {
        let mut answers = Vec::new();
        for (id, connection) in &mut self.connections {
            if connection.is_none() {
                *connection = UnixStream::connect(&self.sockets[id])
                    .ok()
                    .filter(|stream| {
                        stream
                            .set_read_timeout(Some(Duration::from_millis(300)))
                            .is_ok()
                    });
            }
            let answer = connection.as_mut().and_then(|stream| {
                write_frame(stream, &Request::Status { local: true }).ok()?;
                match read_frame(stream).ok()? {
                    Reply::NodeStatus(status) => Some(status),
                    _ => None,
                }
            });
            match answer {
                Some(status) => answers.push(status),
                None => *connection = None,
            }
        }
        answers
    }
}

/// One round: ends the current goose's reign by `event`, measures until
/// another node answers goose, then restores the cluster.
fn failover(cluster: &mut Cluster, event: Event) -> Failover {
    let old = settle(cluster);
    let mut pollers = Pollers::new(cluster);
    let mut last_old_answer = 0u64;
    for status in pollers.poll() {
        if status.id.0 == old && status.is_goose() {
            last_old_answer = status.clock_ns;
        }
    }
    let others: Vec<NodeId> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != old)
        .map(NodeId)
        .collect();
    if let Event::HealthCheckFails { interval_ms, .. } = event {
        // Every node's checks started together and the last round settled
        // just after one of them: a random phase, not always just after a
        // check, so that the figures span the interval as they would.
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..interval_ms)));
        for status in pollers.poll() {
            if status.id.0 == old && status.is_goose() {
                last_old_answer = status.clock_ns;
            }
        }
    }
    let event_ns = goosed::clock::now().0;
    match event {
        Event::Kill => cluster.kill(old),
        Event::Isolate => {
            let request = Request::PartitionSplit {
                sides: (vec![NodeId(old)], others.clone()),
            };
            let reply = control_call(&cluster.socket(old), &request, Duration::from_secs(10));
            assert!(matches!(reply, Ok(Reply::Ok(_))), "split: {reply:?}");
        }
        Event::Terminate => cluster.signal(old, nix::sys::signal::Signal::SIGTERM),
        Event::HealthCheckFails { .. } => set_healthy(cluster, old, false),
    }
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    let first_new_answer = loop {
        assert!(
            Instant::now() < deadline,
            "no new goose within {} ms after {event}",
            FAILOVER_TIMEOUT.as_millis(),
        );
        let answers = pollers.poll();
        let mut new_answer = None;
        for status in answers.iter().filter(|status| status.is_goose()) {
            if status.id.0 == old {
                last_old_answer = last_old_answer.max(status.clock_ns);
            } else {
                new_answer = Some(status.clock_ns);
            }
        }
        if let Some(clock_ns) = new_answer {
            break clock_ns;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    // Before the event the old goose was answering, so the window starts at
    // its last answer, or at the event if the poller saw none after it.
    let window_start = last_old_answer.max(event_ns.min(first_new_answer));
    let result = Failover {
        window: Duration::from_nanos(first_new_answer.saturating_sub(window_start)),
        from_event: Duration::from_nanos(first_new_answer.saturating_sub(event_ns)),
    };
    match event {
        Event::Kill => cluster.start_node(old),
        Event::Isolate => {
            let reply = control_call(
                &cluster.socket(old),
                &Request::PartitionHeal,
                Duration::from_secs(10),
            );
            assert!(matches!(reply, Ok(Reply::Ok(_))), "heal: {reply:?}");
        }
        Event::Terminate => {
            let status = cluster
                .wait_exit(old, FAILOVER_TIMEOUT)
                .expect("the old goose exits after SIGTERM");
            assert_eq!(status.code(), Some(0), "the old goose exits 0");
            cluster.start_node(old);
        }
        // The next round's settle waits until it is healthy again.
        Event::HealthCheckFails { .. } => set_healthy(cluster, old, true),
    }
    result
}

/// Prints p50, p90 and max of the failovers of one kind.
fn report(event: Event, failovers: &[Failover]) {
    let summary = |mut values: Vec<Duration>| {
        values.sort();
        let at = |quantile: f64| {
            let index = ((values.len() as f64 - 1.0) * quantile).round() as usize;
            values[index].as_secs_f64() * 1000.0
        };
        format!(
            "p50 {:7.1} ms  p90 {:7.1} ms  max {:7.1} ms",
            at(0.5),
            at(0.9),
            at(1.0)
        )
    };
    println!("{event} ({} rounds):", failovers.len());
    println!(
        "  goose-less window   {}",
        summary(failovers.iter().map(|f| f.window).collect())
    );
    println!(
        "  event to new goose  {}",
        summary(failovers.iter().map(|f| f.from_event).collect())
    );
}

/// `is-goose` answers per second: one client, one connection; then the
/// goosectl binary, a process per answer.
fn bench_queries(cluster: &Cluster) {
    let goose = settle(cluster);
    let socket = cluster.socket(goose);
    let mut stream = UnixStream::connect(&socket).expect("connect to the goose");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("set a timeout");
    let started = Instant::now();
    let mut answers = 0u64;
    let mut geese = 0u64;
    while started.elapsed() < QUERY_RUN {
        write_frame(&mut stream, &Request::IsGoose).expect("send is-goose");
        match read_frame(&mut stream).expect("read the answer") {
            Reply::IsGoose(status) => {
                answers += 1;
                geese += u64::from(status.is_goose());
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    let rate = answers as f64 / started.elapsed().as_secs_f64();
    println!(
        "is-goose over the control protocol: {rate:.0} answers/s from one client \
         ({answers} answers, {geese} goose)"
    );
    let started = Instant::now();
    let mut answers = 0u64;
    while started.elapsed() < QUERY_RUN {
        let output = run_bounded(
            Command::new(&cluster.binaries().goosectl)
                .arg("--socket")
                .arg(&socket)
                .arg("is-goose")
                .stdin(Stdio::null()),
            Duration::from_secs(5),
        )
        .expect("goosectl runs");
        assert!(output.status.code().is_some_and(|code| code <= 1));
        answers += 1;
    }
    let rate = answers as f64 / started.elapsed().as_secs_f64();
    println!("is-goose through goosectl: {rate:.0} answers/s (a process per answer)");
}

/// One row of the fleet table per observer count.
fn bench_fleet(options: &Options, rounds: usize) {
    println!(
        "fleet: {FLEET_VOTERS} voters on loopback, heartbeat {} ms, election timeout {} ms, \
         idle CPU over {} s, {rounds} crash rounds per row",
        options.heartbeat_ms.unwrap_or(50),
        options.election_timeout().as_millis(),
        IDLE_RUN.as_secs()
    );
    println!(
        "{:>9} {:>14} {:>14} {:>14} {:>16} {:>16} {:>16}",
        "observers",
        "goose CPU %",
        "duck CPU %",
        "observer CPU %",
        "goose sends/s",
        "status ms p50",
        "failover p50 ms"
    );
    let counts: Vec<u64> = std::env::var("GOOSE_BENCH_OBSERVERS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![0, 16, 32, FLEET_OBSERVERS_MAX]);
    for observers in counts {
        let mut cluster = Cluster::start(FLEET_VOTERS, options.clone());
        cluster.wait_for_goose(SETTLE_TIMEOUT);
        for id in FLEET_VOTERS + 1..=FLEET_VOTERS + observers {
            let addr = cluster.start_joiner(id);
            let goose = cluster.wait_for_goose(SETTLE_TIMEOUT);
            let id = id.to_string();
            cluster.ctl_ok(
                goose,
                &["member", "add", "--observer", &id, &addr.to_string()],
            );
        }
        let goose = settle(&cluster);
        let duck = (1..=FLEET_VOTERS).find(|id| *id != goose).expect("a duck");
        let pid = |id: u64| cluster.pid(id).expect("a running node").as_raw();
        let sent = |cluster: &Cluster| {
            cluster
                .status_direct(goose)
                .map_or(0, |status| status.datagrams_sent)
        };
        let observer = (observers > 0).then_some(FLEET_VOTERS + 1);
        let observer_cpu = |cluster: &Cluster| {
            observer
                .and_then(|id| cluster.pid(id))
                .map_or(0, |pid| cpu_ns(pid.as_raw()))
        };
        let (goose_before, duck_before, observer_before, sent_before) = (
            cpu_ns(pid(goose)),
            cpu_ns(pid(duck)),
            observer_cpu(&cluster),
            sent(&cluster),
        );
        let started = Instant::now();
        std::thread::sleep(IDLE_RUN);
        let elapsed = started.elapsed().as_secs_f64();
        let percent = |ns: u64| ns as f64 / 1e9 / elapsed * 100.0;
        let goose_cpu = percent(cpu_ns(pid(goose)).saturating_sub(goose_before));
        let duck_cpu = percent(cpu_ns(pid(duck)).saturating_sub(duck_before));
        let observer_cpu = match observer {
            Some(_) => format!(
                "{:.2}",
                percent(observer_cpu(&cluster).saturating_sub(observer_before))
            ),
            None => "-".to_string(),
        };
        let sends = sent(&cluster).saturating_sub(sent_before) as f64 / elapsed;
        let mut status_times: Vec<Duration> = (0..FLEET_STATUS_RUNS)
            .map(|_| {
                let started = Instant::now();
                cluster.ctl_ok(goose, &["status"]);
                started.elapsed()
            })
            .collect();
        status_times.sort();
        let mut windows: Vec<Duration> = (0..rounds)
            .map(|_| failover(&mut cluster, Event::Kill).from_event)
            .collect();
        windows.sort();
        let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
        println!(
            "{observers:>9} {goose_cpu:>14.2} {duck_cpu:>14.2} {observer_cpu:>14} {sends:>16.0} {:>16.1} {:>16.1}",
            ms(status_times[status_times.len() / 2]),
            ms(windows[windows.len() / 2])
        );
    }
}

/// CPU time of a process (all its threads) in ns, from `/proc/PID/schedstat`.
fn cpu_ns(pid: i32) -> u64 {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Resident memory and idle CPU of every daemon.
fn bench_idle(cluster: &Cluster) {
    let goose = settle(cluster);
    let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let pids: BTreeMap<u64, i32> = cluster
        .ids()
        .into_iter()
        .filter_map(|id| cluster.pid(id).map(|pid| (id, pid.as_raw())))
        .collect();
    let before: BTreeMap<u64, u64> = pids
        .iter()
        .map(|(id, pid)| (*id, cpu_ticks(*pid)))
        .collect();
    let started = Instant::now();
    std::thread::sleep(IDLE_RUN);
    let elapsed = started.elapsed().as_secs_f64();
    println!("idle daemons over {} s:", IDLE_RUN.as_secs());
    for (id, pid) in &pids {
        let ticks = cpu_ticks(*pid).saturating_sub(before[id]);
        let cpu_percent = ticks as f64 / ticks_per_second / elapsed * 100.0;
        println!(
            "  node {id} ({}): VmRSS {:>6} kB, CPU {cpu_percent:.2}% of one core",
            if *id == goose { "goose" } else { "duck " },
            resident_kilobytes(*pid)
        );
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, so
    // utime (14) and stime (15) are the 12th and 13th after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |index: usize| fields.get(index).and_then(|v| v.parse::<u64>().ok());
    field(11).unwrap_or(0) + field(12).unwrap_or(0)
}

/// VmRSS of a process in kB.
fn resident_kilobytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}
