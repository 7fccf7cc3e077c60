//! Answers are for the instant they are acted on (design.md §2).
//!
//! A goose answer is only as good as its promise, `lease_until_ns`, an
//! absolute instant on the answering host's `CLOCK_BOOTTIME`. A consumer on
//! that host treats the answer as goose only while the promise is still in
//! the future on *its own* clock read, taken at the moment it decides
//! ([`decide`], [`decide_now`]); past that it is a duck, however the answer
//! was worded. A consumer on another host cannot compare clocks: it bounds
//! the promise on its own clock from when it asked ([`remote_promise_until`]).
//!
//! [`boottime`] is the one place the project reads `CLOCK_BOOTTIME`; the
//! daemon's clock uses it too.

use crate::control::{NodeRole, NodeStatus};
use crate::Timestamp;
use nix::time::{clock_gettime, ClockId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Reads `CLOCK_BOOTTIME`: monotonic, never jumps back, and keeps counting
/// while the host is suspended.
///
/// # Errors
/// If the kernel refuses the clock (Linux has offered it since 2.6.39) or
/// returns a negative reading.
pub fn boottime() -> std::io::Result<Timestamp> {
    let spec = clock_gettime(ClockId::CLOCK_BOOTTIME).map_err(std::io::Error::from)?;
    let negative = || std::io::Error::other("CLOCK_BOOTTIME returned a negative reading");
    let seconds = u64::try_from(spec.tv_sec()).map_err(|_| negative())?;
    let nanos = u64::try_from(spec.tv_nsec()).map_err(|_| negative())?;
    Ok(Timestamp(
        seconds.saturating_mul(1_000_000_000).saturating_add(nanos),
    ))
}

/// Why an answer is a duck at the instant of deciding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuckReason {
    /// The node itself answered duck.
    NotGoose,
    /// The node answered goose, but its promise is not in the future at
    /// the instant of deciding.
    PromiseExpired,
    /// The node answered goose without a promise (malformed: never goose).
    NoPromise,
    /// The node did not answer.
    Unreachable,
}

impl DuckReason {
    /// The JSON spelling (`not_goose`, `promise_expired`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DuckReason::NotGoose => "not_goose",
            DuckReason::PromiseExpired => "promise_expired",
            DuckReason::NoPromise => "no_promise",
            DuckReason::Unreachable => "unreachable",
        }
    }
}

impl fmt::Display for DuckReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An answer judged at one instant of the consumer's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Goose: the promise is strictly in the future; act before `until`.
    Goose {
        /// The promise (`lease_until_ns`).
        until: Timestamp,
        /// How long it still runs after the instant of deciding (never zero).
        remaining: Duration,
    },
    /// Duck, and why.
    Duck {
        /// Why.
        reason: DuckReason,
        /// For [`DuckReason::PromiseExpired`]: the promise that ran out.
        expired: Option<Timestamp>,
        /// For [`DuckReason::PromiseExpired`]: how long before the instant
        /// of deciding it ran out (zero when it ran out at that very instant).
        ago: Duration,
    },
}

impl Decision {
    fn duck(reason: DuckReason) -> Decision {
        Decision::Duck {
            reason,
            expired: None,
            ago: Duration::ZERO,
        }
    }

    /// Whether the answer may be acted on as goose.
    pub fn is_goose(&self) -> bool {
        matches!(self, Decision::Goose { .. })
    }

    /// Why it is a duck; `None` for goose.
    pub fn reason(&self) -> Option<DuckReason> {
        match self {
            Decision::Goose { .. } => None,
            Decision::Duck { reason, .. } => Some(*reason),
        }
    }

    /// `goose` or `duck`.
    pub fn as_str(&self) -> &'static str {
        if self.is_goose() {
            "goose"
        } else {
            "duck"
        }
    }
}

