//! `status [--local]` and `is-goose`.
//!
//! Answers are for the instant they are acted on (design.md §2): goosectl
//! judges this node's answer on its own `CLOCK_BOOTTIME` read, taken right
//! after the reply arrives and before it chooses what to print and its exit
//! code. An answer of goose whose promise is not strictly in the future by
//! then is shown, and exits, as a duck, saying why.

use crate::client;
use crate::error::CtlError;
use crate::output::{self, EXIT_DUCK, EXIT_SUCCESS};
use crate::Context;
use goose_common::answer::{self, Decision, DuckReason};
use goose_common::control::{ClusterStatus, HealthState, NodeRole, NodeStatus, Reply, Request};
use goose_common::{NodeId, Timestamp};
use serde::Serialize;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this node's own answer, without asking the other members.
    #[arg(long)]
    local: bool,
}

/// An answer as printed: every field of the [`NodeStatus`] (with `role` and
/// `lease_until_ns` those of the decision, so `role` never says goose when
/// the exit code says duck), plus what was decided, why, and for this
/// node, on which clock read of goosectl's.
#[derive(Clone, Debug, Serialize)]
pub struct Judged {
    #[serde(flatten)]
    status: NodeStatus,
    /// `goose` or `duck`.
    decision: &'static str,
    /// Why a duck (`not_goose`, `promise_expired`, `no_promise`,
    /// `unreachable`); null for goose.
    reason: Option<DuckReason>,
    /// goosectl's `CLOCK_BOOTTIME` read at the moment it decided; null for
    /// another member, which the local daemon judged when it replied.
    decided_at_ns: Option<u64>,
    /// This node's promise that had run out by then (reason `promise_expired`).
    expired_lease_until_ns: Option<u64>,
    #[serde(skip)]
    text: String,
}

impl Judged {
    /// Judges `status` (answered by this host's daemon) at `now`.
    fn new(mut status: NodeStatus, now: Timestamp) -> Judged {
        let decision = answer::decide_status(&status, now);
        let expired_lease_until_ns = match decision {
            Decision::Duck {
                expired: Some(until),
                ..
            } => Some(until.as_nanos()),
            _ => None,
        };
        if !decision.is_goose() && status.role == NodeRole::Goose {
            status.role = NodeRole::Duck;
            status.lease_until_ns = None;
        }
        Judged {
            status,
            decision: decision.as_str(),
            reason: decision.reason(),
            decided_at_ns: Some(now.as_nanos()),
            expired_lease_until_ns,
            text: decision.to_string(),
        }
    }

    /// Another member's answer as the local daemon judged it when it
    /// replied: `expired` if its goose answer had run out by then.
    fn remote(status: NodeStatus, expired: bool) -> Judged {
        let (reason, text) = match status.role {
            NodeRole::Goose => (None, "goose".to_string()),
            NodeRole::Duck if expired => (
                Some(DuckReason::PromiseExpired),
                "duck (promise ran out before the reply)".to_string(),
            ),
            NodeRole::Duck => (Some(DuckReason::NotGoose), "duck".to_string()),
            NodeRole::Unreachable => (Some(DuckReason::Unreachable), "unreachable".to_string()),
        };
        Judged {
            status,
            decision: if reason.is_none() { "goose" } else { "duck" },
            reason,
            decided_at_ns: None,
            expired_lease_until_ns: None,
            text,
        }
    }

    fn is_goose(&self) -> bool {
        self.reason.is_none()
    }

    /// `node 3 (...): duck (promise expired 3 ms ago), term 7, leader 3`.
    fn line(&self) -> String {
        output::node_line_as(&self.status, &self.text)
    }
}

/// goosectl's own clock read, at the moment of deciding.
fn now() -> Result<Timestamp, CtlError> {
    answer::boottime().map_err(CtlError::Clock)
}

/// A cluster status as printed (design.md §6): `self` judged by goosectl,
/// every member with its decision.
#[derive(Serialize)]
struct JudgedCluster<'a> {
    #[serde(rename = "self")]
    local: &'a Judged,
    members: Vec<Judged>,
    goose: Option<NodeId>,
}

