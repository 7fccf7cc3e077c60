//! Exit codes and the text and JSON forms of replies.

use crate::error::CtlError;
use goose_common::control::{HealthState, NodeRole, NodeStatus};
use serde::Serialize;
use std::io::Write;

/// Success, and "goose" for `is-goose`.
pub const EXIT_SUCCESS: u8 = 0;
/// "duck" for `is-goose`.
pub const EXIT_DUCK: u8 = 1;
/// Any error, "cannot tell" for `is-goose` included.
pub const EXIT_ERROR: u8 = 2;

/// The priority of a node configured without one (design.md §6); a status
/// line names a node's priority only when it differs.
pub const DEFAULT_PRIORITY: u8 = 100;

/// The most characters of a health check's failure a status line shows,
/// the ellipsis included, so that a line stays readable.
pub const HEALTH_REASON_CHARS_MAX: usize = 60;

/// Prints one line on stdout.
pub fn line(text: &str) -> Result<(), CtlError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

/// Prints `value` as one JSON object on one line.
pub fn json<T: Serialize>(value: &T) -> Result<(), CtlError> {
    line(&serde_json::to_string(value)?)
}

/// `text` on one line, control characters escaped, so that a message from
/// the daemon can neither break the one-line error rule nor the terminal.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|character| match character {
            '\n' | '\r' | '\t' => ' '.to_string(),
            character if character.is_control() => character.escape_default().to_string(),
            character => character.to_string(),
        })
        .collect()
}

/// `node 3 (10.0.0.3:7700): goose, term 7, leader 3, lease 8 ms`, with
/// `, priority N` unless the default, and `, not eligible: drained` (or
/// the like) when the node may not be the goose.
pub fn node_line(status: &NodeStatus) -> String {
    node_line_as(status, &status.role.to_string())
}

/// [`node_line`] with `role` in place of the role, e.g.
/// `duck (promise expired 3 ms ago)` for an answer judged by goosectl.
pub fn node_line_as(status: &NodeStatus, role: &str) -> String {
    node_text(status, role, false)
}

/// [`node_line`] that always ends with the eligibility, `, eligible` too:
/// the line of an eligibility change.
pub fn node_line_with_eligibility(status: &NodeStatus) -> String {
    node_text(status, &status.role.to_string(), true)
}

fn node_text(status: &NodeStatus, role: &str, always_eligibility: bool) -> String {
    let mut text = format!("node {} ({}): {role}", status.id, status.addr);
    if status.role == NodeRole::Unreachable {
        return text;
    }
    text.push_str(&format!(", term {}, leader ", status.term));
    match status.leader_id {
        Some(leader) => text.push_str(&leader.to_string()),
        None => text.push_str("none"),
    }
    if let Some(lease) = status.lease_remaining() {
        text.push_str(&format!(", lease {} ms", lease.as_millis()));
    }
    if status.observer {
        text.push_str(", observer");
    } else if !status.voter {
        text.push_str(", learner");
    }
    if status.removed {
        text.push_str(", removed");
    }
    if status.priority != DEFAULT_PRIORITY {
        text.push_str(&format!(", priority {}", status.priority));
    }
    if let Some(eligibility) = eligibility(status, always_eligibility) {
        text.push_str(", ");
        text.push_str(&eligibility);
    }
    text
}

/// `not eligible: drained and unhealthy (exit status 1: disk full)`, or
/// `eligible` when `always`; `None` for an eligible node, and for a
/// learner, observer or removed node that is ineligible only for being
/// that (its line already says so).
pub fn eligibility(status: &NodeStatus, always: bool) -> Option<String> {
    if status.eligible {
        return always.then(|| "eligible".to_string());
    }
    let reasons = ineligibility_reasons(status);
    if reasons.is_empty() {
        let self_evident = !status.voter || status.observer || status.removed;
        return (always || !self_evident).then(|| "not eligible".to_string());
    }
    Some(format!("not eligible: {}", reasons.join(" and ")))
}