impl fmt::Display for Decision {
    /// `goose`, `duck`, `duck (promise expired 3 ms ago)`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Goose { .. } => f.write_str("goose"),
            Decision::Duck {
                reason: DuckReason::NotGoose,
                ..
            } => f.write_str("duck"),
            Decision::Duck {
                reason: DuckReason::PromiseExpired,
                ago,
                ..
            } => write!(f, "duck (promise expired {} ms ago)", ago.as_millis()),
            Decision::Duck {
                reason: DuckReason::NoPromise,
                ..
            } => f.write_str("duck (goose answer without a promise)"),
            Decision::Duck {
                reason: DuckReason::Unreachable,
                ..
            } => f.write_str("duck (unreachable)"),
        }
    }
}

/// Judges an answer (`role` and its promise `lease_until_ns`) at `now`, a
/// read of the same host's `CLOCK_BOOTTIME` taken at the moment of deciding:
/// goose only if the role is goose and `now < lease_until_ns`.
pub fn decide(role: NodeRole, lease_until_ns: Option<u64>, now: Timestamp) -> Decision {
    match role {
        NodeRole::Duck => return Decision::duck(DuckReason::NotGoose),
        NodeRole::Unreachable => return Decision::duck(DuckReason::Unreachable),
        NodeRole::Goose => {}
    }
    let Some(until) = lease_until_ns.map(Timestamp) else {
        return Decision::duck(DuckReason::NoPromise);
    };
    if now < until {
        Decision::Goose {
            until,
            remaining: until.since(now),
        }
    } else {
        Decision::Duck {
            reason: DuckReason::PromiseExpired,
            expired: Some(until),
            ago: now.since(until),
        }
    }
}

/// [`decide`] for a [`NodeStatus`] answered on this host.
pub fn decide_status(status: &NodeStatus, now: Timestamp) -> Decision {
    decide(status.role, status.lease_until_ns, now)
}

/// [`decide_status`] with a fresh [`boottime`] read, taken now: call it at
/// the moment of acting, not earlier.
///
/// # Errors
/// If the clock cannot be read (then nobody can tell).
pub fn decide_now(status: &NodeStatus) -> std::io::Result<(Decision, Timestamp)> {
    let now = boottime()?;
    Ok((decide_status(status, now), now))
}

/// A remote member's promise carried onto the local clock, conservatively.
///
/// The member decided its answer at `remote_clock_ns` on its own clock and
/// promised until `remote_lease_until_ns` on that clock, so its promise runs
/// `d = remote_lease_until_ns - remote_clock_ns` of *its* clock after it
/// decided. It decided no earlier than the local node sent the question, at
/// `asked` on the local clock; and `d` of a clock that runs at most `rho`
/// fast is at least `d * (1 - rho) / (1 + rho)` of a clock that runs at most
/// `rho` slow, which is more than `d * (1 - 2 rho)`. So the promise runs at
/// least until `asked + d * (1 - 2 rho)` on the local clock: the instant
/// returned. `None` unless the member answered goose with a promise no
/// earlier than its decision.
pub fn remote_promise_until(
    asked: Timestamp,
    remote_clock_ns: u64,
    remote_lease_until_ns: Option<u64>,
    drift_ppm: u32,
) -> Option<Timestamp> {
    let remaining = remote_lease_until_ns?.checked_sub(remote_clock_ns)?;
    let kept_ppm = 1_000_000u128.saturating_sub(2 * u128::from(drift_ppm));
    let scaled = u128::from(remaining) * kept_ppm / 1_000_000;
    Some(asked.add(Duration::from_nanos(
        u64::try_from(scaled).unwrap_or(u64::MAX),
    )))
}

/// Judges a remote member's answer to a question asked at `asked` (local
/// clock) at `now` (local clock, at the moment of deciding): goose only if
/// it answered goose and [`remote_promise_until`] is strictly after `now`.
pub fn decide_remote(
    status: &NodeStatus,
    asked: Timestamp,
    now: Timestamp,
    drift_ppm: u32,
) -> Decision {
    if status.role != NodeRole::Goose {
        return decide_status(status, now);
    }
    let Some(until) =
        remote_promise_until(asked, status.clock_ns, status.lease_until_ns, drift_ppm)
    else {
        return Decision::duck(DuckReason::NoPromise);
    };
    decide(NodeRole::Goose, Some(until.as_nanos()), now)
}

