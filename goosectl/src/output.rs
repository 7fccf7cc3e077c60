//! Exit codes and the text and JSON forms of replies.

use crate::error::CtlError;
use goose_common::control::{NodeRole, NodeStatus};
use serde::Serialize;
use std::io::Write;

/// Success, and "goose" for `is-goose`.
pub const EXIT_SUCCESS: u8 = 0;
/// "duck" for `is-goose`.
pub const EXIT_DUCK: u8 = 1;
/// Any error, "cannot tell" for `is-goose` included.
pub const EXIT_ERROR: u8 = 2;

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

/// `node 3 (10.0.0.3:7700): goose, term 7, leader 3, lease 8 ms`.
pub fn node_line(status: &NodeStatus) -> String {
    node_line_as(status, &status.role.to_string())
}

/// [`node_line`] with `role` in place of the role, e.g.
/// `duck (promise expired 3 ms ago)` for an answer judged by goosectl.
pub fn node_line_as(status: &NodeStatus, role: &str) -> String {
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
    if !status.voter {
        text.push_str(", learner");
    }
    if status.removed {
        text.push_str(", removed");
    }
    text
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
    fn one_line_flattens_and_escapes() {
        assert_eq!(one_line("a\nb\x1b[31m"), "a b\\u{1b}[31m");
    }
}
