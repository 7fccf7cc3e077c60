//! `on_goose` / `on_duck` hooks (design.md §7) and the state file.
//!
//! Transitions are queued and run one at a time, in order, never
//! concurrently. An `on_goose` hook still running when the node stops being
//! the goose is killed at once (its process group, SIGKILL): it must not act
//! on a role the node no longer holds, and the daemon learns of the loss by
//! the lease end at the latest. Then `on_duck` runs. Each hook gets
//! `GOOSE_NODE_ID`, `GOOSE_ROLE`, `GOOSE_TERM` (the fencing token) and
//! `GOOSE_LEADER_ID`, is killed after the timeout, and its output goes to
//! the log. Each transition gets a sequence number; [`Hooks::done`] tells
//! how far the hooks have got, so that a voluntary handoff sends no
//! `TimeoutNow` before its `on_duck` has finished (design.md §7).

use goose_common::{NodeId, Term};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;

/// Transitions waiting for their hooks; past this, the oldest goose/duck
/// pair is dropped (alternation is kept, and the drop is logged).
pub const HOOK_QUEUE_MAX: usize = 64;

/// The longest line of hook output passed to the log, in bytes.
const HOOK_OUTPUT_LINE_MAX: usize = 4096;

/// Why the role changed: `GOOSE_REASON` in a hook's environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The node won an election (or a handoff to it) and its lease holds.
    Elected,
    /// `goosectl step-down` handed the goose over.
    StepDown,
    /// goosed got SIGTERM or SIGINT and handed the goose over.
    Shutdown,
    /// The node was removed from the membership (or demoted).
    Removed,
    /// A newer term began elsewhere.
    HigherTerm,
    /// The lease ran out without renewal: a partition, a pause, lost peers.
    LeaseLost,
    /// `goosectl drain` handed the goose over.
    Drain,
    /// The health check failed and the goose handed over.
    Unhealthy,
    /// An eligible voter of higher priority took over.
    Preempted,
}

impl Reason {
    /// The same reason as a runner is told it, if it is a voluntary handoff.
    pub fn handoff_cause(self) -> Option<goose_common::control::HandoffCause> {
        use goose_common::control::HandoffCause;
        match self {
            Reason::StepDown => Some(HandoffCause::StepDown),
            Reason::Shutdown => Some(HandoffCause::Shutdown),
            Reason::Removed => Some(HandoffCause::Removed),
            Reason::Drain => Some(HandoffCause::Drain),
            Reason::Unhealthy => Some(HandoffCause::Unhealthy),
            Reason::Preempted => Some(HandoffCause::Preempted),
            Reason::Elected | Reason::HigherTerm | Reason::LeaseLost => None,
        }
    }

    /// The value of `GOOSE_REASON`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Elected => "elected",
            Reason::HigherTerm => "higher_term",
            Reason::LeaseLost => "lease_lost",
            // A voluntary handoff says what a runner is told (one table).
            Reason::StepDown
            | Reason::Shutdown
            | Reason::Removed
            | Reason::Drain
            | Reason::Unhealthy
            | Reason::Preempted => self
                .handoff_cause()
                .map_or("", goose_common::control::HandoffCause::as_str),
        }
    }
}

/// A role transition to report to hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// True for goose, false for duck.
    pub goose: bool,
    /// The node's term: the fencing token.
    pub term: Term,
    /// The leader the node knows of.
    pub leader: Option<NodeId>,
    /// Why the role changed.
    pub reason: Reason,
}

/// The hook commands of one daemon.
#[derive(Clone, Debug, Default)]
pub struct HookCommands {
    /// Run through `sh -c` when the node becomes the goose.
    pub on_goose: Option<String>,
    /// Run through `sh -c` when the node becomes a duck.
    pub on_duck: Option<String>,
    /// Killed after this long.
    pub timeout: Duration,
}

#[derive(Default)]
struct Queue {
    /// Waiting transitions with their sequence numbers.
    transitions: VecDeque<(u64, Transition)>,
    /// The sequence number of the last transition pushed (the first is 1).
    pushed: u64,
    closed: bool,
}

/// Queues transitions for the hook task. Cheap to clone.
#[derive(Clone)]
pub struct Hooks {
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    /// Notified when a duck transition is queued (a running `on_goose`
    /// checks the queue and is killed if so).
    role_lost: Arc<Notify>,
    /// The sequence number of the last transition whose hook has finished
    /// (or was dropped, or had no command).
    done: Arc<tokio::sync::watch::Sender<u64>>,
    /// How long the hooks of one transition may take: the hook timeout if
    /// any hook is configured.
    bound: Duration,
}

