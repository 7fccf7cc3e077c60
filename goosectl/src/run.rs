//! `run [--grace D] [--repeat] -- CMD [ARG...]`: run CMD only while this
//! node is the goose (design.md §7).
//!
//! The runner registers with the local daemon (`Request::Run`, with its
//! grace) and gets an update whenever the role, term, leader, lease end or
//! release changes. A runner's promise runs to the node's lease end: no
//! other node can be elected before it. The [`Discipline`] keeps the job
//! inside that promise: it starts CMD only under a promise, sends SIGTERM
//! as soon as the role is lost (or a renewal is overdue, or the daemon is
//! gone), and SIGKILL no later than the promise minus [`KILL_MARGIN`],
//! whatever the grace. On a voluntary handoff the daemon asks the runner to
//! release the role and holds its lease meanwhile: the job gets its grace
//! (within the lease held), and once it is gone the runner answers
//! `Released`, upon which the daemon hands over. Only a paused runner
//! escapes this; fence with `GOOSE_TERM`.

use crate::client::{Client, Releaser};
use crate::error::CtlError;
use goose_common::answer::{self, boottime};
use goose_common::control::{NodeStatus, RunnerUpdate, RUNNER_GRACE_MAX};
use goose_common::{NodeId, Term, Timestamp};
use nix::sys::signal::{killpg, Signal};
use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, TimerSetTimeFlags};
use nix::sys::timerfd::{ClockId as TimerClock, TimerFd, TimerFlags};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::Duration;

/// How long before the promise ends the job is killed at the latest: room
/// for SIGKILL to be delivered and the job to be gone before any other node
/// may be the goose.
pub const KILL_MARGIN: Duration = Duration::from_millis(5);

/// The exit code when the job was stopped because this node stopped being
/// the goose (EX_TEMPFAIL: run again to wait for the role).
pub const EXIT_GOOSE_MOVED: u8 = 75;

/// With `--repeat`, the least time between two starts of a job that ended
/// by itself, so a job that fails at once does not spin.
pub const RERUN_DELAY: Duration = Duration::from_secs(1);

/// The most messages waiting to be written to stderr; more are dropped.
const LOG_MESSAGES_MAX: usize = 64;

/// How long to wait before reconnecting to a daemon that went away; it
/// doubles after each failed attempt, up to [`RECONNECT_DELAY_MAX`].
pub const RECONNECT_DELAY: Duration = Duration::from_millis(200);

/// The longest wait between two attempts to reconnect.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(5);

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// How long the job gets to exit after SIGTERM before SIGKILL; never
    /// past the node's promise (e.g. 5s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_grace)]
    grace: Duration,
    /// Wait to become the goose again and rerun CMD, instead of exiting.
    #[arg(long)]
    repeat: bool,
    /// The command and its arguments, run directly (no shell).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    command: Vec<OsString>,
}

fn parse_grace(text: &str) -> Result<Duration, String> {
    let grace = goose_common::partition::parse_duration(text).map_err(|error| error.to_string())?;
    if grace > RUNNER_GRACE_MAX {
        return Err(format!(
            "the grace is at most {} s",
            RUNNER_GRACE_MAX.as_secs()
        ));
    }
    Ok(grace)
}

/// What the discipline tells the runner to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the job with this fencing token.
    Start {
        /// The term: `GOOSE_TERM`.
        term: Term,
        /// The leader: `GOOSE_LEADER_ID`.
        leader: Option<NodeId>,
    },
    /// Send SIGTERM to the job's process group.
    Terminate,
    /// Send SIGKILL to the job's process group.
    Kill,
}

/// How the job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// By itself, while this node was the goose.
    ByItself,
    /// Stopped because this node stopped being the goose (or the runner was
    /// told to stop).
    Stopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No job runs.
    Idle,
    /// The job runs under a promise until `lease_until` (CLOCK_BOOTTIME).
    Running {
        term: Term,
        lease_until: Timestamp,
        renewed_at: Timestamp,
    },
    /// The job of `term` was sent SIGTERM at `since`; it is killed after the
    /// grace, and before the promise (or the lease held) `until` ends.
    Stopping {
        term: Term,
        since: Timestamp,
        until: Timestamp,
        killed: bool,
    },
}

/// The rules that keep a job inside the promise; pure, times are
/// `CLOCK_BOOTTIME` readings.
#[derive(Debug)]
pub struct Discipline {
    grace: Duration,
    phase: Phase,
    /// The handoff that asked for a release, answered once no job runs.
    release: Option<u64>,
    /// The last handoff answered: a release is answered once.
    answered: Option<u64>,
}

