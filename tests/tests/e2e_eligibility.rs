//! Goal: eligibility (design.md §2 "Eligibility", §7 health check, drain,
//! priority) works on real processes. Clusters of `goosed run` on
//! 127.0.0.1 are driven only through `goosectl`, signals and the files
//! their health checks test; roles are observed through `goosectl status`
//! and, for timing and the background check of the goose rule, the same
//! status request spoken directly over each control socket
//! (tests/src/cluster.rs).
//!
//! The stories:
//!
//! 1. a goose whose health check fails hands over within
//!    `health_fall × health_interval` plus a handoff, its on_duck hook sees
//!    `GOOSE_REASON=unhealthy`, and its recovery does not move the goose
//!    back;
//! 2. with every check failing there is no goose and `goosectl status` says
//!    why; one recovered node becomes the goose;
//! 3. `goosectl drain` hands the goose over, holds across a restart and a
//!    failover, until `goosectl undrain`;
//! 4. a voter of higher priority preempts the goose after its delay, and
//!    never with `--preempt false`.
//!
//! Each node's health check is `test -f <node dir>/healthy`, run every
//! 100 ms. The timers are the daemon's defaults (heartbeat 50 ms, election
//! timeout 300 ms). Bounds are computed from those settings plus a slack
//! for a loaded two-core machine; each measured time is printed.