/// `status`: one line per member and a line naming the goose (or saying why
/// there is none); with `--local`, this node's line only.
pub fn status(context: &Context, args: &StatusArgs) -> Result<u8, CtlError> {
    let request = Request::Status { local: args.local };
    match client::call(context, &request)? {
        Reply::NodeStatus(node) if args.local => {
            let judged = Judged::new(node, now()?);
            if context.json {
                output::json(&judged)?;
            } else {
                output::line(&judged.line())?;
            }
        }
        Reply::Status(cluster) if !args.local => {
            let judged = Judged::new(cluster.local.clone(), now()?);
            if context.json {
                output::json(&judged_cluster(&cluster, &judged))?;
            } else {
                for line in cluster_lines(&cluster, &judged) {
                    output::line(&line)?;
                }
            }
        }
        _ => return Err(CtlError::UnexpectedReply(request.command_name())),
    }
    Ok(EXIT_SUCCESS)
}

/// The goose of a cluster status once this node is judged: the daemon's
/// choice, unless that is this node and goosectl found its promise run out;
/// then the goose answer of the highest term among the other members, as
/// the daemon chooses, if any.
fn goose_of(cluster: &ClusterStatus, local: &Judged) -> Option<NodeId> {
    let me = local.status.id;
    if cluster.goose != Some(me) || local.is_goose() {
        return cluster.goose;
    }
    cluster
        .members
        .iter()
        .filter(|member| member.id != me && member.is_goose())
        .max_by_key(|member| member.term)
        .map(|member| member.id)
}

/// Every member as printed, in the daemon's order: this node as goosectl
/// judged it, the others as the daemon did.
fn judged_members(cluster: &ClusterStatus, local: &Judged) -> Vec<Judged> {
    cluster
        .members
        .iter()
        .map(|member| {
            if member.id == local.status.id {
                local.clone()
            } else {
                Judged::remote(member.clone(), cluster.expired.contains(&member.id))
            }
        })
        .collect()
}

fn judged_cluster<'a>(cluster: &ClusterStatus, local: &'a Judged) -> JudgedCluster<'a> {
    JudgedCluster {
        local,
        members: judged_members(cluster, local),
        goose: goose_of(cluster, local),
    }
}

/// The text of a cluster status: each member, then who the goose is.
fn cluster_lines(cluster: &ClusterStatus, local: &Judged) -> Vec<String> {
    let mut lines: Vec<String> = judged_members(cluster, local)
        .iter()
        .map(Judged::line)
        .collect();
    if !cluster
        .members
        .iter()
        .any(|member| member.id == local.status.id)
    {
        lines.insert(0, local.line());
    }
    let goose = goose_of(cluster, local).map(|id| {
        let term = cluster
            .members
            .iter()
            .find(|member| member.id == id)
            .map(|member| format!(" (term {})", member.term))
            .unwrap_or_default();
        format!("goose: node {id}{term}")
    });
    let mut ran_out: Vec<String> = cluster.expired.iter().map(ToString::to_string).collect();
    if local.reason == Some(DuckReason::PromiseExpired) {
        ran_out.push(local.status.id.to_string());
    }
    let none = if ran_out.is_empty() {
        format!("no goose: {}", why_no_goose(&cluster.members))
    } else {
        format!(
            "no goose at the instant of the reply: the goose answer of node {} ran out before it (status waits up to 500 ms for silent members; is-goose on that node answers at once)",
            ran_out.join(", node ")
        )
    };
    lines.push(goose.unwrap_or(none));
    lines
}

/// Why no member answered goose, as far as their answers tell: too few
/// voters reachable for a majority, no reachable voter eligible (and how
/// many are drained or unhealthy), or else no goose elected yet.
fn why_no_goose(members: &[NodeStatus]) -> String {
    let voters: Vec<&NodeStatus> = members
        .iter()
        .filter(|member| member.voter && !member.observer)
        .collect();
    let reachable: Vec<&NodeStatus> = voters
        .iter()
        .copied()
        .filter(|member| member.role != NodeRole::Unreachable)
        .collect();
    if voters.is_empty() {
        return "no voter known from here (this node has no configuration yet)".to_string();
    }
    let majority = voters.len() / 2 + 1;
    if reachable.len() < majority {
        return format!(
            "only {} of {} voters reachable",
            reachable.len(),
            voters.len()
        );
    }
    if reachable.iter().all(|member| !member.eligible) {
        let count = |keep: fn(&NodeStatus) -> bool| reachable.iter().filter(|m| keep(m)).count();
        let counts: Vec<String> = [
            (count(|member| member.drained), "drained"),
            (
                count(|member| member.health == HealthState::Unhealthy),
                "unhealthy",
            ),
            (
                count(|member| member.health == HealthState::Unknown),
                "health unknown",
            ),
        ]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| format!("{count} {what}"))
        .collect();
        let voter = if reachable.len() == voters.len() {
            "voter"
        } else {
            "reachable voter"
        };
        return if counts.is_empty() {
            format!("no {voter} is eligible")
        } else {
            format!("no {voter} is eligible ({})", counts.join(", "))
        };
    }
    let term = reachable
        .iter()
        .map(|member| member.term)
        .max()
        .unwrap_or_default();
    format!("no goose elected yet (term {term})")
}

