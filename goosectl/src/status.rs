//! `status [--local]` and `is-goose`.

use crate::client;
use crate::error::CtlError;
use crate::output::{self, EXIT_DUCK, EXIT_SUCCESS};
use crate::Context;
use goose_common::control::{ClusterStatus, NodeRole, Reply, Request};

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this node's own answer, without asking the other members.
    #[arg(long)]
    local: bool,
}

/// `status`: one line per member and a line naming the goose; with
/// `--local`, this node's line only.
pub fn status(context: &Context, args: &StatusArgs) -> Result<u8, CtlError> {
    let request = Request::Status { local: args.local };
    match client::call(context, &request)? {
        Reply::NodeStatus(node) if args.local => {
            if context.json {
                output::json(&node)?;
            } else {
                output::line(&output::node_line(&node))?;
            }
        }
        Reply::Status(cluster) if !args.local => {
            if context.json {
                output::json(&cluster)?;
            } else {
                for line in cluster_lines(&cluster) {
                    output::line(&line)?;
                }
            }
        }
        _ => return Err(CtlError::UnexpectedReply(request.command_name())),
    }
    Ok(EXIT_SUCCESS)
}

/// The text of a cluster status: each member, then who the goose is.
fn cluster_lines(cluster: &ClusterStatus) -> Vec<String> {
    let mut lines: Vec<String> = cluster.members.iter().map(output::node_line).collect();
    if !cluster
        .members
        .iter()
        .any(|member| member.id == cluster.local.id)
    {
        lines.insert(0, output::node_line(&cluster.local));
    }
    let goose = cluster.goose.map(|id| {
        let term = cluster
            .members
            .iter()
            .find(|member| member.id == id)
            .map(|member| format!(" (term {})", member.term))
            .unwrap_or_default();
        format!("goose: node {id}{term}")
    });
    lines.push(goose.unwrap_or_else(|| "no goose: no quorum reachable from here".to_string()));
    lines
}

/// `is-goose`: prints `goose` or `duck` (or the NodeStatus as JSON) and
/// returns exit code 0 or 1; anything else is an error (exit 2).
pub fn is_goose(context: &Context) -> Result<u8, CtlError> {
    let Reply::IsGoose(node) = client::call(context, &Request::IsGoose)? else {
        return Err(CtlError::UnexpectedReply(Request::IsGoose.command_name()));
    };
    let code = match node.role {
        NodeRole::Goose => EXIT_SUCCESS,
        NodeRole::Duck => EXIT_DUCK,
        NodeRole::Unreachable => return Err(CtlError::CannotTell),
    };
    if context.json {
        output::json(&node)?;
    } else {
        output::line(&node.role.to_string())?;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::control::NodeStatus;
    use goose_common::{LogIndex, NodeId, Term};

    fn node(id: u64, role: NodeRole) -> NodeStatus {
        NodeStatus {
            id: NodeId(id),
            addr: format!("10.0.0.{id}:7700").parse().unwrap(),
            role,
            term: Term(7),
            leader_id: None,
            commit_index: LogIndex(1),
            voter: true,
            clock_ns: 0,
            lease_until_ns: None,
            last_index: LogIndex(1),
            removed: false,
            drops: Default::default(),
        }
    }

    #[test]
    fn the_last_line_names_the_goose_or_says_there_is_none() {
        let cluster = ClusterStatus {
            local: node(1, NodeRole::Duck),
            members: vec![node(1, NodeRole::Duck), node(2, NodeRole::Goose)],
            goose: Some(NodeId(2)),
        };
        let lines = cluster_lines(&cluster);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], "goose: node 2 (term 7)");
        let headless = ClusterStatus {
            goose: None,
            ..cluster
        };
        assert_eq!(
            cluster_lines(&headless).last().unwrap(),
            "no goose: no quorum reachable from here"
        );
    }
}
