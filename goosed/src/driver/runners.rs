//! `goosectl run` runners and the release of a voluntary handoff
//! (design.md §7).
//!
//! A runner registers over the control socket and gets an update whenever
//! what it may do changes: the role, term, leader and lease end while this
//! node is the goose, and during a voluntary handoff a [`ReleaseRequest`]
//! with the lease end still held. When a handoff begins (the core
//! [`awaits_release`](crate::raft::Node::awaits_release)), the driver asks
//! every runner to stop its job and waits until each has answered
//! `Released` and the `on_duck` hook has finished, bounded by the longest
//! runner grace or the hook timeout (plus [`RELEASE_MARGIN`]). Then it
//! feeds the core `Input::Release`: stopped if everything confirmed, so
//! `TimeoutNow` may follow; not stopped otherwise, so the node gives the
//! role up and its lease runs out on its own.

use super::Driver;
use crate::clock;
use crate::control::PeerCredentials;
use goose_common::control::{HandoffCause, NodeRole, ReleaseRequest, Reply, RunnerUpdate};
use goose_common::{NodeId, Term, Timestamp};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::mpsc;

/// The most `goosectl run` runners at once.
pub const RUNNERS_MAX: usize = 16;

/// How much longer than a runner's grace (or the hook timeout) a handoff
/// waits: room for SIGKILL to land, the job to be reaped and the answer to
/// cross the socket.
pub const RELEASE_MARGIN: Duration = Duration::from_millis(250);

/// What a runner was last told: role, term, leader, lease end, release.
type UpdateKey = (
    NodeRole,
    Term,
    Option<NodeId>,
    Option<u64>,
    Option<ReleaseRequest>,
);

/// A registered `goosectl run` runner and what it was last told.
pub(crate) struct Runner {
    /// The control server's number for it.
    id: u64,
    /// How long it gives its job between SIGTERM and SIGKILL.
    grace: Duration,
    /// Where its updates go (`try_send` only; a full or closed queue ends it).
    updates: mpsc::Sender<Reply>,
    last: Option<UpdateKey>,
    /// The latest lease end it was told (goose or held): its job may run
    /// until then.
    told_until: Timestamp,
}

/// A voluntary handoff waiting for what acts on the role to stop.
pub(crate) struct Release {
    /// This handoff's number, echoed by the runners.
    handoff: u64,
    /// Runners asked that have not answered yet.
    waiting: BTreeSet<u64>,
    /// The hook transition (the `on_duck` of this handoff) that must have
    /// finished.
    hooks_through: u64,
    /// When to give up waiting.
    deadline: Timestamp,
    /// Whether the core has been told.
    told: bool,
    /// Why the goose hands over.
    reason: HandoffCause,
}

impl Driver {
    /// Registers a runner (or refuses it when [`RUNNERS_MAX`] run) and
    /// sends it the current state.
    pub(crate) fn add_runner(
        &mut self,
        id: u64,
        grace: Duration,
        updates: mpsc::Sender<Reply>,
        peer: Option<PeerCredentials>,
    ) {
        if self.runners.len() >= RUNNERS_MAX {
            let _ = updates.try_send(super::operator::busy());
            return;
        }
        tracing::info!(
            runner = id,
            pid = ?peer.and_then(|p| p.pid),
            grace_ms = grace.as_millis() as u64,
            "runner registered"
        );
        self.runners.push(Runner {
            id,
            grace,
            updates,
            last: None,
            told_until: Timestamp(0),
        });
        self.update_runners();
    }

    /// Runner `runner` answered that its job is gone after `handoff` asked.
    pub(crate) fn on_released(&mut self, runner: u64, handoff: u64) {
        if let Some(release) = self.release.as_mut().filter(|r| r.handoff == handoff) {
            if release.waiting.remove(&runner) {
                tracing::info!(runner, handoff, "runner released the role");
            }
        }
    }

