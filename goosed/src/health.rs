//! The health check (design.md §7): a command run through `/bin/sh` every
//! `interval`, bounded by `timeout`, whose results decide whether this node
//! is eligible to lead (design.md §2).
//!
//! The verdict starts [`HealthState::Unknown`] (not eligible); the first
//! result decides at once; afterwards the node turns unhealthy after `fall`
//! failures in a row and healthy again after `rise` passes in a row. A check
//! that cannot be started, exits non-zero, is killed by a signal or runs past
//! its timeout has failed. [`Verdict`] is the pure state machine; [`spawn`]
//! runs the command and publishes the [`HealthReport`] on a watch channel.

use goose_common::control::HealthState;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// The shell that runs the check command (`/bin/sh -c CMD`).
pub const HEALTH_SHELL: &str = "/bin/sh";

/// How much of a check's combined stdout and stderr is kept for the failure
/// reason: only the last this many bytes; the rest is read and discarded.
pub const HEALTH_OUTPUT_TAIL_BYTES: usize = 256;

/// The size of one read from a check's output pipes.
const HEALTH_OUTPUT_CHUNK_BYTES: usize = 8 * 1024;

/// How long to keep reading a check's output after its shell has exited
/// (a background child may hold the pipes open); the result does not wait
/// for more.
const HEALTH_OUTPUT_DRAIN: Duration = Duration::from_millis(100);

/// The default time between the starts of two checks.
pub const HEALTH_INTERVAL_DEFAULT: Duration = Duration::from_millis(1000);

/// The default time a check may run before it is killed and counted failed.
pub const HEALTH_TIMEOUT_DEFAULT: Duration = Duration::from_millis(1000);

/// The default number of failures in a row that make a healthy node unhealthy.
pub const HEALTH_FALL_DEFAULT: u32 = 3;

/// The default number of passes in a row that make an unhealthy node healthy.
pub const HEALTH_RISE_DEFAULT: u32 = 2;

/// A configured health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Run as `/bin/sh -c COMMAND`; exit status 0 passes.
    pub command: String,
    /// Time between the starts of two checks (default 1000 ms); a check that
    /// runs longer delays the next one, never overlaps it.
    pub interval: Duration,
    /// A check running longer is killed (its process group) and has failed
    /// (default 1000 ms).
    pub timeout: Duration,
    /// Failures in a row that make a healthy node unhealthy (default 3).
    pub fall: u32,
    /// Passes in a row that make an unhealthy node healthy (default 2).
    pub rise: u32,
}

impl HealthCheck {
    /// `command` with the default interval, timeout, fall and rise.
    pub fn new(command: impl Into<String>) -> HealthCheck {
        HealthCheck {
            command: command.into(),
            interval: HEALTH_INTERVAL_DEFAULT,
            timeout: HEALTH_TIMEOUT_DEFAULT,
            fall: HEALTH_FALL_DEFAULT,
            rise: HEALTH_RISE_DEFAULT,
        }
    }
}

/// What the health check says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthReport {
    /// Unknown until the first result, then healthy or unhealthy.
    pub state: HealthState,
    /// The last failure while unhealthy, as one line; `None` otherwise.
    pub reason: Option<String>,
}

impl HealthReport {
    /// The report before the first result.
    pub const UNKNOWN: HealthReport = HealthReport {
        state: HealthState::Unknown,
        reason: None,
    };
}

/// The verdict of a health check: a pure state machine fed pass/fail results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    fall: u32,
    rise: u32,
    state: HealthState,
    /// Failures in a row while healthy, passes in a row while unhealthy.
    streak: u32,
    /// The last failure, kept while unhealthy.
    reason: Option<String>,
}

impl Verdict {
    /// A verdict that is still unknown; `fall` and `rise` of 0 count as 1.
    pub fn new(fall: u32, rise: u32) -> Verdict {
        Verdict {
            fall: fall.max(1),
            rise: rise.max(1),
            state: HealthState::Unknown,
            streak: 0,
            reason: None,
        }
    }

    /// Records one result (`Err` carries the failure's reason) and returns
    /// the new state if it changed.
    pub fn record(&mut self, result: Result<(), String>) -> Option<HealthState> {
        let before = self.state;
        match (self.state, result) {
            (HealthState::None | HealthState::Unknown, Ok(())) => self.become_healthy(),
            (HealthState::None | HealthState::Unknown, Err(reason)) => {
                self.become_unhealthy(reason)
            }
            (HealthState::Healthy, Ok(())) => self.streak = 0,
            (HealthState::Healthy, Err(reason)) => {
                self.streak += 1;
                if self.streak >= self.fall {
                    self.become_unhealthy(reason);
                }
            }
            (HealthState::Unhealthy, Ok(())) => {
                self.streak += 1;
                if self.streak >= self.rise {
                    self.become_healthy();
                }
            }
            (HealthState::Unhealthy, Err(reason)) => {
                self.streak = 0;
                self.reason = Some(reason);
            }
        }
        (self.state != before).then_some(self.state)
    }