impl Discipline {
    /// No job runs yet.
    pub fn new(grace: Duration) -> Discipline {
        Discipline {
            grace,
            phase: Phase::Idle,
            release: None,
            answered: None,
        }
    }

    /// Whether a job is running or stopping.
    pub fn has_job(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// An update from the daemon, judged at `now`. `may_start` is false
    /// while a rerun must wait.
    pub fn on_update(
        &mut self,
        update: &RunnerUpdate,
        now: Timestamp,
        may_start: bool,
    ) -> Option<Action> {
        let status = &update.status;
        let Some(release) = update.release else {
            // No handoff waits (or it is over): nothing to answer.
            self.release = None;
            return self.on_status(status, now, may_start);
        };
        // A voluntary handoff: stop the job, which may use its grace within
        // the lease the node still holds, and answer once it is gone.
        if self.answered != Some(release.handoff) {
            self.release = Some(release.handoff);
        }
        let hold = release.hold_until_ns.map(Timestamp);
        match self.phase {
            Phase::Idle => None,
            Phase::Running {
                term, lease_until, ..
            } => {
                let held = hold.filter(|_| status.term == term);
                Some(self.begin_stop(now, held.map_or(lease_until, |h| h.max(lease_until))))
            }
            Phase::Stopping {
                term,
                since,
                until,
                killed,
            } => {
                if let Some(hold) = hold.filter(|_| status.term == term) {
                    self.phase = Phase::Stopping {
                        term,
                        since,
                        until: until.max(hold),
                        killed,
                    };
                }
                None
            }
        }
    }

    /// An update without a release: the role, term and lease end.
    fn on_status(
        &mut self,
        status: &NodeStatus,
        now: Timestamp,
        may_start: bool,
    ) -> Option<Action> {
        let goose = answer::decide_status(status, now).is_goose();
        let lease_until = status.lease_until_ns.map(Timestamp);
        match self.phase {
            Phase::Idle => {
                let lease_until = lease_until.filter(|_| goose && may_start)?;
                if now >= stop_by(lease_until) {
                    return None; // Too little of the promise is left to start.
                }
                self.phase = Phase::Running {
                    term: status.term,
                    lease_until,
                    renewed_at: now,
                };
                Some(Action::Start {
                    term: status.term,
                    leader: status.leader_id,
                })
            }
            Phase::Running {
                term,
                lease_until: held,
                ..
            } => match lease_until {
                // A goose of the same term renews the promise; a new term
                // means the job's fencing token is stale, so it stops.
                Some(until) if goose && status.term == term => {
                    self.phase = Phase::Running {
                        term,
                        lease_until: held.max(until),
                        renewed_at: now,
                    };
                    None
                }
                _ => Some(self.begin_stop(now, held)),
            },
            Phase::Stopping { .. } => None,
        }
    }

    /// The daemon is gone (the stream ended or failed): stop at once. A
    /// release it asked for needs no answer any more.
    pub fn on_daemon_gone(&mut self, now: Timestamp) -> Option<Action> {
        self.release = None;
        self.stop(now)
    }

    /// The runner was asked to stop (SIGTERM or SIGINT of goosectl).
    pub fn on_stop_requested(&mut self, now: Timestamp) -> Option<Action> {
        self.stop(now)
    }

    fn stop(&mut self, now: Timestamp) -> Option<Action> {
        match self.phase {
            Phase::Running { lease_until, .. } => Some(self.begin_stop(now, lease_until)),
            Phase::Idle | Phase::Stopping { .. } => None,
        }
    }

    /// Time passed: a renewal overdue starts the stop, the kill deadline kills.
    pub fn on_tick(&mut self, now: Timestamp) -> Option<Action> {
        let due = self.next_wake().is_some_and(|wake| now >= wake);
        match self.phase {
            Phase::Running { lease_until, .. } if due => Some(self.begin_stop(now, lease_until)),
            Phase::Stopping {
                term,
                since,
                until,
                killed: false,
            } if due => {
                self.phase = Phase::Stopping {
                    term,
                    since,
                    until,
                    killed: true,
                };
                Some(Action::Kill)
            }
            _ => None,
        }
    }

    /// The job's process ended.
    pub fn on_exit(&mut self) -> Ended {
        let ended = match self.phase {
            Phase::Stopping { .. } => Ended::Stopped,
            Phase::Idle | Phase::Running { .. } => Ended::ByItself,
        };
        self.phase = Phase::Idle;
        ended
    }

    /// The handoff to answer `Released` now: one asked, and no job runs.
    pub fn take_release(&mut self) -> Option<u64> {
        if self.phase == Phase::Idle {
            let handoff = self.release.take();
            self.answered = handoff.or(self.answered);
            handoff
        } else {
            None
        }
    }

    /// When [`Discipline::on_tick`] must run next, if ever. While running:
    /// when a renewal is overdue, which leaves the job half of what was left
    /// of the promise at the last renewal (at most the grace) to exit. While
    /// stopping: the kill deadline.
    pub fn next_wake(&self) -> Option<Timestamp> {
        match self.phase {
            Phase::Idle | Phase::Stopping { killed: true, .. } => None,
            Phase::Running {
                lease_until,
                renewed_at,
                ..
            } => {
                let stop_by = stop_by(lease_until);
                let window = (stop_by.since(renewed_at) / 2).min(self.grace);
                Some(Timestamp(stop_by.as_nanos().saturating_sub(nanos(window))))
            }
            Phase::Stopping { since, until, .. } => Some(since.add(self.grace).min(stop_by(until))),
        }
    }

    /// SIGTERM now; SIGKILL after the grace, and never past `until`.
    fn begin_stop(&mut self, now: Timestamp, until: Timestamp) -> Action {
        let term = match self.phase {
            Phase::Running { term, .. } | Phase::Stopping { term, .. } => term,
            Phase::Idle => Term(0),
        };
        self.phase = Phase::Stopping {
            term,
            since: now,
            until,
            killed: false,
        };
        Action::Terminate
    }
}

/// The instant by which the job must be gone under a promise to `lease_until`.
fn stop_by(lease_until: Timestamp) -> Timestamp {
    Timestamp(lease_until.as_nanos().saturating_sub(nanos(KILL_MARGIN)))
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// What the runner's threads report to its loop.
enum Report {
    /// An update from the daemon.
    Update(RunnerUpdate),
    /// The daemon's stream ended or failed.
    Gone(String),
    /// The job's process ended.
    Exited(ExitStatus),
    /// goosectl itself got SIGTERM, SIGINT or SIGHUP.
    Signal(i32),
    /// The [`Alarm`] went off (or an earlier setting of it did).
    Wake,
}

/// The loop's timer, on `CLOCK_BOOTTIME` like every deadline it keeps: a
/// timerfd armed at an absolute instant, read by a thread that reports
/// [`Report::Wake`]. Unlike a wait on the monotonic clock, it also counts a
/// suspend of the host, so a runner resumed after its promise ended kills
/// its job at once instead of sleeping out the rest of its wait.
struct Alarm(std::sync::Arc<TimerFd>);

impl Alarm {
    fn start(reports: mpsc::Sender<Report>) -> Result<Alarm, CtlError> {
        let timer = TimerFd::new(TimerClock::CLOCK_BOOTTIME, TimerFlags::TFD_CLOEXEC)
            .map_err(|error| CtlError::Clock(error.into()))?;
        let timer = std::sync::Arc::new(timer);
        let waiting = std::sync::Arc::clone(&timer);
        std::thread::Builder::new()
            .name("alarm".into())
            .spawn(move || {
                while waiting.wait().is_ok() {
                    if reports.send(Report::Wake).is_err() {
                        return;
                    }
                }
            })
            .map_err(CtlError::Output)?;
        Ok(Alarm(timer))
    }

    /// Goes off at `wake` (at once if it has passed), or never.
    fn set(&self, wake: Option<Timestamp>) -> Result<(), CtlError> {
        let result = match wake {
            // Zero would disarm the timer: the first nanosecond has passed too.
            Some(wake) => self.0.set(
                Expiration::OneShot(TimeSpec::from_duration(Duration::from_nanos(
                    wake.as_nanos().max(1),
                ))),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            ),
            None => self.0.unset(),
        };
        result.map_err(|error| CtlError::Clock(error.into()))
    }
}

/// Runs the command of `args` under the discipline until it ends (or for
/// ever with `--repeat`), and returns the exit code.
pub fn run(context: &crate::Context, args: &RunArgs) -> Result<u8, CtlError> {
    let (reports, inbox) = mpsc::channel();
    // Reports already received, to be handled in order after the newest
    // update (see `newest_first`).
    let mut pending: std::collections::VecDeque<Report> = std::collections::VecDeque::new();
    let log = Log::start();
    watch_signals(reports.clone())?;
    let mut connected = connect(context, args.grace, &reports);
    let mut reconnect_delay = RECONNECT_DELAY;
    if let Err(error) = &connected {
        if !args.repeat {
            return Err(CtlError::Invalid(error.clone()));
        }
        log.say(format!("{error}; retrying"));
    }
    let mut discipline = Discipline::new(args.grace);
    let mut job: Option<u32> = None;
    let mut last_status: Option<RunnerUpdate> = None;
    let mut rerun_after = Timestamp(0);
    let mut stop_requested = false;
    let alarm = Alarm::start(reports.clone())?;
    loop {
        let now = clock()?;
        let wake = match (discipline.next_wake(), connected.is_err()) {
            (Some(wake), _) => Some(wake),
            (None, true) => Some(now.add(reconnect_delay)),
            (None, false) if job.is_none() && last_status.is_some() && now < rerun_after => {
                Some(rerun_after)
            }
            (None, false) => None,
        };
        let report = match pending.pop_front() {
            Some(report) => Some(report),
            None => {
                alarm.set(wake)?;
                match inbox.recv() {
                    Ok(Report::Wake) | Err(_) => None,
                    Ok(report) => newest_first(Some(report), &inbox, &mut pending),
                }
            }
        };
        let now = clock()?;
        let mut actions = Vec::new();
        match report {
            Some(Report::Update(status)) => {
                reconnect_delay = RECONNECT_DELAY;
                // Nothing starts with another report (a lost daemon, a
                // signal) already waiting behind this update.
                actions.extend(discipline.on_update(
                    &status,
                    now,
                    !stop_requested && now >= rerun_after && pending.is_empty(),
                ));
                last_status = Some(status);
            }
            Some(Report::Gone(why)) => {
                last_status = None;
                actions.extend(discipline.on_daemon_gone(now));
                if !args.repeat && !discipline.has_job() {
                    return Err(CtlError::Invalid(format!("lost goosed: {why}")));
                }
                log.say(format!("lost goosed ({why}); the job, if any, is stopped"));
                connected = Err(why);
            }
            Some(Report::Exited(status)) => {
                job = None;
                let ended = discipline.on_exit();
                // Before exiting, too: the daemon's handoff waits for it.
                answer_release(&mut discipline, &mut connected, &log);
                let code = exit_code(status);
                if stop_requested {
                    return Ok(0);
                }
                match (ended, args.repeat) {
                    (Ended::ByItself, false) => return Ok(code),
                    (Ended::Stopped, false) => return Ok(EXIT_GOOSE_MOVED),
                    (Ended::ByItself, true) => {
                        log.say(format!("the job exited with {code}; rerunning while goose"));
                        rerun_after = now.add(RERUN_DELAY);
                    }
                    (Ended::Stopped, true) => {}
                }
            }
            Some(Report::Signal(signal)) => {
                log.say(format!("got signal {signal}; stopping the job, if any"));
                stop_requested = true;
                actions.extend(discipline.on_stop_requested(now));
                if !discipline.has_job() {
                    return Ok(0);
                }
            }
            Some(Report::Wake) | None => {
                if connected.is_err() && !discipline.has_job() {
                    connected = connect(context, args.grace, &reports);
                    // Reset only by an update: a daemon that accepts and then
                    // refuses (busy, another version) is retried ever slower.
                    reconnect_delay = (reconnect_delay * 2).min(RECONNECT_DELAY_MAX);
                }
                // A rerun that waited for its delay starts on the latest update.
                if job.is_none() && !stop_requested && now >= rerun_after {
                    if let Some(status) = &last_status {
                        actions.extend(discipline.on_update(status, now, true));
                    }
                }
            }
        }
        // Whatever woke the loop, a deadline that has passed is acted on.
        actions.extend(discipline.on_tick(now));
        for action in actions {
            match action {
                Action::Start { term, leader } => {
                    let node = last_status
                        .as_ref()
                        .map_or(NodeId(0), |update| update.status.id);
                    match start(&args.command, node, term, leader, reports.clone()) {
                        Ok(child) => job = Some(child),
                        Err(error) => {
                            discipline.on_exit();
                            return Err(error);
                        }
                    }
                }
                Action::Terminate => {
                    if let Some(release) = last_status.as_ref().and_then(|u| u.release) {
                        log.say(format!(
                            "the goose hands over ({}): stopping the job",
                            release.reason.as_str()
                        ));
                    }
                    signal_job(job, Signal::SIGTERM, &log);
                }
                Action::Kill => signal_job(job, Signal::SIGKILL, &log),
            }
        }
        answer_release(&mut discipline, &mut connected, &log);
    }
}

/// Answers a handoff's release request once no job runs. The write may
/// block (up to the socket's write timeout), which is harmless: there is
/// no job to signal. A failed write shows as the stream ending.
fn answer_release(
    discipline: &mut Discipline,
    connected: &mut Result<Releaser, String>,
    log: &Log,
) {
    let (Some(handoff), Ok(releaser)) = (discipline.take_release(), connected.as_mut()) else {
        return;
    };
    match releaser.released(handoff) {
        Ok(()) => log.say(format!(
            "no job runs: released the role for handoff {handoff}"
        )),
        Err(error) => log.say(format!("cannot answer handoff {handoff}: {error}")),
    }
}

/// An update is acted on only if it is the newest: any other update already
/// waiting replaces it (so a job never starts on a goose update with the
/// duck update behind it), and the other reports behind it wait their turn
/// in `pending`, in order.
fn newest_first(
    report: Option<Report>,
    inbox: &mpsc::Receiver<Report>,
    pending: &mut std::collections::VecDeque<Report>,
) -> Option<Report> {
    let Some(Report::Update(mut newest)) = report else {
        return report;
    };
    while let Ok(next) = inbox.try_recv() {
        match next {
            Report::Update(status) => newest = status,
            other => {
                pending.push_back(other);
                break;
            }
        }
    }
    Some(Report::Update(newest))
}

fn clock() -> Result<Timestamp, CtlError> {
    boottime().map_err(CtlError::Clock)
}

/// Registers with the daemon and forwards its updates from a thread; the
/// returned side answers release requests.
fn connect(
    context: &crate::Context,
    grace: Duration,
    reports: &mpsc::Sender<Report>,
) -> Result<Releaser, String> {
    let mut client = Client::connect(&context.socket).map_err(|error| error.to_string())?;
    let releaser = client.start_run(grace).map_err(|error| error.to_string())?;
    let reports = reports.clone();
    std::thread::spawn(move || loop {
        match client.next_runner_update() {
            Ok(update) => {
                if reports.send(Report::Update(update)).is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = reports.send(Report::Gone(error.to_string()));
                return;
            }
        }
    });
    Ok(releaser)
}

/// Forwards SIGTERM, SIGINT and SIGHUP of goosectl to the loop.
fn watch_signals(reports: mpsc::Sender<Report>) -> Result<(), CtlError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if reports.send(Report::Signal(signal)).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Starts the job: no shell, its own process group, the goose's environment,
/// and SIGKILL when goosectl dies; a thread reports its exit.
fn start(
    command: &[OsString],
    node: NodeId,
    term: Term,
    leader: Option<NodeId>,
    reports: mpsc::Sender<Report>,
) -> Result<u32, CtlError> {
    let (program, arguments) = split_command(command)?;
    // CMD runs under a supervisor (this program again, `__supervise`),
    // the leader of the job's process group: when goosectl dies, even by
    // SIGKILL, the supervisor gets SIGUSR2 and kills the whole group, so
    // none of the job (CMD's own workers included) outlives its runner.
    let supervisor = std::env::current_exe().map_err(CtlError::Output)?;
    let mut builder = Command::new(supervisor);
    builder
        .arg(SUPERVISE_COMMAND)
        .arg("--")
        .arg(program)
        .args(arguments)
        .env("GOOSE_NODE_ID", node.0.to_string())
        .env("GOOSE_ROLE", "goose")
        .env("GOOSE_TERM", term.0.to_string())
        .env(
            "GOOSE_LEADER_ID",
            leader.map_or(String::new(), |leader| leader.0.to_string()),
        )
        .process_group(0);
    die_with_parent(&mut builder, Signal::SIGUSR2);
    let mut child = spawn(&mut builder, program)?;
    let pid = child.id();
    // The waiting thread owns the child; signals go to its process group
    // by pid, so the loop never needs the handle.
    std::thread::Builder::new()
        .name("job waiter".into())
        .spawn(move || {
            // Wait for CMD to end without reaping it: while it is a zombie
            // its pid (the group's id) cannot be reused, so what is left of
            // its process group (children it did not take with it) can be
            // killed by that id, at once. Nothing of the job outlives CMD.
            if let Ok(raw) = i32::try_from(pid) {
                let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
                if waitid(Id::Pid(Pid::from_raw(raw)), flags).is_ok() {
                    let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
                }
            }
            let status = child
                .wait()
                .unwrap_or_else(|_| ExitStatus::from_raw(1 << 8));
            let _ = reports.send(Report::Exited(status));
        })
        .map_err(CtlError::Output)?;
    Ok(pid)
}

/// goosectl run's messages go to stderr from a thread of their own: a
/// stalled stderr (a full pipe, a stuck journald, a terminal on Ctrl-S)
/// must never delay a signal to the job. Messages that do not fit are
/// dropped; write errors are ignored.
#[derive(Clone)]
struct Log(mpsc::SyncSender<String>);

impl Log {
    fn start() -> Log {
        let (sender, messages) = mpsc::sync_channel::<String>(LOG_MESSAGES_MAX);
        std::thread::spawn(move || {
            use std::io::Write;
            for message in messages {
                let _ = writeln!(std::io::stderr(), "goosectl run: {message}");
            }
        });
        Log(sender)
    }

    fn say(&self, message: String) {
        let _ = self.0.try_send(message);
    }
}

/// The hidden subcommand that supervises a job.
pub const SUPERVISE_COMMAND: &str = "__supervise";

/// `goosectl __supervise -- CMD [ARG...]`, started by `run` as the leader
/// of the job's process group: runs CMD in that group and exits with its
/// status (128 + the signal if a signal ended it). SIGTERM, SIGINT and
/// SIGHUP are for CMD (the whole group gets them); the supervisor waits on.
/// SIGUSR2 is its runner's death (`PR_SET_PDEATHSIG`): it then kills the
/// whole group, itself included. What CMD leaves behind when it exits,
/// the runner kills by the group's id while the supervisor is a zombie.
pub fn supervise(command: &[OsString]) -> Result<u8, CtlError> {
    use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR2};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR2])?;
    let (program, arguments) = split_command(command)?;
    let mut builder = Command::new(program);
    builder.args(arguments);
    die_with_parent(&mut builder, Signal::SIGKILL);
    let mut child = spawn(&mut builder, program)?;
    for signal in signals.forever() {
        match signal {
            SIGUSR2 => {
                let _ = killpg(nix::unistd::getpgrp(), Signal::SIGKILL);
            }
            SIGCHLD => {
                if let Some(status) = child.try_wait()? {
                    return Ok(exit_code(status));
                }
            }
            _ => {} // For CMD, which got it too.
        }
    }
    Ok(1)
}