impl Hooks {
    /// Starts the hook task on the current tokio runtime.
    pub fn spawn(node: NodeId, commands: HookCommands) -> (Hooks, tokio::task::JoinHandle<()>) {
        let configured = commands.on_goose.is_some() || commands.on_duck.is_some();
        let hooks = Hooks {
            queue: Arc::default(),
            wake: Arc::new(Notify::new()),
            role_lost: Arc::new(Notify::new()),
            done: Arc::new(tokio::sync::watch::channel(0).0),
            bound: if configured {
                commands.timeout
            } else {
                Duration::ZERO
            },
        };
        let runner = hooks.clone();
        let task = tokio::spawn(async move { runner.run(node, commands).await });
        (hooks, task)
    }

    /// Queues a transition; never blocks the event loop. Returns its
    /// sequence number (see [`Hooks::done`]).
    pub fn push(&self, transition: Transition) -> u64 {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.transitions.len() >= HOOK_QUEUE_MAX {
            // Dropping two consecutive transitions keeps goose/duck alternating.
            queue.transitions.drain(..2);
            tracing::warn!(
                limit = HOOK_QUEUE_MAX,
                "hooks fall behind: dropped the oldest goose/duck pair"
            );
        }
        queue.pushed += 1;
        let sequence = queue.pushed;
        queue.transitions.push_back((sequence, transition));
        drop(queue);
        self.wake.notify_one();
        if !transition.goose {
            self.role_lost.notify_one();
        }
        sequence
    }

    /// The sequence number of the last transition pushed (0 before any).
    pub fn pushed(&self) -> u64 {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).pushed
    }

    /// The sequence number up to which every transition's hook has
    /// finished; watch it to learn when an `on_duck` is done.
    pub fn done(&self) -> tokio::sync::watch::Receiver<u64> {
        self.done.subscribe()
    }

    /// How long the hooks of one transition may take: the hook timeout, or
    /// nothing when no hook is configured.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// Whether a duck transition waits in the queue: the goose role that a
    /// running `on_goose` acts on is gone.
    fn duck_queued(&self) -> bool {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue
            .transitions
            .iter()
            .any(|(_, transition)| !transition.goose)
    }

    /// Runs what is queued, then ends the task.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.wake.notify_one();
    }

    async fn run(self, node: NodeId, commands: HookCommands) {
        loop {
            let next = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                match queue.transitions.pop_front() {
                    Some(transition) => Some(transition),
                    None if queue.closed => return,
                    None => None,
                }
            };
            match next {
                Some((sequence, transition)) => {
                    self.run_hook(node, &commands, transition).await;
                    self.done.send_replace(sequence);
                }
                None => self.wake.notified().await,
            }
        }
    }
}

impl Hooks {
    async fn run_hook(&self, node: NodeId, commands: &HookCommands, transition: Transition) {
        let (role, command) = if transition.goose {
            ("goose", commands.on_goose.as_deref())
        } else {
            ("duck", commands.on_duck.as_deref())
        };
        let Some(command) = command else { return };
        let leader = transition.leader.map(|l| l.to_string()).unwrap_or_default();
        let spawned = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .env("GOOSE_NODE_ID", node.to_string())
            .env("GOOSE_ROLE", role)
            .env("GOOSE_TERM", transition.term.to_string())
            .env("GOOSE_LEADER_ID", leader)
            .env("GOOSE_REASON", transition.reason.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so a timeout kills the hook's children too.
            .process_group(0)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                tracing::error!(role, term = transition.term.0, %error, "cannot start the on_{role} hook");
                return;
            }
        };
        let stdout = child
            .stdout
            .take()
            .map(|out| tokio::spawn(log_lines(role, "stdout", out)));
        let stderr = child
            .stderr
            .take()
            .map(|err| tokio::spawn(log_lines(role, "stderr", err)));
        let outcome = {
            let wait = tokio::time::timeout(commands.timeout, child.wait());
            tokio::pin!(wait);
            loop {
                // An on_goose hook runs only while the node is the goose.
                if transition.goose && self.duck_queued() {
                    break None;
                }
                tokio::select! {
                    outcome = &mut wait => break Some(outcome),
                    () = self.role_lost.notified(), if transition.goose => {}
                }
            }
        };
        let Some(outcome) = outcome else {
            kill_group(&child);
            let _ = child.kill().await;
            tracing::warn!(
                term = transition.term.0,
                "on_goose hook killed: the node is no longer the goose"
            );
            return drain(stdout, stderr).await;
        };
        match outcome {
            Ok(Ok(status)) if status.success() => {
                tracing::info!(role, term = transition.term.0, "on_{role} hook finished");
            }
            Ok(Ok(status)) => {
                tracing::warn!(role, term = transition.term.0, %status, "on_{role} hook failed")
            }
            Ok(Err(error)) => tracing::error!(role, %error, "cannot wait for the on_{role} hook"),
            Err(_) => {
                kill_group(&child);
                let _ = child.kill().await;
                tracing::error!(
                    role,
                    term = transition.term.0,
                    timeout_ms = commands.timeout.as_millis() as u64,
                    "on_{role} hook timed out and was killed"
                );
            }
        }
        drain(stdout, stderr).await;
    }
}

