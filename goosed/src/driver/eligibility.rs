//! The local half of eligibility (design.md §2): the health check's
//! verdict and the operator's drain, fed to the core as
//! [`Input::Eligibility`], shown in status and reported to watchers.

use super::{Driver, Exit};
use crate::health::HealthReport;
use crate::hooks::Reason;
use crate::raft::{HandoffReason, Input};
use goose_common::control::{HealthState, WatchEventKind};
use tokio::sync::watch;

/// The local half of eligibility (design.md §2): the health check's verdict
/// and the operator's drain. The core hears only whether both allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eligibility {
    /// The health check's verdict.
    pub health: HealthState,
    /// The last failure while unhealthy.
    pub health_reason: Option<String>,
    /// Whether an operator drained this node (kept across restarts).
    pub drained: bool,
}

impl Eligibility {
    /// Whether health and drain allow this node to lead.
    pub fn allows(&self) -> bool {
        self.health.is_healthy() && !self.drained
    }
}

impl Eligibility {
    /// Why health and drain forbid leading, in a few words; `None` if they allow it.
    pub fn why_not(&self) -> Option<String> {
        if self.drained {
            return Some("drained".to_string());
        }
        match (self.health, &self.health_reason) {
            (HealthState::Unhealthy, Some(reason)) => Some(format!("unhealthy ({reason})")),
            (HealthState::Unhealthy, None) => Some("unhealthy".to_string()),
            (HealthState::Unknown, _) => Some("health unknown".to_string()),
            (HealthState::None | HealthState::Healthy, _) => None,
        }
    }

    /// `GOOSE_REASON` for a handoff the core started.
    pub fn reason_of(&self, handoff: HandoffReason) -> Reason {
        match handoff {
            HandoffReason::Requested => Reason::StepDown,
            HandoffReason::Removed => Reason::Removed,
            HandoffReason::Ineligible if self.drained => Reason::Drain,
            HandoffReason::Ineligible => Reason::Unhealthy,
            HandoffReason::Preempted => Reason::Preempted,
        }
    }
}

/// The next health report, or never without a health check (or once its
/// task has ended, which it does only at shutdown).
pub(crate) async fn health_changed(
    health: &mut Option<watch::Receiver<HealthReport>>,
) -> HealthReport {
    let Some(receiver) = health.as_mut() else {
        return std::future::pending().await;
    };
    if receiver.changed().await.is_err() {
        *health = None;
        return std::future::pending().await;
    }
    receiver.borrow_and_update().clone()
}

impl Driver {
    /// Tells the core what health and drain allow now.
    pub(crate) async fn feed_eligibility(&mut self) -> Result<(), Exit> {
        let eligible = self.eligibility.allows();
        self.step(Input::Eligibility { eligible }).await
    }

    /// A new verdict of the health check.
    pub(crate) async fn on_health(&mut self, report: HealthReport) -> Result<(), Exit> {
        self.eligibility.health = report.state;
        self.eligibility.health_reason = report.reason;
        self.feed_eligibility().await
    }

    /// Records the operator's drain (durably first) and tells the core.
    /// Returns the line for the operator; a storage failure is fatal, as
    /// for the log (the daemon never runs on a disk it cannot trust).
    pub(crate) async fn set_drained(&mut self, drained: bool) -> Result<String, (String, Exit)> {
        let id = self.node.id();
        // Storage is asked even when nothing changes: it rewrites a damaged
        // drain file (which counts as drained) and does nothing otherwise.
        if let Err(error) = self.storage.set_drained(drained) {
            tracing::error!(%error, drained, "cannot record the drain; exiting");
            let line = format!("cannot record the drain: {error}; goosed exits");
            return Err((line, Exit::StorageFailed(error.to_string())));
        }
        if self.eligibility.drained == drained {
            let state = if drained { "drained" } else { "not drained" };
            return Ok(format!("node {id} was already {state}"));
        }
        let was_goose = self.goose;
        self.eligibility.drained = drained;
        tracing::info!(
            drained,
            "{}",
            if drained {
                "an operator drained this node: it will not become the goose"
            } else {
                "an operator undrained this node"
            }
        );
        if let Err(exit) = self.feed_eligibility().await {
            return Err(("storage failed while applying the drain".to_string(), exit));
        }
        Ok(match (drained, self.eligibility.why_not()) {
            (true, _) if was_goose => {
                format!("node {id} drained: it hands the goose over and will not become the goose")
            }
            (true, _) => format!("node {id} drained: it will not become the goose"),
            (false, None) => format!("node {id} undrained: eligible again"),
            (false, Some(why)) => format!("node {id} undrained, but not eligible: {why}"),
        })
    }