    fn become_healthy(&mut self) {
        self.state = HealthState::Healthy;
        self.streak = 0;
        self.reason = None;
    }

    fn become_unhealthy(&mut self, reason: String) {
        self.state = HealthState::Unhealthy;
        self.streak = 0;
        self.reason = Some(reason);
    }

    /// The current state.
    pub fn state(&self) -> HealthState {
        self.state
    }

    /// The last failure while unhealthy; `None` otherwise.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The current state and reason.
    pub fn report(&self) -> HealthReport {
        HealthReport {
            state: self.state,
            reason: self.reason.clone(),
        }
    }
}

/// Starts the health check task on the current tokio runtime (it panics
/// outside one) and returns the receiver of its reports, which starts at
/// [`HealthReport::UNKNOWN`] and changes only when the report changes. The
/// first check starts at once. The task ends (killing a running check)
/// when every receiver is dropped.
pub fn spawn(check: HealthCheck, node_id: u64) -> watch::Receiver<HealthReport> {
    let (sender, receiver) = watch::channel(HealthReport::UNKNOWN);
    tokio::spawn(run(check, node_id, sender));
    receiver
}

async fn run(check: HealthCheck, node_id: u64, sender: watch::Sender<HealthReport>) {
    let mut verdict = Verdict::new(check.fall, check.rise);
    let mut next = Instant::now();
    loop {
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let started = Instant::now();
        let result = tokio::select! {
            // Dropping the running check kills its process group.
            () = sender.closed() => return,
            result = run_check(HEALTH_SHELL, &check, node_id) => result,
        };
        if let Err(reason) = &result {
            tracing::debug!(node_id, %reason, "health check failed");
        }
        match verdict.record(result) {
            Some(HealthState::Unhealthy) => tracing::warn!(
                node_id,
                reason = verdict.reason().unwrap_or_default(),
                "health check: unhealthy, not eligible to be the goose"
            ),
            Some(HealthState::Healthy) => {
                tracing::info!(node_id, "health check: healthy, eligible to be the goose")
            }
            _ => {}
        }
        let report = verdict.report();
        sender.send_if_modified(|current| {
            let modified = *current != report;
            if modified {
                *current = report;
            }
            modified
        });
        next = (started + check.interval).max(Instant::now());
    }
}

/// Kills a check's process group on drop unless disarmed: a check dropped
/// while running (the task ends) leaves no process behind. Disarmed once the
/// group leader is reaped, after which its pid may be reused.
struct GroupGuard(Option<nix::unistd::Pid>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(group) = self.0.take() {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the check once through `shell`: `Ok` if it exited 0, else the reason.
async fn run_check(shell: &str, check: &HealthCheck, node_id: u64) -> Result<(), String> {
    let deadline = Instant::now() + check.timeout;
    let mut child = tokio::process::Command::new(shell)
        .arg("-c")
        .arg(&check.command)
        .env("GOOSE_NODE_ID", node_id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so a timeout kills the check's children too.
        .process_group(0)
        .spawn()
        .map_err(|error| format!("cannot start {shell}: {error}"))?;
    let mut guard = GroupGuard(
        child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(nix::unistd::Pid::from_raw),
    );
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut tail = Tail::new(HEALTH_OUTPUT_TAIL_BYTES);
    let outcome = {
        let output = collect_output(stdout, stderr, &mut tail);
        tokio::pin!(output);
        let mut output_done = false;
        let outcome = loop {
            tokio::select! {
                status = child.wait() => break Some(status),
                () = &mut output, if !output_done => output_done = true,
                () = tokio::time::sleep_until(deadline) => break None,
            }
        };
        match outcome {
            Some(_) => {
                guard.disarm();
                if !output_done {
                    let until = deadline.min(Instant::now() + HEALTH_OUTPUT_DRAIN);
                    let _ = tokio::time::timeout_at(until, &mut output).await;
                }
            }
            None => {
                guard.kill();
                // SIGKILL to the leader too (already sent) and reap it.
                let _ = child.kill().await;
            }
        }
        outcome
    };
    let output = tail.text();
    let with_output = |what: String| {
        if output.is_empty() {
            what
        } else {
            format!("{what}: {output}")
        }
    };
    match outcome {
        None => Err(with_output(format!(
            "timed out after {} ms",
            check.timeout.as_millis()
        ))),
        Some(Ok(status)) if status.success() => Ok(()),
        Some(Ok(status)) => Err(with_output(describe(status))),
        Some(Err(error)) => Err(format!("cannot wait for {shell}: {error}")),
    }
}

/// `exit status N` or `killed by signal N (NAME)`.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("killed by signal {signal} ({name})"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => format!("failed: {status}"),
    }
}

/// Reads both pipes to their end in chunks, keeping only the tail.
async fn collect_output(
    mut stdout: Option<impl AsyncRead + Unpin>,
    mut stderr: Option<impl AsyncRead + Unpin>,
    tail: &mut Tail,
) {
    let mut out_chunk = vec![0; HEALTH_OUTPUT_CHUNK_BYTES];
    let mut err_chunk = vec![0; HEALTH_OUTPUT_CHUNK_BYTES];
    while stdout.is_some() || stderr.is_some() {
        tokio::select! {
            read = read_some(&mut stdout, &mut out_chunk), if stdout.is_some() => match read {
                Ok(n) if n > 0 => tail.push(&out_chunk[..n]),
                _ => stdout = None,
            },
            read = read_some(&mut stderr, &mut err_chunk), if stderr.is_some() => match read {
                Ok(n) if n > 0 => tail.push(&err_chunk[..n]),
                _ => stderr = None,
            },
        }
    }
}

async fn read_some(
    pipe: &mut Option<impl AsyncRead + Unpin>,
    chunk: &mut [u8],
) -> std::io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(chunk).await,
        None => std::future::pending().await,
    }
}