use goose_common::control::{HealthState, NodeRole, NodeStatus};
use goose_tests::cluster::{
    assert_goose_rule, boottime_ns, describe_exit, stderr_of, wait_for, Cluster, Options, Sample,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a test waits for a first election or a settled cluster:
/// generous, these tests are not about election speed.
const GOOSE_WAIT: Duration = Duration::from_secs(15);

/// `--health-interval-ms` of every node.
const HEALTH_INTERVAL_MS: u64 = 100;

/// The daemon's default `health_fall` and `health_rise` (design.md §7);
/// the tests leave them unset.
const HEALTH_FALL: u64 = 3;
const HEALTH_RISE: u64 = 2;

/// Scheduling on a loaded machine plus a voluntary handoff (stop
/// answering, on_duck, the promise, TimeoutNow, one election round trip,
/// the no-op's commit).
const SLACK_MS: u64 = 500;

/// The longest an unhealthy goose may keep the goose after its check
/// starts failing: `health_fall` failed checks (the first may start up to
/// one interval after the failure began), then the handoff.
const UNHEALTHY_BOUND: Duration =
    Duration::from_millis(HEALTH_FALL * HEALTH_INTERVAL_MS + HEALTH_INTERVAL_MS + SLACK_MS);

/// The earliest: `health_fall` failures, the first at once, the others an
/// interval apart.
const UNHEALTHY_EARLIEST: Duration = Duration::from_millis((HEALTH_FALL - 1) * HEALTH_INTERVAL_MS);

/// The longest an unhealthy node may take to count as healthy again after
/// its check passes: `health_rise` passes, the first up to an interval late.
const RECOVERY_BOUND: Duration =
    Duration::from_millis(HEALTH_RISE * HEALTH_INTERVAL_MS + HEALTH_INTERVAL_MS + SLACK_MS);

/// How long a goose that should stay put is watched.
const STAY_WATCH: Duration = Duration::from_secs(2);

/// `--preempt-delay-ms` of the node of higher priority in story 4.
const PREEMPT_DELAY_MS: u64 = 1500;

/// Story 4: the longest past the preempt delay until the preempting node
/// answers goose (the leader hears on the next heartbeat, then a handoff).
const PREEMPT_SLACK: Duration = Duration::from_millis(1000);

/// Story 4 with `--preempt false`: how long the goose is watched not to
/// move (twice the delay).
const NO_PREEMPT_WATCH: Duration = Duration::from_millis(2 * PREEMPT_DELAY_MS);

/// Story 3: how long `step-down --to` is retried while the leader has not
/// yet heard that its target was undrained.
const STEP_DOWN_RETRY: Duration = Duration::from_secs(2);

/// The health check every node runs: passes while its file exists.
fn health_options() -> Options {
    Options {
        record_hooks: true,
        health_check: Some("test -f '{dir}/healthy'".to_string()),
        extra_arguments: vec![
            "--health-interval-ms".to_string(),
            HEALTH_INTERVAL_MS.to_string(),
        ],
        ..Options::default()
    }
}

/// The file node `id`'s health check tests.
fn health_file(cluster: &Cluster, id: u64) -> PathBuf {
    cluster.node_dir(id).join("healthy")
}

/// Makes node `id`'s health check pass (`true`) or fail from now on.
fn set_healthy(cluster: &Cluster, id: u64, healthy: bool) {
    let path = health_file(cluster, id);
    if healthy {
        std::fs::write(&path, "ok\n").expect("create the health file");
    } else {
        std::fs::remove_file(&path).expect("remove the health file");
    }
}

/// Every running node's own answer over the control socket, by id.
fn answers(cluster: &Cluster) -> BTreeMap<u64, NodeStatus> {
    cluster
        .running_ids()
        .into_iter()
        .filter_map(|id| cluster.status_direct(id).map(|status| (id, status)))
        .collect()
}

/// The goose answers of one round of [`answers`] (the background poller
/// checks that they never overlap).
fn geese(cluster: &Cluster) -> Vec<NodeStatus> {
    answers(cluster)
        .into_values()
        .filter(|status| status.role == NodeRole::Goose)
        .collect()
}

/// Waits until one node answers goose, every running node answers and
/// follows it, and every node's eligibility is `eligible`; returns the goose.
fn wait_settled(cluster: &Cluster, eligible: &dyn Fn(u64) -> bool) -> u64 {
    wait_for("a settled cluster", GOOSE_WAIT, || {
        let answers = answers(cluster);
        let goose = cluster.goose()?;
        let settled = answers.len() == cluster.running_ids().len()
            && answers.values().all(|status| {
                status.leader_id.map(|id| id.0) == Some(goose)
                    && status.eligible == eligible(status.id.0)
            });
        settled.then_some(goose)
    })
}

/// `goosectl --json status` on node `id`.
fn cluster_status(cluster: &Cluster, id: u64) -> serde_json::Value {
    serde_json::from_str(&cluster.ctl_ok(id, &["--json", "status"])).expect("status --json is JSON")
}

/// The member `id` of a `status --json` object.
fn member(status: &serde_json::Value, id: u64) -> serde_json::Value {
    status["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("no member {id} in {status}"))
}

/// The line of node `id` in `goosectl status` text.
fn status_line(text: &str, id: u64) -> String {
    text.lines()
        .find(|line| line.starts_with(&format!("node {id} (")))
        .unwrap_or_else(|| panic!("no line for node {id} in:\n{text}"))
        .to_string()
}

/// (role, term, reason) of each line of node `id`'s hook log.
fn hook_lines(cluster: &Cluster, id: u64) -> Vec<(String, u64, String)> {
    let text = std::fs::read_to_string(cluster.hook_log(id)).unwrap_or_default();
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 3, "node {id}: malformed hook line {line:?}");
            let term = fields[1].parse().expect("GOOSE_TERM is a number");
            (fields[0].to_string(), term, fields[2].to_string())
        })
        .collect()
}

/// Waits for node `id`'s on_duck with `GOOSE_REASON=reason` in `term`.
fn wait_on_duck(cluster: &Cluster, id: u64, term: u64, reason: &str) {
    wait_for(
        &format!("node {id}'s on_duck with GOOSE_REASON={reason} in term {term}"),
        Duration::from_secs(5),
        || {
            hook_lines(cluster, id)
                .iter()
                .any(|(role, t, r)| role == "duck" && *t == term && r == reason)
                .then_some(())
        },
    );
}

/// The first goose answer of a node other than `old` at or after `since_ns`.
fn first_goose_after(samples: &[Sample], since_ns: u64, not: u64) -> Option<Sample> {
    samples
        .iter()
        .filter(|s| s.goose && s.node != not && s.clock_ns >= since_ns)
        .min_by_key(|s| s.clock_ns)
        .copied()
}