/// `is-goose`: prints `goose` or `duck` (or the judged NodeStatus as JSON)
/// and returns exit code 0 or 1; anything else is an error (exit 2).
/// Exit 0 only if the promise is strictly in the future on goosectl's own
/// clock, read after the reply arrived, immediately before choosing.
pub fn is_goose(context: &Context) -> Result<u8, CtlError> {
    let Reply::IsGoose(node) = client::call(context, &Request::IsGoose)? else {
        return Err(CtlError::UnexpectedReply(Request::IsGoose.command_name()));
    };
    if node.role == NodeRole::Unreachable {
        return Err(CtlError::CannotTell);
    }
    let judged = Judged::new(node, now()?);
    let code = if judged.is_goose() {
        EXIT_SUCCESS
    } else {
        EXIT_DUCK
    };
    if context.json {
        output::json(&judged)?;
    } else {
        output::line(&judged.text)?;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::{LogIndex, Term};

    const MS: u64 = 1_000_000;

    fn node(id: u64, role: NodeRole) -> NodeStatus {
        NodeStatus {
            id: NodeId(id),
            addr: format!("10.0.0.{id}:7700").parse().unwrap(),
            role,
            term: Term(7),
            leader_id: None,
            commit_index: LogIndex(1),
            voter: true,
            clock_ns: 100 * MS,
            lease_until_ns: (role == NodeRole::Goose).then_some(110 * MS),
            last_index: LogIndex(1),
            removed: false,
            drops: Default::default(),
            eligible: true,
            health: HealthState::None,
            health_reason: None,
            drained: false,
            priority: output::DEFAULT_PRIORITY,
            observer: false,
            datagrams_sent: 0,
            datagrams_received: 0,
        }
    }

    /// The last line of the cluster status of `members`, none goose.
    fn no_goose_line(members: Vec<NodeStatus>) -> String {
        let cluster = ClusterStatus {
            local: members[0].clone(),
            members,
            goose: None,
            expired: Vec::new(),
        };
        let local = Judged::new(cluster.local.clone(), Timestamp(105 * MS));
        cluster_lines(&cluster, &local).pop().unwrap()
    }

    fn unreachable(id: u64) -> NodeStatus {
        NodeStatus {
            term: Term(0),
            eligible: false,
            health: HealthState::Unknown,
            priority: 0,
            ..node(id, NodeRole::Unreachable)
        }
    }

    fn with(status: NodeStatus, change: impl FnOnce(&mut NodeStatus)) -> NodeStatus {
        let mut status = status;
        change(&mut status);
        status
    }

    #[test]
    fn the_last_line_names_the_goose_or_says_there_is_none() {
        let cluster = ClusterStatus {
            local: node(1, NodeRole::Duck),
            members: vec![node(1, NodeRole::Duck), node(2, NodeRole::Goose)],
            goose: Some(NodeId(2)),
            expired: Vec::new(),
        };
        let local = Judged::new(cluster.local.clone(), Timestamp(105 * MS));
        let lines = cluster_lines(&cluster, &local);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], "goose: node 2 (term 7)");
        let headless = ClusterStatus {
            goose: None,
            ..cluster
        };
        assert_eq!(
            cluster_lines(&headless, &local).last().unwrap(),
            "no goose: no goose elected yet (term 7)"
        );
    }

    #[test]
    fn no_goose_says_why() {
        let duck = |id| node(id, NodeRole::Duck);
        let drained = |id| {
            with(duck(id), |status| {
                status.eligible = false;
                status.drained = true;
            })
        };
        let unhealthy = |id| {
            with(duck(id), |status| {
                status.eligible = false;
                status.health = HealthState::Unhealthy;
                status.health_reason = Some("exit status 1".to_string());
            })
        };
        // Fewer than a majority of voters answered.
        assert_eq!(
            no_goose_line(vec![
                duck(1),
                duck(2),
                unreachable(3),
                unreachable(4),
                unreachable(5)
            ]),
            "no goose: only 2 of 5 voters reachable"
        );
        // Learners and observers do not count among the voters.
        let learner = |id| with(duck(id), |status| status.voter = false);
        let observer = |id| with(learner(id), |status| status.observer = true);
        assert_eq!(
            no_goose_line(vec![duck(1), unreachable(2), learner(3), observer(4)]),
            "no goose: only 1 of 2 voters reachable"
        );
        // Every voter answered and none may lead.
        assert_eq!(
            no_goose_line(vec![
                drained(1),
                drained(2),
                unhealthy(3),
                unhealthy(4),
                with(unhealthy(5), |status| status.drained = true),
            ]),
            "no goose: no voter is eligible (3 drained, 3 unhealthy)"
        );
        let unknown = |id| {
            with(duck(id), |status| {
                status.eligible = false;
                status.health = HealthState::Unknown;
            })
        };
        assert_eq!(
            no_goose_line(vec![drained(1), unknown(2), unknown(3)]),
            "no goose: no voter is eligible (1 drained, 2 health unknown)"
        );
        // A majority answered, none eligible; the silent one may be.
        assert_eq!(
            no_goose_line(vec![drained(1), unhealthy(2), unreachable(3)]),
            "no goose: no reachable voter is eligible (1 drained, 1 unhealthy)"
        );
        // Ineligible for a reason the answers do not carry.
        assert_eq!(
            no_goose_line(vec![with(duck(1), |status| status.eligible = false)]),
            "no goose: no voter is eligible"
        );
        // A majority answered and one of them is eligible: an election is due.
        assert_eq!(
            no_goose_line(vec![
                drained(1),
                with(duck(2), |status| status.term = Term(9)),
                unreachable(3)
            ]),
            "no goose: no goose elected yet (term 9)"
        );
        // A node that has no configuration yet knows of no voter.
        assert_eq!(
            no_goose_line(vec![learner(1)]),
            "no goose: no voter known from here (this node has no configuration yet)"
        );
    }

    #[test]
    fn status_lines_carry_the_eligibility_and_json_every_field() {
        let drained = with(node(2, NodeRole::Duck), |status| {
            status.eligible = false;
            status.drained = true;
            status.priority = 50;
        });
        let cluster = ClusterStatus {
            local: node(1, NodeRole::Duck),
            members: vec![node(1, NodeRole::Duck), drained, unreachable(3)],
            goose: None,
            expired: Vec::new(),
        };
        let local = Judged::new(cluster.local.clone(), Timestamp(105 * MS));
        let lines = cluster_lines(&cluster, &local);
        assert_eq!(
            lines,
            [
                "node 1 (10.0.0.1:7700): duck, term 7, leader none",
                "node 2 (10.0.0.2:7700): duck, term 7, leader none, priority 50, not eligible: drained",
                "node 3 (10.0.0.3:7700): unreachable",
                "no goose: no goose elected yet (term 7)",
            ]
        );
        let json = serde_json::to_value(judged_cluster(&cluster, &local)).unwrap();
        for member in [&json["self"], &json["members"][0], &json["members"][1]] {
            for key in [
                "eligible",
                "health",
                "health_reason",
                "drained",
                "priority",
                "observer",
            ] {
                assert!(member.get(key).is_some(), "{key} missing: {member}");
            }
        }
        let member = &json["members"][1];
        assert_eq!(member["eligible"], false);
        assert_eq!(member["drained"], true);
        assert_eq!(member["health"], "none");
        assert!(member["health_reason"].is_null());
        assert_eq!(member["priority"], 50);
        assert_eq!(member["observer"], false);
        assert_eq!(json["members"][2]["health"], "unknown");
    }

    #[test]
    fn a_local_goose_is_judged_at_print_time() {
        let cluster = ClusterStatus {
            local: node(1, NodeRole::Goose),
            members: vec![node(1, NodeRole::Goose), node(2, NodeRole::Duck)],
            goose: Some(NodeId(1)),
            expired: Vec::new(),
        };
        let fresh = Judged::new(cluster.local.clone(), Timestamp(109 * MS));
        assert!(fresh.is_goose());
        assert_eq!(goose_of(&cluster, &fresh), Some(NodeId(1)));
        assert_eq!(
            cluster_lines(&cluster, &fresh)[0],
            "node 1 (10.0.0.1:7700): goose, term 7, leader none, lease 10 ms"
        );

        let stale = Judged::new(cluster.local.clone(), Timestamp(113 * MS));
        assert!(!stale.is_goose());
        assert_eq!(stale.status.role, NodeRole::Duck);
        assert_eq!(stale.status.lease_until_ns, None);
        assert_eq!(stale.expired_lease_until_ns, Some(110 * MS));
        assert_eq!(goose_of(&cluster, &stale), None);
        let lines = cluster_lines(&cluster, &stale);
        assert_eq!(
            lines[0],
            "node 1 (10.0.0.1:7700): duck (promise expired 3 ms ago), term 7, leader none"
        );
        assert_eq!(
            lines[2],
            "no goose at the instant of the reply: the goose answer of node 1 ran out before it (status waits up to 500 ms for silent members; is-goose on that node answers at once)"
        );

        let json = serde_json::to_value(judged_cluster(&cluster, &stale)).unwrap();
        assert!(json["goose"].is_null(), "{json}");
        assert_eq!(json["self"], json["members"][0]);
        assert_eq!(json["self"]["role"], "duck");
        assert_eq!(json["self"]["decision"], "duck");
        assert_eq!(json["self"]["reason"], "promise_expired");
        assert_eq!(json["self"]["decided_at_ns"], 113 * MS);
        assert_eq!(json["self"]["expired_lease_until_ns"], 110 * MS);
        assert!(json["self"]["lease_until_ns"].is_null());
        // The other members are the daemon's, as it judged them.
        let remote = serde_json::to_value(&cluster.members[1]).unwrap();
        for (key, value) in remote.as_object().unwrap() {
            assert_eq!(&json["members"][1][key], value, "{key}");
        }
        assert_eq!(json["members"][1]["decision"], "duck");
        assert_eq!(json["members"][1]["reason"], "not_goose");
        assert!(json["members"][1]["decided_at_ns"].is_null());
    }

    #[test]
    fn a_member_whose_promise_ran_out_before_the_reply_says_so() {
        // The daemon already shows node 2 as a duck and names it in `expired`.
        let cluster = ClusterStatus {
            local: node(1, NodeRole::Duck),
            members: vec![node(1, NodeRole::Duck), node(2, NodeRole::Duck)],
            goose: None,
            expired: vec![NodeId(2)],
        };
        let local = Judged::new(cluster.local.clone(), Timestamp(105 * MS));
        let lines = cluster_lines(&cluster, &local);
        assert_eq!(
            lines[1],
            "node 2 (10.0.0.2:7700): duck (promise ran out before the reply), term 7, leader none"
        );
        assert_eq!(
            lines[2],
            "no goose at the instant of the reply: the goose answer of node 2 ran out before it (status waits up to 500 ms for silent members; is-goose on that node answers at once)"
        );
        let json = serde_json::to_value(judged_cluster(&cluster, &local)).unwrap();
        assert_eq!(json["members"][1]["reason"], "promise_expired", "{json}");
        assert_eq!(json["members"][1]["role"], "duck");
        assert!(json["goose"].is_null());
        assert!(json.get("expired").is_none(), "said per member: {json}");
    }

    #[test]
    fn a_judged_answer_keeps_every_field_of_the_node_status() {
        let goose = Judged::new(node(3, NodeRole::Goose), Timestamp(101 * MS));
        let json = serde_json::to_value(&goose).unwrap();
        let plain = serde_json::to_value(node(3, NodeRole::Goose)).unwrap();
        for (key, value) in plain.as_object().unwrap() {
            assert_eq!(&json[key], value, "{key}");
        }
        assert_eq!(json["decision"], "goose");
        assert!(json["reason"].is_null());
        assert!(json["expired_lease_until_ns"].is_null());
        let duck = Judged::new(node(3, NodeRole::Duck), Timestamp(101 * MS));
        let json = serde_json::to_value(&duck).unwrap();
        assert_eq!(json["decision"], "duck");
        assert_eq!(json["reason"], "not_goose");
        assert_eq!(duck.text, "duck");
    }
}
