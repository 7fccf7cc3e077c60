//! `goosectl run` under test: runners of `goose-job`, the job that records
//! when it ran on `CLOCK_BOOTTIME`, and the check that no two runs overlap
//! (tests/tests/e2e_run.rs and the `run` benchmark).

use crate::cluster::{kill_with_parent, wait_for, Cluster};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// How long a fault may take to have a job running again somewhere.
pub const RERUN_WAIT: Duration = Duration::from_secs(5);

/// One run of the job, as it recorded itself.
#[derive(Clone, Debug)]
pub struct JobRun {
    /// Its record file.
    pub file: PathBuf,
    /// The node it ran on (`GOOSE_NODE_ID`).
    pub node: u64,
    /// Its fencing token (`GOOSE_TERM`).
    pub term: u64,
    /// When it started (ns of `CLOCK_BOOTTIME`).
    pub start: u64,
    /// When it stopped on SIGTERM, else its last sign of life.
    pub end: u64,
    /// Whether it stopped on SIGTERM (else it was killed, or still runs).
    pub stopped: bool,
}

/// Every run recorded in `directory`, oldest first.
pub fn read_runs(directory: &Path) -> Vec<JobRun> {
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
pub fn job_alive(run: &JobRun) -> bool {
    let name = run.file.file_stem().unwrap().to_string_lossy().into_owned();
    let pid: i32 = name.rsplit('-').next().unwrap().parse().unwrap();
    kill(Pid::from_raw(pid), None).is_ok()
}

/// The run in progress: the newest one that is still alive.
pub fn current_run(directory: &Path) -> Option<JobRun> {
    read_runs(directory).into_iter().rev().find(job_alive)
}

/// Waits for a job run that started after `after` (ns) and is alive.
pub fn wait_for_new_run(directory: &Path, after: u64, what: &str) -> JobRun {
    wait_for(what, RERUN_WAIT, || {
        current_run(directory).filter(|run| run.start > after)
    })
}

/// One `goosectl run --repeat --grace 1s -- goose-job DIR` per node.
pub struct Runners {
    directory: PathBuf,
    job: PathBuf,
    children: BTreeMap<u64, Child>,
}

impl Runners {
    /// No runner yet; jobs record into `directory` (created here), and
    /// `job` is the goose-job binary.
    pub fn new(directory: PathBuf, job: PathBuf) -> Runners {
        std::fs::create_dir_all(&directory).expect("the job directory");
        Runners {
            directory,
            job,
            children: BTreeMap::new(),
        }
    }

    /// Where the jobs record.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Starts the runner of node `id`; `job_flags` go to goose-job
    /// (`--ignore-term`, `--with-child`).
    pub fn start(&mut self, cluster: &Cluster, id: u64, job_flags: &[&str]) {
        self.start_with_grace(cluster, id, "1s", job_flags);
    }

    /// [`Runners::start`] with another `--grace`.
    pub fn start_with_grace(
        &mut self,
        cluster: &Cluster,
        id: u64,
        grace: &str,
        job_flags: &[&str],
    ) {
        let job = self.job.to_string_lossy().into_owned();
        let directory = self.directory.to_string_lossy().into_owned();
        let mut arguments = vec!["run", "--repeat", "--grace", grace, "--", &job, &directory];
        arguments.extend_from_slice(job_flags);
        let mut command = cluster.ctl_command(id, &arguments);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        kill_with_parent(&mut command);
        let child = command.spawn().expect("goosectl run starts");
        self.children.insert(id, child);
    }

    /// Sends `signal` to the runner of node `id` (not to its job).
    pub fn signal(&self, id: u64, signal: nix::sys::signal::Signal) {
        if let Some(child) = self.children.get(&id) {
            let pid = i32::try_from(child.id()).expect("a pid");
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// Kills the runner of node `id` with SIGKILL.
    pub fn kill(&mut self, id: u64) {
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

/// What the jobs found alive of earlier runs when they started: one line
/// per overlap (goose-job's `overlap-*.txt`).
pub fn overlaps_seen(directory: &Path) -> Vec<String> {
    let mut overlaps: Vec<String> = std::fs::read_dir(directory)
        .expect("the job directory")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("overlap-"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    overlaps.sort();
    overlaps
}

/// No two runs of the job overlap, and each ran on the node whose term it had.
pub fn assert_no_overlap(runs: &[JobRun]) {
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