/// Why a node is not eligible, as far as its answer says: drained, and its
/// health unless that counts as healthy.
fn ineligibility_reasons(status: &NodeStatus) -> Vec<String> {
    let mut reasons = Vec::new();
    if status.drained {
        reasons.push("drained".to_string());
    }
    match (status.health, &status.health_reason) {
        (HealthState::None | HealthState::Healthy, _) => {}
        (HealthState::Unhealthy, Some(reason)) if !reason.trim().is_empty() => {
            reasons.push(format!(
                "unhealthy ({})",
                truncate(&one_line(reason.trim()), HEALTH_REASON_CHARS_MAX)
            ))
        }
        (health, _) => reasons.push(health.to_string()),
    }
    reasons
}

/// `text` cut to at most `chars_max` characters, the last one an ellipsis
/// when anything was cut.
pub fn truncate(text: &str, chars_max: usize) -> String {
    if text.chars().count() <= chars_max {
        return text.to_string();
    }
    let kept: String = text.chars().take(chars_max.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

/// The JSON of a successful change: `{"ok": true, "message": "..."}`.
#[derive(Serialize)]
pub struct Done<'a> {
    /// Always true (failures are errors on stderr with exit code 2).
    pub ok: bool,
    /// The daemon's one-line summary.
    pub message: &'a str,
}

/// Prints the daemon's summary of a successful change.
pub fn done(context: &crate::Context, message: &str) -> Result<u8, CtlError> {
    if context.json {
        json(&Done { ok: true, message })?;
    } else {
        line(&one_line(message))?;
    }
    Ok(EXIT_SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::{LogIndex, NodeId, Term};

    fn status() -> NodeStatus {
        NodeStatus {
            id: NodeId(3),
            addr: "10.0.0.3:7700".parse().unwrap(),
            role: NodeRole::Goose,
            term: Term(7),
            leader_id: Some(NodeId(3)),
            commit_index: LogIndex(4),
            voter: true,
            clock_ns: 1_000_000,
            lease_until_ns: Some(9_500_000),
            last_index: LogIndex(4),
            removed: false,
            drops: Default::default(),
            eligible: true,
            health: HealthState::None,
            health_reason: None,
            drained: false,
            priority: DEFAULT_PRIORITY,
            observer: false,
            datagrams_sent: 0,
            datagrams_received: 0,
        }
    }

    /// A duck that is not eligible for the reasons given.
    fn ineligible(drained: bool, health: HealthState, reason: Option<&str>) -> NodeStatus {
        NodeStatus {
            role: NodeRole::Duck,
            lease_until_ns: None,
            eligible: false,
            drained,
            health,
            health_reason: reason.map(str::to_string),
            ..status()
        }
    }

    #[test]
    fn node_lines_read_like_the_design() {
        assert_eq!(
            node_line(&status()),
            "node 3 (10.0.0.3:7700): goose, term 7, leader 3, lease 8 ms"
        );
        let duck = NodeStatus {
            role: NodeRole::Duck,
            leader_id: None,
            lease_until_ns: None,
            voter: false,
            ..status()
        };
        assert_eq!(
            node_line(&duck),
            "node 3 (10.0.0.3:7700): duck, term 7, leader none, learner"
        );
        let gone = NodeStatus {
            role: NodeRole::Unreachable,
            ..duck
        };
        assert_eq!(node_line(&gone), "node 3 (10.0.0.3:7700): unreachable");
    }

    #[test]
    fn an_ineligible_node_says_why_after_the_rest_of_its_line() {
        let duck = "node 3 (10.0.0.3:7700): duck, term 7, leader 3";
        let cases = [
            (
                ineligible(true, HealthState::None, None),
                "not eligible: drained",
            ),
            (
                ineligible(
                    false,
                    HealthState::Unhealthy,
                    Some("exit status 1: disk full\n"),
                ),
                "not eligible: unhealthy (exit status 1: disk full)",
            ),
            (
                ineligible(false, HealthState::Unhealthy, None),
                "not eligible: unhealthy",
            ),
            (
                ineligible(false, HealthState::Unknown, None),
                "not eligible: health unknown",
            ),
            (
                ineligible(
                    true,
                    HealthState::Unhealthy,
                    Some("timed out after 1000 ms"),
                ),
                "not eligible: drained and unhealthy (timed out after 1000 ms)",
            ),
            // Ineligible for a reason the answer does not carry.
            (
                ineligible(false, HealthState::Healthy, None),
                "not eligible",
            ),
        ];
        for (status, suffix) in cases {
            assert_eq!(node_line(&status), format!("{duck}, {suffix}"));
        }
        // An eligible node's line is unchanged, whatever its health check.
        let healthy = NodeStatus {
            health: HealthState::Healthy,
            ..status()
        };
        assert_eq!(
            node_line(&healthy),
            "node 3 (10.0.0.3:7700): goose, term 7, leader 3, lease 8 ms"
        );
    }

    #[test]
    fn a_learner_or_observer_is_not_called_ineligible_for_being_one() {
        let learner = NodeStatus {
            voter: false,
            ..ineligible(false, HealthState::None, None)
        };
        assert_eq!(
            node_line(&learner),
            "node 3 (10.0.0.3:7700): duck, term 7, leader 3, learner"
        );
        let observer = NodeStatus {
            observer: true,
            ..learner.clone()
        };
        assert_eq!(
            node_line(&observer),
            "node 3 (10.0.0.3:7700): duck, term 7, leader 3, observer"
        );
        let drained = NodeStatus {
            drained: true,
            ..observer
        };
        assert_eq!(
            node_line(&drained),
            "node 3 (10.0.0.3:7700): duck, term 7, leader 3, observer, not eligible: drained"
        );
        // An eligibility change says it whatever the node is.
        assert_eq!(
            node_line_with_eligibility(&learner),
            "node 3 (10.0.0.3:7700): duck, term 7, leader 3, learner, not eligible"
        );
    }

    #[test]
    fn the_priority_is_shown_only_when_not_the_default() {
        let high = NodeStatus {
            priority: 150,
            ..status()
        };
        assert_eq!(
            node_line(&high),
            "node 3 (10.0.0.3:7700): goose, term 7, leader 3, lease 8 ms, priority 150"
        );
        let low = NodeStatus {
            priority: 0,
            ..ineligible(true, HealthState::None, None)
        };
        assert_eq!(
            node_line(&low),
            "node 3 (10.0.0.3:7700): duck, term 7, leader 3, priority 0, not eligible: drained"
        );
        assert!(!node_line(&status()).contains("priority"));
    }

    #[test]
    fn a_long_health_reason_is_cut_with_an_ellipsis() {
        let long = format!("exit status 1: {}", "x".repeat(200));
        let line = node_line(&ineligible(false, HealthState::Unhealthy, Some(&long)));
        let reason = line
            .strip_prefix(
                "node 3 (10.0.0.3:7700): duck, term 7, leader 3, not eligible: unhealthy (",
            )
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(reason.chars().count(), HEALTH_REASON_CHARS_MAX);
        assert!(
            reason.starts_with("exit status 1: xxx") && reason.ends_with("x…"),
            "{reason}"
        );
        // Control characters from a check's output cannot break the line.
        let hostile = node_line(&ineligible(
            false,
            HealthState::Unhealthy,
            Some("line one\nline two\x1b[31m"),
        ));
        assert!(
            hostile.ends_with("unhealthy (line one line two\\u{1b}[31m)"),
            "{hostile}"
        );
        assert_eq!(truncate("short", 60), "short");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("αβγδε", 5), "αβγδε");
        assert_eq!(truncate("ab  cdef", 4), "ab…");
    }

    #[test]
    fn an_eligibility_change_line_always_says_eligible_or_not() {
        assert_eq!(
            node_line_with_eligibility(&status()),
            "node 3 (10.0.0.3:7700): goose, term 7, leader 3, lease 8 ms, eligible"
        );
        assert_eq!(
            node_line_with_eligibility(&ineligible(true, HealthState::None, None)),
            "node 3 (10.0.0.3:7700): duck, term 7, leader 3, not eligible: drained"
        );
    }

    #[test]
    fn one_line_flattens_and_escapes() {
        assert_eq!(one_line("a\nb\x1b[31m"), "a b\\u{1b}[31m");
    }
}
