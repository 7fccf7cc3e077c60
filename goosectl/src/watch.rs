//! `watch`: a line per role, leader or eligibility change until interrupted.

use crate::client::Client;
use crate::error::CtlError;
use crate::output;
use crate::Context;
use goose_common::control::{WatchEvent, WatchEventKind};

/// Streams the daemon's events; returns only on an error (the daemon going
/// away included), since the normal end is the operator's Ctrl-C.
pub fn watch(context: &Context) -> Result<u8, CtlError> {
    let mut client = Client::connect(&context.socket)?;
    client.start_watch()?;
    loop {
        let event = client.next_event()?;
        if context.json {
            // One object per line (JSON Lines), one line per event.
            output::json(&event)?;
        } else {
            output::line(&event_line(&event))?;
        }
    }
}

/// `became goose: node 3 (10.0.0.3:7700): goose, term 7, leader 3, lease 8 ms`;
/// an eligibility change always ends with the eligibility, `eligible` or
/// `not eligible: drained` (say).
fn event_line(event: &WatchEvent) -> String {
    let node = match event.kind {
        WatchEventKind::EligibilityChanged => output::node_line_with_eligibility(&event.status),
        _ => output::node_line(&event.status),
    };
    format!("{}: {node}", event.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::control::{HealthState, NodeRole, NodeStatus};
    use goose_common::{LogIndex, NodeId, Term};

    fn duck() -> NodeStatus {
        NodeStatus {
            id: NodeId(3),
            addr: "10.0.0.3:7700".parse().unwrap(),
            role: NodeRole::Duck,
            term: Term(7),
            leader_id: Some(NodeId(1)),
            commit_index: LogIndex(4),
            voter: true,
            clock_ns: 1_000_000,
            lease_until_ns: None,
            last_index: LogIndex(4),
            removed: false,
            drops: Default::default(),
            eligible: true,
            health: HealthState::Healthy,
            health_reason: None,
            drained: false,
            priority: output::DEFAULT_PRIORITY,
            observer: false,
            datagrams_sent: 0,
            datagrams_received: 0,
        }
    }

    #[test]
    fn eligibility_changes_print_a_line_like_the_other_events() {
        let event = |kind, status| WatchEvent { kind, status };
        assert_eq!(
            event_line(&event(WatchEventKind::LeaderChanged, duck())),
            "leader changed: node 3 (10.0.0.3:7700): duck, term 7, leader 1"
        );
        assert_eq!(
            event_line(&event(WatchEventKind::EligibilityChanged, duck())),
            "eligibility changed: node 3 (10.0.0.3:7700): duck, term 7, leader 1, eligible"
        );
        let drained = NodeStatus {
            eligible: false,
            drained: true,
            ..duck()
        };
        assert_eq!(
            event_line(&event(WatchEventKind::EligibilityChanged, drained.clone())),
            "eligibility changed: node 3 (10.0.0.3:7700): duck, term 7, leader 1, not eligible: drained"
        );
        // Other events show an ineligible node's reason too.
        assert_eq!(
            event_line(&event(WatchEventKind::Initial, drained)),
            "now: node 3 (10.0.0.3:7700): duck, term 7, leader 1, not eligible: drained"
        );
        let unhealthy = NodeStatus {
            eligible: false,
            health: HealthState::Unhealthy,
            health_reason: Some("exit status 1: disk full".to_string()),
            ..duck()
        };
        assert_eq!(
            event_line(&event(WatchEventKind::EligibilityChanged, unhealthy)),
            "eligibility changed: node 3 (10.0.0.3:7700): duck, term 7, leader 1, \
             not eligible: unhealthy (exit status 1: disk full)"
        );
    }
}
