//! A small job for `goosectl run` tests: records when it runs on
//! `CLOCK_BOOTTIME`, the clock of the daemons' promises, and checks at its
//! start that no process of an earlier run is still alive.
//!
//! `goose-job DIR [--ignore-term] [--with-child]` first looks for live
//! processes of earlier runs (the pids in the names of `DIR/job-*.txt` and
//! `DIR/child-*.txt`); each one still alive (and not a zombie) is an
//! overlap, written to `DIR/overlap-<pid>.txt`. Then it writes
//! `start <ns> <node> <term>` to a new file `DIR/job-<node>-<pid>.txt` and
//! every millisecond overwrites the line after it with `alive <ns>`. On
//! SIGTERM it writes `stop <ns>` and exits 0, unless `--ignore-term`: then
//! only SIGKILL ends it (the runner's deadline is what stops it). With
//! `--stop-delay-ms N` it goes on for N ms after SIGTERM before it stops:
//! a job that takes its time to shut down cleanly.
//! `--with-child` starts a second process in the job's process group that
//! ignores SIGTERM, records itself in `DIR/child-<node>-<pid>.txt` and runs
//! until killed: what a job's forgotten worker looks like.

use nix::sys::signal::{kill, signal, SigHandler, Signal};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn boottime_ns() -> u64 {
    let spec = clock_gettime(ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME");
    u64::try_from(spec.tv_sec()).unwrap_or(0) * 1_000_000_000
        + u64::try_from(spec.tv_nsec()).unwrap_or(0)
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let directory = PathBuf::from(
        arguments
            .iter()
            .find(|argument| !argument.starts_with("--") && argument.parse::<u64>().is_err())
            .expect(
                "usage: goose-job DIR [--ignore-term] [--with-child] [--stop-delay-ms N] [--child]",
            ),
    );
    let flag = |name: &str| arguments.iter().any(|argument| argument == name);
    let stop_delay = arguments
        .iter()
        .position(|argument| argument == "--stop-delay-ms")
        .and_then(|at| arguments.get(at + 1))
        .map(|ms| Duration::from_millis(ms.parse().expect("--stop-delay-ms takes milliseconds")))
        .unwrap_or_default();
    let node = std::env::var("GOOSE_NODE_ID").unwrap_or_default();
    if flag("--child") {
        child(&directory, &node);
    }
    report_overlaps(&directory);
    let path = directory.join(format!("job-{node}-{}.txt", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("a new record file");
    let start = format!(
        "start {} {node} {}\n",
        boottime_ns(),
        std::env::var("GOOSE_TERM").unwrap_or_default()
    );
    file.write_all(start.as_bytes()).expect("write start");
    if flag("--with-child") {
        let me = std::env::current_exe().expect("its own path");
        // Never waited for on purpose: the worker must outlive nothing but
        // the job's process group, which the runner kills.
        let worker = std::process::Command::new(me)
            .arg(&directory)
            .arg("--child")
            .spawn()
            .expect("a child");
        std::mem::forget(worker);
    }
    let offset = start.len() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    if flag("--ignore-term") {
        ignore_term();
    } else {
        signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))
            .expect("a SIGTERM handler");
    }
    let mut stop_at: Option<std::time::Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            let at = *stop_at.get_or_insert_with(|| std::time::Instant::now() + stop_delay);
            if std::time::Instant::now() >= at {
                break;
            }
        }
        // One write of fixed width, so each record replaces the last whole.
        let record = format!("alive {:020}\n", boottime_ns());
        file.seek(SeekFrom::Start(offset)).expect("seek");
        file.write_all(record.as_bytes()).expect("write alive");
        std::thread::sleep(Duration::from_millis(1));
    }
    let record = format!("stop  {:020}\n", boottime_ns());
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.write_all(record.as_bytes()).expect("write stop");
}

/// The forgotten worker: ignores SIGTERM, records its pid, runs until killed.
fn child(directory: &Path, node: &str) -> ! {
    ignore_term();
    let path = directory.join(format!("child-{node}-{}.txt", std::process::id()));
    std::fs::write(&path, format!("child {}\n", boottime_ns())).expect("a child record");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[allow(unsafe_code)]
fn ignore_term() {
    // SAFETY: SIG_IGN installs no handler, so no code runs in signal context.
    unsafe {
        signal(Signal::SIGTERM, SigHandler::SigIgn).expect("ignore SIGTERM");
    }
}

/// Records every process of an earlier run that is still alive.
fn report_overlaps(directory: &Path) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_suffix(".txt")
            .filter(|_| name.starts_with("job-") || name.starts_with("child-"))
        else {
            continue;
        };
        let Some(pid) = stem
            .rsplit('-')
            .next()
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if is_running(pid) {
            let record = directory.join(format!("overlap-{pid}.txt"));
            let _ = std::fs::write(
                record,
                format!(
                    "{name} (pid {pid}) was alive when pid {} started at {} ns\n",
                    std::process::id(),
                    boottime_ns()
                ),
            );
        }
    }
}

/// Whether `pid` is a live goose-job process: it exists, runs this program
/// (not another that reused the pid) and is not a zombie.
fn is_running(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if !String::from_utf8_lossy(&command).contains("goose-job") {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state is the field after the parenthesised command name.
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}