    /// Starts waiting for runners and hooks when the core begins a
    /// handoff, and forgets the wait once the handoff is over.
    fn track_release(&mut self, now: Timestamp) {
        let awaits = self.node.awaits_release();
        match (&self.release, awaits) {
            (None, true) => {
                // A runner that has gone (its connection closed) is not
                // asked, but its job may still be dying until the lease end
                // it was told (`gone_until`).
                let gone_until = &mut self.gone_until;
                self.runners.retain(|runner| {
                    let closed = runner.updates.is_closed();
                    if closed {
                        *gone_until = (*gone_until).max(runner.told_until);
                    }
                    !closed
                });
                self.next_handoff += 1;
                let waiting: BTreeSet<u64> = self.runners.iter().map(|r| r.id).collect();
                let longest_grace = self.runners.iter().map(|r| r.grace).max();
                let hooks = self.hooks.bound();
                let reason = self
                    .voluntary_reason()
                    .and_then(|reason| reason.handoff_cause())
                    .unwrap_or(HandoffCause::StepDown);
                let wait = longest_grace.unwrap_or_default().max(hooks) + RELEASE_MARGIN;
                tracing::info!(
                    handoff = self.next_handoff,
                    runners = waiting.len(),
                    wait_ms = wait.as_millis() as u64,
                    reason = reason.as_str(),
                    "handing over: asking runners to stop their jobs and waiting for on_duck"
                );
                self.release = Some(Release {
                    handoff: self.next_handoff,
                    waiting,
                    hooks_through: self.hooks.pushed(),
                    deadline: now.add(wait),
                    told: false,
                    reason,
                });
            }
            (Some(_), false) => self.release = None,
            _ => {}
        }
    }

    /// Whether the core should be told that the handoff is released now:
    /// `Some(true)` once every runner asked has answered and the hooks have
    /// finished, `Some(false)` at the deadline, once.
    pub(crate) fn release_outcome(&mut self, now: Timestamp) -> Option<bool> {
        let hooks_done = *self.hooks_done.borrow();
        let release = self.release.as_mut().filter(|release| !release.told)?;
        let hooks_finished = hooks_done >= release.hooks_through;
        // A runner that went away stopped its job by the lease end it was told.
        let gone_stopped = now >= self.gone_until;
        let stopped = release.waiting.is_empty() && hooks_finished && gone_stopped;
        if !stopped && now < release.deadline {
            return None;
        }
        release.told = true;
        if stopped {
            tracing::info!(handoff = release.handoff, "released: handing over");
        } else {
            tracing::warn!(
                handoff = release.handoff,
                runners = ?release.waiting,
                hooks_finished,
                "not everything acting on the role confirmed it stopped in time: \
                 giving the role up without a handoff; its lease runs out on its own"
            );
        }
        Some(stopped)
    }

    /// When [`Driver::release_outcome`] must be asked again at the latest.
    pub(crate) fn release_deadline(&self) -> Option<Timestamp> {
        let gone_until = Some(self.gone_until).filter(|&until| until > clock::now());
        self.release
            .as_ref()
            .filter(|release| !release.told)
            .map(|release| gone_until.map_or(release.deadline, |g| g.min(release.deadline)))
    }

    /// The longest a started release may still take, for the shutdown wait.
    pub(crate) fn release_wait_left(&self, now: Timestamp) -> Duration {
        self.release_deadline()
            .map_or(Duration::ZERO, |deadline| deadline.since(now))
    }

    /// Tells every runner what changed since its last update. A runner
    /// whose queue is full or closed is dropped; it sees its stream end and
    /// stops its job by the lease end. Called after every step.
    pub(crate) fn update_runners(&mut self) {
        let now = clock::now();
        self.track_release(now);
        if self.runners.is_empty() {
            return;
        }
        // The full status (its drop counters, its address) is built only
        // when a runner needs an update.
        let answer = self.node.runner_answer(now);
        let role = if answer.is_goose() {
            NodeRole::Goose
        } else {
            NodeRole::Duck
        };
        let release = self.release.as_ref().map(|release| ReleaseRequest {
            handoff: release.handoff,
            hold_until_ns: self.node.releasing(now).map(Timestamp::as_nanos),
            reason: release.reason,
        });
        let lease_until_ns = answer.lease_until.map(Timestamp::as_nanos);
        let key = (role, answer.term, answer.leader, lease_until_ns, release);
        if self.runners.iter().all(|runner| runner.last == Some(key)) {
            return;
        }
        let reply = Reply::Runner(RunnerUpdate {
            status: self.status_of(answer),
            release,
        });
        let mut gone_until = self.gone_until;
        let mut gone = Vec::new();
        self.runners.retain_mut(|runner| {
            if runner.last == Some(key) {
                return true;
            }
            runner.last = Some(key);
            let told = lease_until_ns
                .max(release.and_then(|release| release.hold_until_ns))
                .map_or(Timestamp(0), Timestamp);
            runner.told_until = runner.told_until.max(told);
            let kept = runner.updates.try_send(reply.clone()).is_ok();
            if !kept {
                tracing::info!(runner = runner.id, "runner gone");
                // Its job may run until the lease end it was last told.
                gone_until = gone_until.max(runner.told_until);
                gone.push(runner.id);
            }
            kept
        });
        self.gone_until = gone_until;
        // A release need not wait for a runner that has gone: only for the
        // lease end it was told.
        if let Some(release) = self.release.as_mut() {
            for id in gone {
                release.waiting.remove(&id);
            }
        }
    }
}