/// The last goose answer of `node` before `before_ns`.
fn last_goose_of(samples: &[Sample], node: u64, before_ns: u64) -> Option<Sample> {
    samples
        .iter()
        .filter(|s| s.goose && s.node == node && s.clock_ns <= before_ns)
        .max_by_key(|s| s.clock_ns)
        .copied()
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// A cluster of `count` nodes with health checks, every file present.
fn start_healthy(count: u64) -> Cluster {
    let mut cluster = Cluster::new(count, health_options());
    for id in cluster.ids() {
        set_healthy(&cluster, id, true);
        cluster.start_node(id);
    }
    cluster
}

// ---------------------------------------------------------------------------
// 1. An unhealthy goose.
// ---------------------------------------------------------------------------

/// Checks: the goose's health check starts failing; another node answers
/// goose no earlier than `(fall - 1) × interval` and within
/// [`UNHEALTHY_BOUND`] (`fall × interval + interval + 500 ms`) of the
/// failure; `goosectl --json status` shows the old goose `eligible: false`,
/// `health: "unhealthy"` with a reason, its text line ends with `not
/// eligible: unhealthy (...)`; its on_duck saw `GOOSE_REASON=unhealthy`.
/// Its check passing again makes it eligible (within [`RECOVERY_BOUND`])
/// but, priorities being equal, the goose stays where it is for
/// [`STAY_WATCH`]. No two goose answers overlap throughout.
#[test]
fn a_goose_whose_health_check_fails_hands_over_within_its_bound() {
    let cluster = start_healthy(3);
    let poller = cluster.start_poller();
    let old = wait_settled(&cluster, &|_| true);
    let old_term = cluster
        .status_direct(old)
        .expect("the goose answers")
        .term
        .0;

    // `goosectl watch` on the goose reports its eligibility changes.
    let watch_log = cluster.root().join("watch.jsonl");
    let mut watcher = std::process::Command::new(&cluster.binaries().goosectl)
        .arg("--socket")
        .arg(cluster.socket(old))
        .args(["--json", "watch"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&watch_log).expect("create the watch log"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start goosectl watch");
    wait_for("the watch to start", GOOSE_WAIT, || {
        std::fs::read_to_string(&watch_log)
            .ok()
            .filter(|text| !text.is_empty())
    });

    let failed_ns = boottime_ns();
    set_healthy(&cluster, old, false);
    let new = wait_for("a goose other than the unhealthy one", GOOSE_WAIT, || {
        geese(&cluster)
            .into_iter()
            .find(|status| status.id.0 != old)
    });
    let moved = Duration::from_nanos(new.clock_ns.saturating_sub(failed_ns));
    eprintln!(
        "unhealthy goose: node {} answered goose {:.1} ms after node {old}'s check began to \
         fail (bound {} ms = fall {HEALTH_FALL} x interval {HEALTH_INTERVAL_MS} ms + one \
         interval + {SLACK_MS} ms)",
        new.id,
        moved.as_secs_f64() * 1e3,
        UNHEALTHY_BOUND.as_millis()
    );
    assert!(
        moved <= UNHEALTHY_BOUND,
        "the goose moved {} ms after its check began to fail; the bound is {} ms",
        moved.as_millis(),
        UNHEALTHY_BOUND.as_millis()
    );
    let new = new.id.0;

    let status = cluster_status(&cluster, new);
    assert_eq!(status["goose"], new, "status names the new goose: {status}");
    let old_member = member(&status, old);
    assert_eq!(old_member["eligible"], false, "{old_member}");
    assert_eq!(old_member["health"], "unhealthy", "{old_member}");
    assert!(
        old_member["health_reason"]
            .as_str()
            .is_some_and(|reason| !reason.trim().is_empty()),
        "an unhealthy member has a health_reason: {old_member}"
    );
    assert_eq!(old_member["role"], "duck", "{old_member}");
    let text = cluster.ctl_ok(new, &["status"]);
    let line = status_line(&text, old);
    assert!(
        line.contains(", not eligible: unhealthy (") && line.ends_with(')'),
        "the unhealthy node's line says why: {line}"
    );
    eprintln!("{line}");
    wait_on_duck(&cluster, old, old_term, "unhealthy");
    let changed = wait_for(
        "the watch to report the eligibility change",
        GOOSE_WAIT,
        || {
            let text = std::fs::read_to_string(&watch_log).unwrap_or_default();
            text.lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .find(|event| {
                    event["kind"] == "eligibility_changed" && event["status"]["eligible"] == false
                })
        },
    );
    assert_eq!(changed["status"]["health"], "unhealthy", "{changed}");
    let _ = watcher.kill();
    let _ = watcher.wait();

    let restored_at = Instant::now();
    set_healthy(&cluster, old, true);
    wait_for("the old goose to be healthy again", GOOSE_WAIT, || {
        cluster
            .status_direct(old)
            .filter(|status| status.eligible && status.health == HealthState::Healthy)
    });
    let recovery = restored_at.elapsed();
    eprintln!(
        "node {old} eligible again {} ms after its check passed (bound {} ms)",
        recovery.as_millis(),
        RECOVERY_BOUND.as_millis()
    );
    assert!(
        recovery <= RECOVERY_BOUND,
        "node {old} took {} ms to be healthy again (rise {HEALTH_RISE})",
        recovery.as_millis()
    );
    let new_term = cluster.status_direct(new).expect("the goose answers").term;
    let watch_until = Instant::now() + STAY_WATCH;
    while Instant::now() < watch_until {
        let now = answers(&cluster);
        if let Some(status) = now.get(&old) {
            assert_ne!(
                status.role,
                NodeRole::Goose,
                "the recovered node took the goose back: {status:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = cluster.status_direct(new).expect("the goose answers");
    assert!(
        last.role == NodeRole::Goose && last.term == new_term,
        "the goose stayed on node {new} in term {new_term}: {last:?}"
    );
    let samples = poller.stop();
    let first =
        first_goose_after(&samples, failed_ns, old).expect("the poller saw the new goose answer");
    let last_old =
        last_goose_of(&samples, old, first.clock_ns).expect("the poller saw the old goose answer");
    let first_after = Duration::from_nanos(first.clock_ns - failed_ns);
    eprintln!(
        "unhealthy goose, as the poller saw it: node {old}'s last goose answer {:.1} ms and \
         node {}'s first {:.1} ms after the check began to fail",
        ms(last_old.clock_ns.saturating_sub(failed_ns)),
        first.node,
        ms(first.clock_ns - failed_ns)
    );
    assert!(
        first_after >= UNHEALTHY_EARLIEST,
        "the goose moved {} ms after its check began to fail: before {HEALTH_FALL} checks \
         can have failed ({} ms)",
        first_after.as_millis(),
        UNHEALTHY_EARLIEST.as_millis()
    );
    assert_goose_rule(&samples, "an unhealthy goose");
}

// ---------------------------------------------------------------------------
// 2. No eligible voter.
// ---------------------------------------------------------------------------

/// Checks: every node's check starts failing; within [`UNHEALTHY_BOUND`]
/// no node answers goose, and none does for [`STAY_WATCH`] after (the
/// poller's answers included); meanwhile `is-goose` exits 1 on every node,
/// `status --json` has `"goose": null` and every member unhealthy, and the
/// text ends with `no goose: no voter is eligible (3 unhealthy)`. One
/// node's check passing again makes that node, and no other, the goose.
#[test]
fn with_every_check_failing_there_is_no_goose_and_status_says_why() {
    let cluster = start_healthy(3);
    let poller = cluster.start_poller();
    let first = wait_settled(&cluster, &|_| true);

    let failed_ns = boottime_ns();
    let failed_at = Instant::now();
    for id in cluster.ids() {
        set_healthy(&cluster, id, false);
    }
    wait_for("every node unhealthy and no goose", GOOSE_WAIT, || {
        let answers = answers(&cluster);
        (answers.len() == 3
            && answers.values().all(|status| {
                status.health == HealthState::Unhealthy && status.role != NodeRole::Goose
            }))
        .then_some(())
    });
    let none_after = failed_at.elapsed();
    eprintln!(
        "every check failing: no goose {} ms after the checks began to fail (bound {} ms)",
        none_after.as_millis(),
        UNHEALTHY_BOUND.as_millis()
    );
    assert!(
        none_after <= UNHEALTHY_BOUND,
        "it took {} ms for every node to be unhealthy and none goose",
        none_after.as_millis()
    );
    cluster.assert_no_goose_for(STAY_WATCH);
    for id in cluster.ids() {
        let output = cluster.ctl(id, &["is-goose"]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "is-goose on node {id}: {} {}",
            describe_exit(output.status),
            stderr_of(&output)
        );
    }
    let status = cluster_status(&cluster, first);
    assert!(status["goose"].is_null(), "no goose: {status}");
    for id in cluster.ids() {
        let member = member(&status, id);
        assert_eq!(member["eligible"], false, "{member}");
        assert_eq!(member["health"], "unhealthy", "{member}");
    }
    let text = cluster.ctl_ok(first, &["status"]);
    eprintln!("{text}");
    assert!(
        text.lines()
            .last()
            .is_some_and(|line| line == "no goose: no voter is eligible (3 unhealthy)"),
        "status says why there is no goose:\n{text}"
    );

    let restored = cluster.ids().into_iter().find(|id| *id != first).unwrap();
    let restored_ns = boottime_ns();
    set_healthy(&cluster, restored, true);
    let goose = cluster.wait_for_goose(GOOSE_WAIT);
    eprintln!(
        "node {restored}'s check passing again: node {goose} goose {:.1} ms later",
        ms(boottime_ns() - restored_ns)
    );
    assert_eq!(goose, restored, "only the healthy node may be the goose");

    let samples = poller.stop();
    let quiet_from = failed_ns + u64::try_from(UNHEALTHY_BOUND.as_nanos()).unwrap();
    let stray = samples.iter().find(|s| {
        s.goose && s.clock_ns > quiet_from && (s.clock_ns < restored_ns || s.node != restored)
    });
    assert!(
        stray.is_none(),
        "a goose answer while no node was eligible, or from an unhealthy node: {stray:?}"
    );
    assert_goose_rule(&samples, "every check failing");
}

// ---------------------------------------------------------------------------
// 3. Drain.
// ---------------------------------------------------------------------------

/// Checks: `goosectl drain` on the goose exits 0 with one line, and the
/// goose moves by a handoff (the goose-less window, from the old goose's
/// last goose answer to the next goose's first, is shorter than one
/// election timeout: no election timeout is waited out), with on_duck
/// seeing `GOOSE_REASON=drain`; `status --local --json` on the drained node
/// shows `drained: true, eligible: false`. Restarted with SIGTERM and the
/// same data directory, the node is still drained after five election
/// timeouts and its status line ends with `not eligible: drained`; the
/// current goose stopped with SIGTERM, the next goose is the third node.
/// The drained node never answers goose until `goosectl undrain`, after
/// which `step-down --to` it makes it the goose.
#[test]
fn a_drain_holds_across_a_restart_until_undrain() {
    let options = Options {
        record_hooks: true,
        ..Options::default()
    };
    let election_timeout = options.election_timeout();
    let mut cluster = Cluster::start(3, options);
    let poller = cluster.start_poller();
    let drained = wait_settled(&cluster, &|_| true);
    let term = cluster
        .status_direct(drained)
        .expect("the goose answers")
        .term
        .0;

    let drain_ns = boottime_ns();
    let output = cluster.ctl(drained, &["drain"]);
    let drain_done_ns = boottime_ns();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "goosectl drain: {} {}",
        describe_exit(output.status),
        stderr_of(&output)
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "drain prints one line: {stdout:?}"
    );
    eprintln!(
        "goosectl drain on the goose: {} ({:.1} ms)",
        stdout.trim(),
        ms(boottime_ns() - drain_ns)
    );
    let others: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != drained)
        .collect();
    let successor = cluster.wait_for_goose_among(&others, GOOSE_WAIT);
    wait_on_duck(&cluster, drained, term, "drain");
    let local = cluster
        .status_local_json(drained)
        .expect("the drained node answers");
    assert_eq!(local["drained"], true, "{local}");
    assert_eq!(local["eligible"], false, "{local}");
    assert_eq!(local["role"], "duck", "{local}");

    let (status, _) = cluster
        .terminate(drained, Duration::from_secs(5))
        .expect("the drained node exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", describe_exit(status));
    cluster.start_node(drained);
    wait_for("the restarted node to answer", GOOSE_WAIT, || {
        cluster.status_direct(drained)
    });
    let back_watch = election_timeout * 5;
    let back_until = Instant::now() + back_watch;
    while Instant::now() < back_until {
        if let Some(status) = cluster.status_direct(drained) {
            assert_ne!(status.role, NodeRole::Goose, "{status:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let local = cluster
        .status_local_json(drained)
        .expect("the restarted node answers");
    assert_eq!(
        local["drained"], true,
        "the drain survives a restart: {local}"
    );
    assert_eq!(local["eligible"], false, "{local}");
    assert_eq!(local["role"], "duck", "{local}");
    let line = status_line(&cluster.ctl_ok(drained, &["status"]), drained);
    assert!(
        line.ends_with(", not eligible: drained"),
        "the drained node's line says why: {line}"
    );
    eprintln!("{line}");

    let current = cluster.wait_for_goose(GOOSE_WAIT);
    assert_ne!(current, drained);
    let (status, _) = cluster
        .terminate(current, Duration::from_secs(5))
        .expect("the goose exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", describe_exit(status));
    let third = cluster
        .ids()
        .into_iter()
        .find(|id| *id != drained && *id != current)
        .unwrap();
    let next = cluster.wait_for_goose(GOOSE_WAIT);
    assert_eq!(
        next, third,
        "the goose after node {current} is not the drained node"
    );
    cluster.start_node(current);
    wait_settled(&cluster, &|id| id != drained);

    let undrain_ns = boottime_ns();
    let message = cluster.ctl_ok(drained, &["undrain"]);
    eprintln!("goosectl undrain: {}", message.trim());
    let local = cluster.status_local_json(drained).expect("it answers");
    assert_eq!(local["drained"], false, "{local}");
    assert_eq!(local["eligible"], true, "{local}");
    let started = Instant::now();
    loop {
        let goose = cluster.wait_for_goose(GOOSE_WAIT);
        if goose == drained {
            break;
        }
        let output = cluster.ctl(goose, &["step-down", "--to", &drained.to_string()]);
        if output.status.success() {
            break;
        }
        let error = stderr_of(&output);
        assert!(
            error.contains("not eligible") && started.elapsed() < STEP_DOWN_RETRY,
            "step-down --to {drained} on node {goose} after undrain: {} {error}",
            describe_exit(output.status)
        );
        eprintln!(
            "step-down --to {drained}, {} ms after undrain: {error}",
            started.elapsed().as_millis()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for(&format!("node {drained} to be goose"), GOOSE_WAIT, || {
        (cluster.goose() == Some(drained)).then_some(())
    });

    let samples = poller.stop();
    let first_successor = first_goose_after(&samples, drain_ns, drained)
        .expect("the poller saw the successor answer goose");
    assert_eq!(first_successor.node, successor);
    let last_old = last_goose_of(&samples, drained, first_successor.clock_ns)
        .expect("the poller saw the drained node answer goose before the drain");
    let window = first_successor.clock_ns.saturating_sub(last_old.clock_ns);
    eprintln!(
        "drain handoff: goose-less window {:.1} ms (election timeout {} ms)",
        ms(window),
        election_timeout.as_millis()
    );
    assert!(
        Duration::from_nanos(window) < election_timeout,
        "the drain took {:.1} ms without a goose: not a handoff",
        ms(window)
    );
    let stray = samples.iter().find(|s| {
        s.goose && s.node == drained && s.clock_ns > drain_done_ns && s.clock_ns < undrain_ns
    });
    assert!(
        stray.is_none(),
        "the drained node answered goose: {stray:?}"
    );
    assert_goose_rule(&samples, "drain");
}

// ---------------------------------------------------------------------------
// 4. Priority and preemption.
// ---------------------------------------------------------------------------

/// Three nodes, node 3 `--priority 200 --preempt-delay-ms 1500` (and
/// `--preempt false` unless `preempt`). Node 3 is drained until another
/// node is the settled goose, then undrained; returns the cluster, the
/// goose at the undrain, the undrain's start and end (CLOCK_BOOTTIME) and
/// the poller.
fn preemption_setup(preempt: bool) -> (Cluster, u64, u64, u64, goose_tests::cluster::RolePoller) {
    let mut node_three = vec![
        "--priority".to_string(),
        "200".to_string(),
        "--preempt-delay-ms".to_string(),
        PREEMPT_DELAY_MS.to_string(),
    ];
    if !preempt {
        node_three.extend(["--preempt".to_string(), "false".to_string()]);
    }
    let options = Options {
        record_hooks: true,
        node_arguments: BTreeMap::from([(3, node_three)]),
        ..Options::default()
    };
    let cluster = Cluster::start(3, options);
    let poller = cluster.start_poller();
    cluster.wait_for_goose(GOOSE_WAIT);
    cluster.ctl_ok(3, &["drain"]);
    let goose = wait_settled(&cluster, &|id| id != 3);
    assert_ne!(goose, 3);
    let status = cluster.status_direct(3).expect("node 3 answers");
    assert_eq!(status.priority, 200, "{status:?}");
    let undrain_ns = boottime_ns();
    let message = cluster.ctl_ok(3, &["undrain"]);
    let undrained_ns = boottime_ns();
    eprintln!("goosectl undrain on node 3: {}", message.trim());
    (cluster, goose, undrain_ns, undrained_ns, poller)
}

/// Checks: node 3 of priority 200 and a 1500 ms preempt delay, eligible
/// again (undrained) while node 1 or 2 is the goose, answers goose no
/// earlier than 1500 ms after the undrain began and within
/// 1500 ms + [`PREEMPT_SLACK`] of its end; the old goose's on_duck saw
/// `GOOSE_REASON=preempted`; no two goose answers overlap. The same setup
/// with `--preempt false`: the goose stays where it was for 3 s, node 3
/// eligible all along.
#[test]
fn a_higher_priority_preempts_after_its_delay() {
    let delay = Duration::from_millis(PREEMPT_DELAY_MS);
    {
        let (cluster, old, undrain_ns, undrained_ns, poller) = preemption_setup(true);
        let old_term = cluster
            .status_direct(old)
            .expect("the goose answers")
            .term
            .0;
        wait_for("node 3 to preempt", GOOSE_WAIT, || {
            geese(&cluster).into_iter().find(|status| status.id.0 == 3)
        });
        wait_on_duck(&cluster, old, old_term, "preempted");
        let samples = poller.stop();
        let first = samples
            .iter()
            .filter(|s| s.goose && s.node == 3 && s.clock_ns >= undrain_ns)
            .min_by_key(|s| s.clock_ns)
            .copied()
            .expect("the poller saw node 3 answer goose");
        let after = Duration::from_nanos(first.clock_ns - undrain_ns);
        eprintln!(
            "preemption: node 3 goose {:.1} ms after its undrain (delay {PREEMPT_DELAY_MS} ms, \
             bound {} ms)",
            after.as_secs_f64() * 1e3,
            (delay + PREEMPT_SLACK).as_millis()
        );
        assert!(
            after >= delay,
            "node 3 preempted {} ms after it became eligible, before its delay",
            after.as_millis()
        );
        let after_end = Duration::from_nanos(first.clock_ns.saturating_sub(undrained_ns));
        assert!(
            after_end <= delay + PREEMPT_SLACK,
            "node 3 preempted {} ms after it became eligible; the bound is {} ms",
            after_end.as_millis(),
            (delay + PREEMPT_SLACK).as_millis()
        );
        assert_goose_rule(&samples, "preemption");
    }
    {
        let (cluster, old, undrain_ns, _, poller) = preemption_setup(false);
        let old_term = cluster.status_direct(old).expect("the goose answers").term;
        let until = Instant::now() + NO_PREEMPT_WATCH;
        while Instant::now() < until {
            let answers = answers(&cluster);
            if let Some(three) = answers.get(&3) {
                assert!(three.eligible, "node 3 is eligible: {three:?}");
                assert_ne!(
                    three.role,
                    NodeRole::Goose,
                    "node 3 preempted with --preempt false"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let last = cluster.status_direct(old).expect("the goose answers");
        assert!(
            last.role == NodeRole::Goose && last.term == old_term,
            "the goose stayed on node {old} in term {old_term}: {last:?}"
        );
        let samples = poller.stop();
        let stray = samples
            .iter()
            .find(|s| s.goose && s.node == 3 && s.clock_ns >= undrain_ns);
        assert!(
            stray.is_none(),
            "node 3 answered goose with --preempt false: {stray:?}"
        );
        assert_goose_rule(&samples, "no preemption");
        eprintln!(
            "--preempt false: node {old} stayed goose for {} ms after node 3 became eligible",
            NO_PREEMPT_WATCH.as_millis()
        );
    }
}

/// `goosectl drain && systemctl stop goosed`: SIGTERM arrives while the
/// drain's handoff still waits for `on_duck`. The daemon lets that handoff
/// finish (on_duck completes, then TimeoutNow) and exits 0 after it, rather
/// than ending its loop at once: the lease then ran out while on_duck still
/// ran, and another node became the goose before it ended.
#[test]
fn sigterm_during_a_drain_handoff_lets_the_handoff_finish() {
    let on_duck = Duration::from_millis(600);
    let options = Options {
        record_hooks: true,
        on_duck_sleep: Some(on_duck),
        ..Options::default()
    };
    let election_timeout = options.election_timeout();
    let mut cluster = Cluster::start(3, options);
    let poller = cluster.start_poller();
    let goose = wait_settled(&cluster, &|_| true);
    let term = cluster
        .status_direct(goose)
        .expect("the goose answers")
        .term
        .0;
    let drain_ns = boottime_ns();
    let output = cluster.ctl(goose, &["drain"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let (status, took) = cluster
        .terminate(goose, Duration::from_secs(10))
        .expect("the drained goose exits on SIGTERM");
    eprintln!("SIGTERM during the drain's handoff: exited after {took:?} (on_duck {on_duck:?})");
    assert_eq!(status.code(), Some(0), "{}", describe_exit(status));
    assert!(
        took >= on_duck / 2,
        "it exited after {took:?}, before its on_duck ({on_duck:?}) could finish"
    );
    let text = std::fs::read_to_string(cluster.hook_log(goose)).unwrap_or_default();
    let finished = text.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        fields.len() == 5
            && fields[0] == "duck"
            && fields[1] == term.to_string()
            && fields[2] == "drain"
    });
    assert!(
        finished,
        "on_duck ran to completion with GOOSE_REASON=drain: {text:?}"
    );
    let others: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != goose)
        .collect();
    cluster.wait_for_goose_among(&others, GOOSE_WAIT);
    let samples = poller.stop();
    assert_goose_rule(&samples, "SIGTERM during a drain");
    // The voluntary path: the next goose only once on_duck has run (before
    // the fix, the daemon stopped leading at SIGTERM and another node was
    // elected 330 ms after the drain, while on_duck still ran), and right
    // after it (TimeoutNow, not an election timeout later).
    let next = first_goose_after(&samples, drain_ns, goose).expect("a new goose");
    let after = Duration::from_nanos(next.clock_ns - drain_ns);
    eprintln!("next goose {after:?} after the drain");
    assert!(
        after >= on_duck,
        "the next goose came {after:?} after the drain, before on_duck ({on_duck:?}) ended"
    );
    assert!(
        after < on_duck + election_timeout / 2,
        "the next goose came {after:?} after the drain: a failover, not a handoff"
    );
}

/// A damaged drain file counts as drained (never as "not drained", which
/// could bring the goose back to a host an operator drained); `goosectl
/// drain` rewrites it and `goosectl undrain` removes it.
#[test]
fn a_damaged_drain_file_counts_as_drained_until_rewritten_or_undrained() {
    let mut cluster = Cluster::start(3, Options::default());
    let goose = wait_settled(&cluster, &|_| true);
    let node = cluster.ids().into_iter().find(|id| *id != goose).unwrap();
    let (status, _) = cluster
        .terminate(node, Duration::from_secs(5))
        .expect("the node exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", describe_exit(status));
    let file = cluster.data_dir(node).join("drained");
    std::fs::write(&file, b"\x00garbage").expect("damage the drain file");
    cluster.start_node(node);
    let local = wait_for("the restarted node to answer", GOOSE_WAIT, || {
        cluster.status_local_json(node)
    });
    assert_eq!(local["drained"], true, "damage counts as drained: {local}");
    assert_eq!(local["eligible"], false, "{local}");
    let line = cluster.ctl_ok(node, &["drain"]);
    eprintln!("drain over a damaged file: {}", line.trim());
    let rewritten = std::fs::read_to_string(&file).expect("the drain file is there");
    assert!(
        rewritten.starts_with("drained by goosectl drain"),
        "drain rewrote the file: {rewritten:?}"
    );
    cluster.ctl_ok(node, &["undrain"]);
    assert!(!file.exists(), "undrain removed the drain file");
    let local = cluster.status_local_json(node).expect("the node answers");
    assert_eq!(local["drained"], false, "{local}");
    assert_eq!(local["eligible"], true, "{local}");
}