/// A remote member's answer to a question asked at `asked`, as the asking
/// node reports it at `now` (both on the local clock, `now` read at the
/// moment of replying): unchanged, unless the member answered goose and
/// [`decide_remote`] finds its promise not strictly after `now`; then it is
/// reported a duck, without a promise (the contract's `lease_until_ns` is
/// null unless goose). Its other fields, `clock_ns` included, stay the
/// member's own. Returns the decision beside it, to say why.
pub fn judge_remote_status(
    mut status: NodeStatus,
    asked: Timestamp,
    now: Timestamp,
    drift_ppm: u32,
) -> (NodeStatus, Decision) {
    let decision = decide_remote(&status, asked, now, drift_ppm);
    if status.role == NodeRole::Goose && !decision.is_goose() {
        status.role = NodeRole::Duck;
        status.lease_until_ns = None;
    }
    (status, decision)
}

#[cfg(test)]
mod tests {
    //! Goal: goose only while the promise is strictly in the future on the
    //! deciding clock; every other case is a duck with its reason.
    use super::*;
    use crate::{LogIndex, NodeId, Term};

    const MS: u64 = 1_000_000;

    fn status(role: NodeRole, clock_ns: u64, lease_until_ns: Option<u64>) -> NodeStatus {
        NodeStatus {
            id: NodeId(3),
            addr: "10.0.0.3:7700".parse().unwrap(),
            role,
            term: Term(7),
            leader_id: Some(NodeId(3)),
            commit_index: LogIndex(4),
            voter: true,
            clock_ns,
            lease_until_ns,
            last_index: LogIndex(4),
            removed: false,
            drops: Default::default(),
            eligible: true,
            health: crate::control::HealthState::None,
            health_reason: None,
            drained: false,
            priority: 100,
            observer: false,
            datagrams_sent: 0,
            datagrams_received: 0,
        }
    }

    #[test]
    fn a_promise_in_the_future_is_goose() {
        let decision = decide(NodeRole::Goose, Some(110 * MS), Timestamp(100 * MS));
        assert_eq!(
            decision,
            Decision::Goose {
                until: Timestamp(110 * MS),
                remaining: Duration::from_millis(10)
            }
        );
        assert!(decision.is_goose());
        assert_eq!(decision.reason(), None);
        assert_eq!(decision.to_string(), "goose");
        // One nanosecond ahead still counts.
        assert!(decide(NodeRole::Goose, Some(101), Timestamp(100)).is_goose());
    }

    #[test]
    fn a_promise_equal_to_now_has_run_out() {
        let decision = decide(NodeRole::Goose, Some(100 * MS), Timestamp(100 * MS));
        assert_eq!(
            decision,
            Decision::Duck {
                reason: DuckReason::PromiseExpired,
                expired: Some(Timestamp(100 * MS)),
                ago: Duration::ZERO
            }
        );
        assert_eq!(decision.to_string(), "duck (promise expired 0 ms ago)");
    }

    #[test]
    fn a_promise_in_the_past_is_a_duck_saying_how_long_ago() {
        let decision = decide(NodeRole::Goose, Some(100 * MS), Timestamp(103 * MS + 400));
        assert_eq!(decision.reason(), Some(DuckReason::PromiseExpired));
        assert_eq!(decision.as_str(), "duck");
        assert_eq!(decision.to_string(), "duck (promise expired 3 ms ago)");
    }

    #[test]
    fn a_duck_stays_a_duck_whatever_its_lease_says() {
        let decision = decide(NodeRole::Duck, Some(u64::MAX), Timestamp(0));
        assert_eq!(decision.reason(), Some(DuckReason::NotGoose));
        assert_eq!(decision.to_string(), "duck");
        let gone = decide(NodeRole::Unreachable, None, Timestamp(0));
        assert_eq!(gone.reason(), Some(DuckReason::Unreachable));
    }

    #[test]
    fn a_goose_answer_without_a_promise_is_a_duck() {
        let decision = decide_status(&status(NodeRole::Goose, 0, None), Timestamp(0));
        assert_eq!(decision.reason(), Some(DuckReason::NoPromise));
    }