/// CMD and its arguments.
fn split_command(command: &[OsString]) -> Result<(&OsString, &[OsString]), CtlError> {
    command
        .split_first()
        .ok_or_else(|| CtlError::Invalid("run needs a command after --".into()))
}

/// Starts `builder`, naming `program` if it cannot be started.
fn spawn(builder: &mut Command, program: &OsString) -> Result<std::process::Child, CtlError> {
    builder.spawn().map_err(|error| {
        CtlError::Invalid(format!(
            "cannot start {}: {error}",
            program.to_string_lossy()
        ))
    })
}

/// Arranges for the child to get `signal` if goosectl dies first, so a
/// killed runner never leaves its job behind.
#[allow(unsafe_code)]
fn die_with_parent(builder: &mut Command, signal: Signal) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only prctl(2) and getppid(2), which are async-signal-safe; it
    // allocates nothing (the error is a raw OS code) and takes no lock.
    unsafe {
        builder.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(signal)?;
            // goosectl may have died before the prctl: then nobody would
            // send the signal, so do not start at all.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(
                    nix::errno::Errno::ESRCH as i32,
                ));
            }
            Ok(())
        });
    }
}

/// Signals the job's process group (its pid is the group id).
fn signal_job(job: Option<u32>, signal: Signal, log: &Log) {
    let Some(pid) = job.and_then(|pid| i32::try_from(pid).ok()) else {
        return;
    };
    if let Err(error) = killpg(Pid::from_raw(pid), signal) {
        if error != nix::errno::Errno::ESRCH {
            log.say(format!("cannot send {signal} to the job: {error}"));
        }
    }
}