/// The last `limit` bytes of a stream.
struct Tail {
    bytes: Vec<u8>,
    limit: usize,
    /// Whether bytes were discarded from the front.
    cut: bool,
}

impl Tail {
    fn new(limit: usize) -> Tail {
        Tail {
            bytes: Vec::with_capacity(limit),
            limit,
            cut: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        if data.len() >= self.limit {
            self.cut |= data.len() > self.limit || !self.bytes.is_empty();
            self.bytes.clear();
            self.bytes
                .extend_from_slice(&data[data.len() - self.limit..]);
            return;
        }
        self.bytes.extend_from_slice(data);
        if self.bytes.len() > self.limit {
            let excess = self.bytes.len() - self.limit;
            self.bytes.drain(..excess);
            self.cut = true;
        }
    }

    /// The tail as one trimmed line: control characters and runs of white
    /// space become one space; `...` marks a cut.
    fn text(&self) -> String {
        let mut bytes = &self.bytes[..];
        if self.cut {
            // Do not start in the middle of a UTF-8 character.
            while let [first, rest @ ..] = bytes {
                if first & 0b1100_0000 != 0b1000_0000 {
                    break;
                }
                bytes = rest;
            }
        }
        let text: String = String::from_utf8_lossy(bytes)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if self.cut && !line.is_empty() {
            format!("...{line}")
        } else {
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(reason: &str) -> Result<(), String> {
        Err(reason.to_string())
    }

    #[test]
    fn the_verdict_is_unknown_until_the_first_result_which_decides_at_once() {
        let verdict = Verdict::new(3, 2);
        assert_eq!(verdict.state(), HealthState::Unknown);
        assert!(!verdict.state().is_healthy());
        assert_eq!(verdict.report(), HealthReport::UNKNOWN);

        let mut verdict = Verdict::new(3, 2);
        assert_eq!(verdict.record(Ok(())), Some(HealthState::Healthy));
        assert_eq!(verdict.reason(), None);

        let mut verdict = Verdict::new(3, 2);
        assert_eq!(verdict.record(fail("down")), Some(HealthState::Unhealthy));
        assert_eq!(verdict.reason(), Some("down"));
    }

    #[test]
    fn a_healthy_verdict_falls_after_fall_failures_in_a_row() {
        let mut verdict = Verdict::new(3, 2);
        verdict.record(Ok(()));
        assert_eq!(verdict.record(fail("a")), None);
        assert_eq!(verdict.record(fail("b")), None);
        assert_eq!(verdict.state(), HealthState::Healthy);
        assert_eq!(verdict.reason(), None, "no reason while healthy");
        assert_eq!(verdict.record(fail("c")), Some(HealthState::Unhealthy));
        assert_eq!(verdict.reason(), Some("c"), "the last failure");
    }

    #[test]
    fn an_unhealthy_verdict_rises_after_rise_passes_in_a_row() {
        let mut verdict = Verdict::new(3, 2);
        verdict.record(fail("x"));
        assert_eq!(verdict.record(Ok(())), None);
        assert_eq!(verdict.state(), HealthState::Unhealthy);
        assert_eq!(verdict.reason(), Some("x"), "kept while still unhealthy");
        assert_eq!(verdict.record(Ok(())), Some(HealthState::Healthy));
        assert_eq!(verdict.report().reason, None, "cleared once healthy");
    }

    #[test]
    fn interleaved_results_reset_the_streak() {
        let mut verdict = Verdict::new(3, 2);
        verdict.record(Ok(()));
        // Two failures, a pass, two failures: never three in a row.
        for result in [fail("1"), fail("2"), Ok(()), fail("3"), fail("4"), Ok(())] {
            assert_eq!(verdict.record(result), None);
        }
        assert_eq!(verdict.state(), HealthState::Healthy);
        for reason in ["5", "6"] {
            verdict.record(fail(reason));
        }
        assert_eq!(verdict.record(fail("7")), Some(HealthState::Unhealthy));
        // Pass, fail, pass: never two passes in a row; the reason follows the last failure.
        assert_eq!(verdict.record(Ok(())), None);
        assert_eq!(verdict.record(fail("8")), None);
        assert_eq!(verdict.reason(), Some("8"));
        assert_eq!(verdict.record(Ok(())), None);
        assert_eq!(verdict.state(), HealthState::Unhealthy);
        assert_eq!(verdict.record(Ok(())), Some(HealthState::Healthy));
        assert_eq!(verdict.reason(), None);
    }

    #[test]
    fn fall_and_rise_of_one_flip_on_every_change() {
        let mut verdict = Verdict::new(1, 1);
        assert_eq!(verdict.record(Ok(())), Some(HealthState::Healthy));
        assert_eq!(verdict.record(fail("a")), Some(HealthState::Unhealthy));
        assert_eq!(verdict.record(Ok(())), Some(HealthState::Healthy));
        assert_eq!(Verdict::new(0, 0), Verdict::new(1, 1), "0 counts as 1");
    }

    #[test]
    fn the_tail_keeps_the_last_bytes_as_one_line() {
        let mut tail = Tail::new(8);
        tail.push(b"  one\n");
        assert_eq!(tail.text(), "one");
        tail.push(b"two\tthree\n");
        assert_eq!(tail.text(), "...o three");
        let mut tail = Tail::new(4);
        tail.push("aé".repeat(10).as_bytes());
        assert_eq!(tail.text(), "...aé", "no broken character at the cut");
    }

    fn check(command: &str) -> HealthCheck {
        HealthCheck {
            interval: Duration::from_millis(20),
            ..HealthCheck::new(command)
        }
    }

    /// Waits (generously) for a report that satisfies `wanted`.
    async fn wait_for(
        receiver: &mut watch::Receiver<HealthReport>,
        wanted: impl FnMut(&HealthReport) -> bool,
    ) -> HealthReport {
        let result = tokio::time::timeout(Duration::from_secs(20), receiver.wait_for(wanted))
            .await
            .map(|found| found.map(|report| report.clone()));
        match result {
            Ok(Ok(report)) => report,
            Ok(Err(_)) => panic!("the health task ended"),
            Err(_) => panic!("no such report in time: {:?}", *receiver.borrow()),
        }
    }

    async fn first_verdict(check: HealthCheck) -> HealthReport {
        let mut receiver = spawn(check, 7);
        wait_for(&mut receiver, |r| r.state != HealthState::Unknown).await
    }

    #[tokio::test]
    async fn a_passing_check_is_healthy_and_the_report_then_stays_put() {
        let mut receiver = spawn(check("test \"$GOOSE_NODE_ID\" = 7"), 7);
        let report = wait_for(&mut receiver, |r| r.state != HealthState::Unknown).await;
        assert_eq!(
            report,
            HealthReport {
                state: HealthState::Healthy,
                reason: None
            }
        );
        receiver.mark_unchanged();
        // Many more passing runs at 20 ms: the receiver never sees a change.
        let changed = tokio::time::timeout(Duration::from_millis(300), receiver.changed()).await;
        assert!(changed.is_err(), "no change without a new report");
    }

    #[tokio::test]
    async fn a_failing_check_is_unhealthy_with_its_exit_status_and_output() {
        let report = first_verdict(check("exit 3")).await;
        assert_eq!(report.state, HealthState::Unhealthy);
        assert_eq!(report.reason.as_deref(), Some("exit status 3"));

        let report = first_verdict(check("echo broken; echo more >&2; exit 1")).await;
        assert_eq!(report.state, HealthState::Unhealthy);
        let reason = report.reason.unwrap();
        assert!(reason.starts_with("exit status 1: "), "{reason}");
        assert!(reason.contains("broken"), "{reason}");
        assert!(reason.contains("more"), "stderr too: {reason}");
        assert!(!reason.contains('\n'), "one line: {reason}");
    }

    #[tokio::test]
    async fn a_check_killed_by_a_signal_has_failed() {
        let report = first_verdict(check("kill -9 $$")).await;
        assert_eq!(report.state, HealthState::Unhealthy);
        assert_eq!(
            report.reason.as_deref(),
            Some("killed by signal 9 (SIGKILL)")
        );
    }

    #[tokio::test]
    async fn a_check_that_cannot_start_has_failed() {
        let result = run_check("/nonexistent/for-sure/sh", &check("true"), 1).await;
        let reason = result.unwrap_err();
        assert!(
            reason.starts_with("cannot start /nonexistent/for-sure/sh: "),
            "{reason}"
        );
    }

    /// Whether process `pid` is gone (or a zombie awaiting its reaper).
    fn is_gone(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => {
                let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
                matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X'))
            }
        }
    }

    /// Asserts that every process listed in `pids` goes away in time.
    async fn assert_gone(pids: &str) {
        for pid in pids.split_whitespace() {
            let pid: u32 = pid.parse().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !is_gone(pid) && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(is_gone(pid), "process {pid} of the check was killed");
        }
    }

    #[tokio::test]
    async fn a_check_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let command = format!(
            "sleep 30 & echo $$ $! > {}.tmp; mv {0}.tmp {0}; wait",
            pids.display()
        );
        let started = std::time::Instant::now();
        let report = first_verdict(HealthCheck {
            timeout: Duration::from_millis(1000),
            ..check(&command)
        })
        .await;
        assert_eq!(report.state, HealthState::Unhealthy);
        assert_eq!(report.reason.as_deref(), Some("timed out after 1000 ms"));
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_gone(&std::fs::read_to_string(&pids).expect("the check ran")).await;
    }

    #[tokio::test]
    async fn a_huge_output_keeps_only_its_tail() {
        let report = first_verdict(HealthCheck {
            timeout: Duration::from_secs(20),
            ..check("yes | head -c 10000000; exit 1")
        })
        .await;
        let reason = report.reason.unwrap();
        assert!(reason.starts_with("exit status 1: ...y y y"), "{reason}");
        assert!(
            reason.len() <= HEALTH_OUTPUT_TAIL_BYTES + 32,
            "bounded: {} bytes",
            reason.len()
        );
    }

    #[tokio::test]
    async fn a_file_check_flips_as_the_file_comes_and_goes_respecting_fall_and_rise() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("healthy");
        let log = dir.path().join("log");
        std::fs::write(&flag, "").unwrap();
        // Each run logs its outcome, so the test can count the runs in a row.
        let command = format!(
            "if test -f {flag}; then echo pass >> {log}; else echo fail >> {log}; exit 1; fi",
            flag = flag.display(),
            log = log.display()
        );
        let mut receiver = spawn(check(&command), 1);
        // The trailing run of `outcome` lines in the log.
        let trailing = |outcome: &str| {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines()
                .rev()
                .take_while(|line| *line == outcome)
                .count()
        };
        wait_for(&mut receiver, |r| r.state == HealthState::Healthy).await;

        std::fs::remove_file(&flag).unwrap();
        let report = wait_for(&mut receiver, |r| r.state != HealthState::Healthy).await;
        assert_eq!(report.state, HealthState::Unhealthy);
        assert_eq!(report.reason.as_deref(), Some("exit status 1"));
        assert!(
            trailing("fail") >= 3,
            "unhealthy only after fall = 3 failures"
        );

        std::fs::write(&flag, "").unwrap();
        let report = wait_for(&mut receiver, |r| r.state != HealthState::Unhealthy).await;
        assert_eq!(report.state, HealthState::Healthy);
        assert_eq!(report.reason, None);
        assert!(trailing("pass") >= 2, "healthy only after rise = 2 passes");
    }

    #[tokio::test]
    async fn the_task_ends_when_every_receiver_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pids");
        let command = format!(
            "sleep 30 & echo $$ $! > {0}.tmp; mv {0}.tmp {0}; wait",
            pid_file.display()
        );
        let receiver = spawn(
            HealthCheck {
                timeout: Duration::from_secs(60),
                ..check(&command)
            },
            1,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let pids = loop {
            if let Ok(text) = std::fs::read_to_string(&pid_file) {
                break text;
            }
            assert!(std::time::Instant::now() < deadline, "the check started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        drop(receiver);
        assert_gone(&pids).await;
    }
}