    #[test]
    fn reasons_have_their_json_spelling() {
        for reason in [
            DuckReason::NotGoose,
            DuckReason::PromiseExpired,
            DuckReason::NoPromise,
            DuckReason::Unreachable,
        ] {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
            assert_eq!(reason.to_string(), reason.as_str());
        }
    }

    #[test]
    fn decide_now_reads_a_clock_that_moves_forward() {
        let first = boottime().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let (decision, second) = decide_now(&status(NodeRole::Goose, 0, Some(1))).unwrap();
        assert!(second.since(first) >= Duration::from_millis(2));
        assert_eq!(decision.reason(), Some(DuckReason::PromiseExpired));
        let far = second.add(Duration::from_secs(3600)).as_nanos();
        let (decision, _) = decide_now(&status(NodeRole::Goose, 0, Some(far))).unwrap();
        assert!(decision.is_goose());
    }

    #[test]
    fn a_remote_promise_runs_from_the_question_shrunk_by_the_drift_bound() {
        // Asked at 1000 ms here; the member decided at 50 ms on its clock and
        // promised 10 ms: here it holds until 1000 + 10 * (1 - 2 * 0.001) ms.
        let until = remote_promise_until(Timestamp(1000 * MS), 50 * MS, Some(60 * MS), 1000);
        assert_eq!(until, Some(Timestamp(1000 * MS + 9_980_000)));
        // No drift bound: exactly the promise's length.
        let exact = remote_promise_until(Timestamp(1000 * MS), 50 * MS, Some(60 * MS), 0);
        assert_eq!(exact, Some(Timestamp(1010 * MS)));
        // Malformed promises carry nothing; absurd input saturates.
        assert_eq!(remote_promise_until(Timestamp(0), 60, Some(50), 1000), None);
        assert_eq!(remote_promise_until(Timestamp(0), 60, None, 1000), None);
        let huge = remote_promise_until(Timestamp(u64::MAX - 1), 0, Some(u64::MAX), u32::MAX);
        assert_eq!(huge, Some(Timestamp(u64::MAX - 1)));
    }

    #[test]
    fn a_remote_goose_is_judged_on_the_local_clock_at_reply_time() {
        let remote = status(NodeRole::Goose, 50 * MS, Some(60 * MS));
        let asked = Timestamp(1000 * MS);
        let early = decide_remote(&remote, asked, Timestamp(1009 * MS), 1000);
        assert!(early.is_goose(), "{early:?}");
        // 9.98 ms after asking the promise may have run out already.
        let edge = decide_remote(&remote, asked, Timestamp(1000 * MS + 9_980_000), 1000);
        assert_eq!(edge.reason(), Some(DuckReason::PromiseExpired));
        let late = decide_remote(&remote, asked, Timestamp(1400 * MS), 1000);
        assert_eq!(late.to_string(), "duck (promise expired 390 ms ago)");
        let duck = status(NodeRole::Duck, 50 * MS, None);
        assert_eq!(
            decide_remote(&duck, asked, asked, 1000).reason(),
            Some(DuckReason::NotGoose)
        );
        let (kept, decision) =
            judge_remote_status(remote.clone(), asked, Timestamp(1009 * MS), 1000);
        assert!(decision.is_goose());
        assert_eq!(kept, remote);
        let (demoted, decision) =
            judge_remote_status(remote.clone(), asked, Timestamp(1400 * MS), 1000);
        assert_eq!(decision.reason(), Some(DuckReason::PromiseExpired));
        assert_eq!(demoted.role, NodeRole::Duck);
        assert_eq!(demoted.lease_until_ns, None);
        assert_eq!(demoted.clock_ns, remote.clock_ns);
        assert_eq!(demoted.term, remote.term);
        let (same, _) = judge_remote_status(duck.clone(), asked, Timestamp(1400 * MS), 1000);
        assert_eq!(same, duck);
        let backwards = status(NodeRole::Goose, 60 * MS, Some(50 * MS));
        assert_eq!(
            decide_remote(&backwards, asked, asked, 1000).reason(),
            Some(DuckReason::NoPromise)
        );
    }
}