    /// Tells watchers when eligibility changed since they were last told.
    pub(crate) fn report_eligibility(&mut self) {
        // A new failure reason alone (a check whose output changes) is
        // not an event.
        let current = (
            self.node.is_eligible(),
            self.eligibility.health,
            self.eligibility.drained,
        );
        if self.reported_eligibility.as_ref() == Some(&current) {
            return;
        }
        let first = self.reported_eligibility.is_none();
        self.reported_eligibility = Some(current);
        if !first {
            self.notify_watchers(WatchEventKind::EligibilityChanged);
            // systemd's STATUS= line says why the node is not eligible.
            self.report_role(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eligibility(health: HealthState, reason: Option<&str>, drained: bool) -> Eligibility {
        Eligibility {
            health,
            health_reason: reason.map(str::to_string),
            drained,
        }
    }

    #[test]
    fn health_and_drain_decide_and_say_why() {
        let none = eligibility(HealthState::None, None, false);
        assert!(none.allows());
        assert_eq!(none.why_not(), None);
        assert!(eligibility(HealthState::Healthy, None, false).allows());
        let unknown = eligibility(HealthState::Unknown, None, false);
        assert!(!unknown.allows());
        assert_eq!(unknown.why_not().as_deref(), Some("health unknown"));
        let sick = eligibility(
            HealthState::Unhealthy,
            Some("exit status 1: disk full"),
            false,
        );
        assert!(!sick.allows());
        assert_eq!(
            sick.why_not().as_deref(),
            Some("unhealthy (exit status 1: disk full)")
        );
        let drained = eligibility(HealthState::Unhealthy, Some("x"), true);
        assert!(!drained.allows());
        assert_eq!(drained.why_not().as_deref(), Some("drained"));
    }

    #[test]
    fn a_handoff_of_an_ineligible_goose_says_drain_or_unhealthy() {
        let sick = eligibility(HealthState::Unhealthy, None, false);
        let drained = eligibility(HealthState::Healthy, None, true);
        assert_eq!(sick.reason_of(HandoffReason::Ineligible), Reason::Unhealthy);
        assert_eq!(drained.reason_of(HandoffReason::Ineligible), Reason::Drain);
        assert_eq!(sick.reason_of(HandoffReason::Preempted), Reason::Preempted);
        assert_eq!(sick.reason_of(HandoffReason::Removed), Reason::Removed);
        assert_eq!(sick.reason_of(HandoffReason::Requested), Reason::StepDown);
        assert_eq!(Reason::Drain.as_str(), "drain");
        let words: Vec<&str> = [
            Reason::Elected,
            Reason::StepDown,
            Reason::Shutdown,
            Reason::Removed,
            Reason::HigherTerm,
            Reason::LeaseLost,
            Reason::Unhealthy,
            Reason::Preempted,
        ]
        .iter()
        .map(|reason| reason.as_str())
        .collect();
        assert_eq!(
            words,
            [
                "elected",
                "step_down",
                "shutdown",
                "removed",
                "higher_term",
                "lease_lost",
                "unhealthy",
                "preempted"
            ]
        );
        assert_eq!(
            Reason::Preempted.handoff_cause().map(|c| c.as_str()),
            Some("preempted")
        );
    }
}
