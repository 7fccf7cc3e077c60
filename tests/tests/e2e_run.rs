//! Goal: `goosectl run` (design.md §7) runs a singleton job on at most one
//! host at a time, under every fault the daemon can know about, and starts
//! it again elsewhere soon after. Three `goosed run` processes on loopback
//! each have a `goosectl run --repeat` runner of `goose-job`, which records
//! when it ran on `CLOCK_BOOTTIME`; the faults are a step-down, SIGKILL of
//! the goose's daemon, SIGSTOP of it past its lease, SIGTERM of it, and
//! SIGKILL of the runner itself (its job must not outlive it); then the
//! goose goes to the node whose daemon was killed and restarted, whose
//! runner must have reconnected. After all of them, no two jobs' intervals
//! overlap.

use goose_tests::cluster::{boottime_ns, kill_with_parent, wait_for, Cluster, Options};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// How long a fault may take to have a job running again somewhere.
const RERUN_WAIT: Duration = Duration::from_secs(5);

/// One run of the job, as it recorded itself.
#[derive(Clone, Debug)]
struct JobRun {
    file: PathBuf,
    node: u64,
    term: u64,
    start: u64,
    /// When it stopped on SIGTERM, else its last sign of life.
    end: u64,
    stopped: bool,
}

fn read_runs(directory: &Path) -> Vec<JobRun> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(directory).expect("the job directory") {
        let file = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let mut lines = text.lines();
        let Some(start) = lines.next() else { continue };
        let fields: Vec<&str> = start.split_whitespace().collect();
        if fields.len() != 4 || fields[0] != "start" {
            continue; // Being written.
        }
        let number = |text: &str| text.trim().parse::<u64>().unwrap_or(0);
        let (end, stopped) = match lines.next().map(|line| line.split_at(6)) {
            Some(("stop  ", at)) => (number(at), true),
            Some(("alive ", at)) => (number(at), false),
            _ => (number(fields[1]), false),
        };
        runs.push(JobRun {
            file,
            node: number(fields[2]),
            term: number(fields[3]),
            start: number(fields[1]),
            end,
            stopped,
        });
    }
    runs.sort_by_key(|run| run.start);
    runs
}

/// Whether the job's process is still alive (its pid is in its file name).
fn job_alive(run: &JobRun) -> bool {
    let name = run.file.file_stem().unwrap().to_string_lossy().into_owned();
    let pid: i32 = name.rsplit('-').next().unwrap().parse().unwrap();
    kill(Pid::from_raw(pid), None).is_ok()
}

/// The run in progress: the newest one that is still alive.
fn current_run(directory: &Path) -> Option<JobRun> {
    read_runs(directory).into_iter().rev().find(job_alive)
}

/// Waits for a job run that started after `after` (ns) and is alive.
fn wait_for_new_run(directory: &Path, after: u64, what: &str) -> JobRun {
    wait_for(what, RERUN_WAIT, || {
        current_run(directory).filter(|run| run.start > after)
    })
}

struct Runners {
    directory: PathBuf,
    children: BTreeMap<u64, Child>,
}

impl Runners {
    fn start(&mut self, cluster: &Cluster, id: u64) {
        let job = env!("CARGO_BIN_EXE_goose-job");
        let directory = self.directory.to_string_lossy().into_owned();
        let mut command = cluster.ctl_command(
            id,
            &["run", "--repeat", "--grace", "1s", "--", job, &directory],
        );
        command.stdout(Stdio::null()).stderr(Stdio::null());
        kill_with_parent(&mut command);
        let child = command.spawn().expect("goosectl run starts");
        self.children.insert(id, child);
    }

    fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Runners {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }
}

/// No two runs of the job overlap, and each ran on the node whose term it had.
fn assert_no_overlap(runs: &[JobRun]) {
    for pair in runs.windows(2) {
        let (earlier, later) = (&pair[0], &pair[1]);
        assert!(
            later.start > earlier.end,
            "two jobs ran at once: {earlier:?} until {} and {later:?} from {}",
            earlier.end,
            later.start
        );
        assert!(
            later.term >= earlier.term,
            "a later job has an older fencing token: {earlier:?} then {later:?}"
        );
    }
}