/// SIGKILL to a hook's process group (it is the group leader).
fn kill_group(child: &tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let group = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }
}

/// Waits a little for a hook's output to be logged.
async fn drain(
    stdout: Option<tokio::task::JoinHandle<()>>,
    stderr: Option<tokio::task::JoinHandle<()>>,
) {
    for task in [stdout, stderr].into_iter().flatten() {
        // Output of a killed hook's own children may never close; do not wait forever.
        let _ = tokio::time::timeout(Duration::from_millis(200), task).await;
    }
}

async fn log_lines(role: &'static str, stream: &'static str, output: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(mut line)) = lines.next_line().await {
        if line.len() > HOOK_OUTPUT_LINE_MAX {
            let mut cut = HOOK_OUTPUT_LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        tracing::info!(role, stream, "hook: {line}");
    }
}

/// Writes the state file (role, term, leader) atomically: a consumer that
/// prefers a file reads either the old or the new content, never a mix.
pub fn write_state_file(path: &Path, node: NodeId, transition: Transition) -> std::io::Result<()> {
    let content = serde_json::json!({
        "node_id": node.0,
        "role": if transition.goose { "goose" } else { "duck" },
        "term": transition.term.0,
        "leader_id": transition.leader.map(|l| l.0),
    });
    let temporary: PathBuf = path.with_extension("tmp");
    std::fs::write(&temporary, format!("{content}\n"))?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node 3 became the goose in `term`.
    fn goose(term: u64) -> Transition {
        Transition {
            goose: true,
            term: Term(term),
            leader: Some(NodeId(3)),
            reason: Reason::Elected,
        }
    }

    /// Node 3 lost its lease in `term`.
    fn duck(term: u64) -> Transition {
        Transition {
            goose: false,
            term: Term(term),
            leader: None,
            reason: Reason::LeaseLost,
        }
    }

    #[tokio::test]
    async fn hooks_run_in_order_with_the_fencing_token_and_time_out() {
        // design.md §7: once per transition, in order, with the environment, bounded by a timeout.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let append = format!(
            "echo \"$GOOSE_ROLE $GOOSE_TERM $GOOSE_LEADER_ID $GOOSE_NODE_ID $GOOSE_REASON\" >> {}",
            log.display()
        );
        let commands = HookCommands {
            on_goose: Some(format!("sleep 0.2; {append}")),
            on_duck: Some(format!("{append}; sleep 5")),
            timeout: Duration::from_millis(500),
        };
        let (hooks, task) = Hooks::spawn(NodeId(3), commands);
        hooks.push(goose(7));
        hooks.push(duck(8));
        hooks.push(goose(9));
        hooks.close();
        let started = std::time::Instant::now();
        task.await.unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text, "duck 8  3 lease_lost\ngoose 9 3 3 elected\n",
            "the first on_goose was killed (the role was already lost), the last one ran"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the 5 s duck hook was killed at its timeout"
        );
    }

    /// design.md §7: an on_goose hook still running when the role is lost
    /// is killed at once, not after its timeout, and on_duck follows.
    #[tokio::test]
    async fn a_running_on_goose_is_killed_when_the_role_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let commands = HookCommands {
            on_goose: Some(format!(
                "echo started >> {0}; sleep 10; echo finished >> {0}",
                log.display()
            )),
            on_duck: Some(format!("echo duck >> {}", log.display())),
            timeout: Duration::from_secs(30),
        };
        let (hooks, task) = Hooks::spawn(NodeId(3), commands);
        hooks.push(goose(7));
        let started = std::time::Instant::now();
        while !std::fs::read_to_string(&log).is_ok_and(|text| text.contains("started")) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "on_goose started"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        hooks.push(duck(8));
        hooks.close();
        task.await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "killed at once, not after 10 s or its 30 s timeout"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "started\nduck\n");
    }

    #[test]
    fn the_state_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_state_file(
            &path,
            NodeId(2),
            Transition {
                goose: true,
                term: Term(4),
                leader: Some(NodeId(2)),
                reason: Reason::Elected,
            },
        )
        .unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(value["role"], "goose");
        assert_eq!(value["term"], 4);
        assert_eq!(value["leader_id"], 2);
        assert!(!dir.path().join("state.tmp").exists());
    }
}