/// The exit code of a job: its own, or 128 plus the signal that ended it.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the discipline never lets a job run past its promise (minus
    //! the margin), stops it at once on any sign of loss, gives it its grace
    //! when the promise allows, and starts a job only under a promise.
    use super::*;
    use goose_common::control::{HealthState, NodeRole, ReleaseRequest};
    use goose_common::LogIndex;
    use std::collections::BTreeMap;

    const MS: u64 = 1_000_000;

    fn status(role: NodeRole, term: u64, lease_until_ms: Option<u64>) -> RunnerUpdate {
        let status = NodeStatus {
            id: NodeId(3),
            addr: "127.0.0.1:7703".parse().unwrap(),
            role,
            term: Term(term),
            leader_id: Some(NodeId(3)),
            commit_index: LogIndex(1),
            voter: true,
            clock_ns: 0,
            lease_until_ns: lease_until_ms.map(|ms| ms * MS),
            last_index: LogIndex(1),
            removed: false,
            drops: BTreeMap::new(),
            eligible: true,
            health: HealthState::None,
            health_reason: None,
            drained: false,
            priority: 100,
            observer: false,
            datagrams_sent: 0,
            datagrams_received: 0,
        };
        RunnerUpdate {
            status,
            release: None,
        }
    }

    /// A handoff's request to release the role, holding the lease until
    /// `hold_ms`.
    fn release(term: u64, handoff: u64, hold_ms: Option<u64>) -> RunnerUpdate {
        RunnerUpdate {
            release: Some(ReleaseRequest {
                handoff,
                hold_until_ns: hold_ms.map(|ms| ms * MS),
                reason: goose_common::control::HandoffCause::StepDown,
            }),
            ..status(NodeRole::Duck, term, None)
        }
    }

    fn goose(term: u64, lease_until_ms: u64) -> RunnerUpdate {
        status(NodeRole::Goose, term, Some(lease_until_ms))
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp(ms * MS)
    }

    fn running(grace_ms: u64) -> Discipline {
        let mut discipline = Discipline::new(Duration::from_millis(grace_ms));
        let start = discipline.on_update(&goose(7, 300), at(50), true);
        assert_eq!(
            start,
            Some(Action::Start {
                term: Term(7),
                leader: Some(NodeId(3))
            })
        );
        discipline
    }

    #[test]
    fn a_job_starts_only_under_a_promise() {
        let mut discipline = Discipline::new(Duration::from_secs(5));
        let duck = status(NodeRole::Duck, 7, None);
        assert_eq!(discipline.on_update(&duck, at(0), true), None);
        let no_promise = status(NodeRole::Goose, 7, None);
        assert_eq!(discipline.on_update(&no_promise, at(0), true), None);
        // A promise already past, or too close to its end, starts nothing.
        assert_eq!(discipline.on_update(&goose(7, 100), at(100), true), None);
        assert_eq!(discipline.on_update(&goose(7, 100), at(96), true), None);
        // Nor does one while a rerun must wait.
        assert_eq!(discipline.on_update(&goose(7, 300), at(50), false), None);
        assert!(!discipline.has_job());
        assert!(discipline.on_update(&goose(7, 300), at(50), true).is_some());
        assert!(discipline.has_job());
    }

    #[test]
    fn losing_the_role_sends_sigterm_at_once_and_sigkill_by_the_promise() {
        let mut discipline = running(5_000);
        let duck = status(NodeRole::Duck, 7, None);
        assert_eq!(
            discipline.on_update(&duck, at(100), true),
            Some(Action::Terminate)
        );
        // The grace (5 s) would run past the promise: SIGKILL comes at the
        // promise minus the margin instead.
        let kill_at = discipline.next_wake().unwrap();
        assert_eq!(kill_at, Timestamp(300 * MS - nanos(KILL_MARGIN)));
        assert_eq!(discipline.on_tick(Timestamp(kill_at.0 - 1)), None);
        assert_eq!(discipline.on_tick(kill_at), Some(Action::Kill));
        assert_eq!(discipline.on_tick(at(400)), None, "one SIGKILL is enough");
        assert_eq!(discipline.on_exit(), Ended::Stopped);
        assert!(!discipline.has_job());
    }

    #[test]
    fn a_short_grace_kills_before_the_promise_ends() {
        let mut discipline = running(20);
        assert_eq!(discipline.on_daemon_gone(at(100)), Some(Action::Terminate));
        assert_eq!(discipline.next_wake(), Some(at(120)));
        assert_eq!(discipline.on_tick(at(120)), Some(Action::Kill));
    }

    #[test]
    fn renewals_keep_the_job_running_and_an_overdue_one_stops_it() {
        let mut discipline = running(5_000);
        // Renewed every 50 ms, the job runs on.
        for step in 1..10u64 {
            let now = at(50 + 50 * step);
            assert_eq!(discipline.on_tick(now), None);
            assert_eq!(
                discipline.on_update(&goose(7, 300 + 50 * step), now, true),
                None
            );
        }
        // The last renewal (at 500 ms) promised until 750 ms: with no
        // renewal the job is told to stop halfway through what was left,
        // and killed by the promise.
        let stop_by = Timestamp(750 * MS - nanos(KILL_MARGIN));
        let wake = discipline.next_wake().unwrap();
        assert_eq!(wake, Timestamp(stop_by.0 - (stop_by.0 - 500 * MS) / 2));
        assert_eq!(discipline.on_tick(Timestamp(wake.0 - 1)), None);
        assert_eq!(discipline.on_tick(wake), Some(Action::Terminate));
        assert_eq!(discipline.next_wake(), Some(stop_by));
        assert_eq!(discipline.on_tick(stop_by), Some(Action::Kill));
    }

    #[test]
    fn a_new_term_stops_the_job_of_the_old_one() {
        let mut discipline = running(5_000);
        assert_eq!(
            discipline.on_update(&goose(8, 400), at(100), true),
            Some(Action::Terminate),
            "the job's fencing token is stale"
        );
    }

    #[test]
    fn an_older_update_never_shortens_the_promise_held() {
        let mut discipline = running(5_000);
        assert_eq!(discipline.on_update(&goose(7, 250), at(60), true), None);
        let stop_by = Timestamp(300 * MS - nanos(KILL_MARGIN));
        assert!(discipline.next_wake().unwrap() < stop_by);
        assert_eq!(discipline.on_daemon_gone(at(61)), Some(Action::Terminate));
        assert_eq!(discipline.next_wake(), Some(stop_by));
    }

    #[test]
    fn a_job_that_ends_by_itself_is_told_apart_from_a_stopped_one() {
        let mut discipline = running(5_000);
        assert_eq!(discipline.on_exit(), Ended::ByItself);
        let mut discipline = running(5_000);
        assert_eq!(
            discipline.on_stop_requested(at(60)),
            Some(Action::Terminate)
        );
        assert_eq!(discipline.on_exit(), Ended::Stopped);
    }

    /// A voluntary handoff: the job gets its grace within the lease the
    /// node holds (renewed while it waits), and the runner answers once the
    /// job is gone, exactly once.
    #[test]
    fn a_release_gives_the_job_its_grace_within_the_lease_held() {
        let mut discipline = running(5_000);
        assert_eq!(discipline.take_release(), None);
        assert_eq!(
            discipline.on_update(&release(7, 1, Some(400)), at(100), true),
            Some(Action::Terminate)
        );
        assert_eq!(discipline.take_release(), None, "the job still runs");
        assert_eq!(
            discipline.next_wake(),
            Some(Timestamp(400 * MS - nanos(KILL_MARGIN)))
        );
        // The lease held is renewed: the kill moves with it, up to the grace.
        assert_eq!(
            discipline.on_update(&release(7, 1, Some(450)), at(150), true),
            None
        );
        assert_eq!(
            discipline.next_wake(),
            Some(Timestamp(450 * MS - nanos(KILL_MARGIN)))
        );
        assert_eq!(discipline.on_exit(), Ended::Stopped);
        assert_eq!(discipline.take_release(), Some(1));
        assert_eq!(discipline.take_release(), None);
        // A short grace kills before the lease held ends.
        let mut discipline = running(20);
        discipline.on_update(&release(7, 2, Some(400)), at(100), true);
        assert_eq!(discipline.next_wake(), Some(at(120)));
        assert_eq!(discipline.on_tick(at(120)), Some(Action::Kill));
    }

    #[test]
    fn a_runner_without_a_job_releases_at_once() {
        let mut discipline = Discipline::new(Duration::from_secs(5));
        assert_eq!(
            discipline.on_update(&release(7, 3, Some(400)), at(100), true),
            None
        );
        assert!(!discipline.has_job());
        assert_eq!(discipline.take_release(), Some(3));
        // The lease held is renewed with every heartbeat: answered once.
        discipline.on_update(&release(7, 3, Some(450)), at(150), true);
        assert_eq!(discipline.take_release(), None);
        // A later handoff is answered again.
        discipline.on_update(&release(7, 4, Some(900)), at(600), true);
        assert_eq!(discipline.take_release(), Some(4));
    }

    /// A hold of another term, or none (the lease lapsed), never extends
    /// the job past the promise it had; a handoff that is over, or a lost
    /// daemon, needs no answer.
    #[test]
    fn a_release_never_extends_past_what_the_node_holds() {
        let mut discipline = running(5_000);
        discipline.on_update(&release(8, 1, Some(900)), at(100), true);
        let promise_end = Timestamp(300 * MS - nanos(KILL_MARGIN));
        assert_eq!(discipline.next_wake(), Some(promise_end));
        let mut discipline = running(5_000);
        discipline.on_update(&release(7, 1, None), at(100), true);
        assert_eq!(discipline.next_wake(), Some(promise_end));
        // The handoff ended (an update without a release): nothing to answer.
        discipline.on_update(&status(NodeRole::Duck, 7, None), at(110), true);
        discipline.on_exit();
        assert_eq!(discipline.take_release(), None);
        let mut discipline = running(5_000);
        discipline.on_update(&release(7, 1, Some(400)), at(100), true);
        discipline.on_daemon_gone(at(110));
        discipline.on_exit();
        assert_eq!(discipline.take_release(), None);
    }

    #[test]
    fn exit_codes_are_the_jobs_or_128_plus_its_signal() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }
}