#[test]
fn a_job_runs_on_one_host_at_a_time_through_every_fault() {
    let mut cluster = Cluster::start(3, Options::fast());
    let directory = cluster.root().join("jobs");
    std::fs::create_dir_all(&directory).unwrap();
    let mut runners = Runners {
        directory: directory.clone(),
        children: BTreeMap::new(),
    };
    for id in cluster.ids() {
        runners.start(&cluster, id);
    }
    let first = wait_for_new_run(&directory, 0, "a first job");
    let goose = cluster.wait_for_goose(Duration::from_secs(10));
    assert_eq!(first.node, goose, "the job runs on the goose");

    // A step-down: the job stops, and starts again on another node.
    cluster.ctl_ok(goose, &["step-down"]);
    let moved = wait_for_new_run(&directory, first.start, "a job after step-down");
    assert_ne!(moved.node, first.node);

    // SIGKILL of the goose's daemon: its runner loses the socket and stops
    // the job at once; another node takes over.
    cluster.kill(moved.node);
    let after_kill = wait_for_new_run(&directory, moved.start, "a job after SIGKILL of goosed");
    assert_ne!(after_kill.node, moved.node);
    cluster.start_node(moved.node);

    // SIGSTOP of the goose's daemon past its lease: renewals stop, so the
    // runner kills the job by the promise's end.
    cluster.pause(after_kill.node);
    let after_pause = wait_for_new_run(
        &directory,
        after_kill.start,
        "a job after SIGSTOP of goosed",
    );
    assert_ne!(after_pause.node, after_kill.node);
    cluster.resume(after_kill.node);

    // SIGKILL of the runner: its job dies with it, at once.
    runners.kill(after_pause.node);
    wait_for(
        "the killed runner's job to be gone",
        Duration::from_secs(2),
        || (!job_alive(&after_pause)).then_some(()),
    );
    runners.start(&cluster, after_pause.node);
    let restarted = wait_for_new_run(
        &directory,
        after_pause.start,
        "a job after SIGKILL of a runner",
    );

    // SIGTERM of the goose's daemon: it hands over; the job moves.
    let stopping = restarted.node;
    cluster.terminate(stopping, Duration::from_secs(5));
    let after_term = wait_for_new_run(&directory, restarted.start, "a job after SIGTERM of goosed");
    assert_ne!(after_term.node, stopping);

    // The runner whose daemon was killed and restarted has reconnected:
    // handing the goose to that node moves the job there.
    cluster.start_node(stopping);
    let back = moved.node;
    let on_back = if after_term.node == back {
        after_term.clone()
    } else {
        let to = back.to_string();
        wait_for("a step-down to the restarted node", RERUN_WAIT, || {
            let output = cluster.ctl(after_term.node, &["step-down", "--to", &to]);
            output.status.success().then_some(())
        });
        wait_for_new_run(&directory, after_term.start, "a job on the restarted node")
    };
    assert_eq!(on_back.node, back, "the reconnected runner runs the job");

    let now = boottime_ns();
    let runs = read_runs(&directory);
    assert!(runs.len() >= 6, "six runs at least: {runs:?}");
    assert!(runs.iter().all(|run| run.start < now));
    for pair in runs.windows(2) {
        eprintln!(
            "job on node {} (term {}, {}) then node {} (term {}): {:.1} ms apart",
            pair[0].node,
            pair[0].term,
            if pair[0].stopped { "stopped" } else { "killed" },
            pair[1].node,
            pair[1].term,
            (pair[1].start as f64 - pair[0].end as f64) / 1e6
        );
    }
    assert_no_overlap(&runs);
    // The runs stopped on a role loss the runner saw in time got SIGTERM.
    assert!(
        runs.iter().filter(|run| run.stopped).count() >= 2,
        "{runs:?}"
    );
}

/// The overlap check itself catches an overlap.
#[test]
#[should_panic(expected = "two jobs ran at once")]
fn the_overlap_check_catches_two_jobs_at_once() {
    let run = |node, start, end| JobRun {
        file: PathBuf::from(format!("job-{node}-1.txt")),
        node,
        term: 1,
        start,
        end,
        stopped: true,
    };
    assert_no_overlap(&[run(1, 100, 200), run(2, 150, 300)]);
}
