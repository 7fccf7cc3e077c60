//! `member list | add [--observer] ID ADDR | remove ID | promote ID | demote ID`.

use crate::client;
use crate::error::CtlError;
use crate::output::{self, EXIT_SUCCESS};
use crate::Context;
use goose_common::control::{MemberInfo, Reply, Request};
use goose_common::NodeId;
use serde::Serialize;
use std::net::SocketAddr;

/// The `member` commands.
#[derive(Debug, clap::Subcommand)]
pub enum MemberCommand {
    /// The members of the configuration.
    List,
    /// Add a voter (it must run with --join); returns once it votes. With
    /// --observer, a member that follows the goose but never votes.
    Add {
        /// Add an observer: it never votes, never counts for a majority and
        /// is never the goose; returns once the change commits.
        #[arg(long)]
        observer: bool,
        /// The new node's id (above 0).
        #[arg(value_parser = parse_node_id)]
        id: NodeId,
        /// Its UDP address, e.g. 10.0.0.4:7700.
        addr: SocketAddr,
    },
    /// Remove a member; returns once the change commits.
    Remove {
        /// The member's id.
        #[arg(value_parser = parse_node_id)]
        id: NodeId,
    },
    /// Make an observer a voter; returns once it votes (its daemon must be
    /// running and caught up).
    Promote {
        /// The observer's id.
        #[arg(value_parser = parse_node_id)]
        id: NodeId,
    },
    /// Make a voter an observer; returns once the change commits (a
    /// demoted goose stops answering goose at once and hands the goose over
    /// once the change commits).
    Demote {
        /// The voter's id.
        #[arg(value_parser = parse_node_id)]
        id: NodeId,
    },
}

/// Parses a node id: an integer above 0.
pub fn parse_node_id(text: &str) -> Result<NodeId, String> {
    let id = text
        .parse::<u64>()
        .map(NodeId)
        .map_err(|_| format!("'{text}' is not a node id (a positive integer)"))?;
    if !id.is_valid() {
        return Err("node ids start at 1".to_string());
    }
    Ok(id)
}

/// The JSON of `member list`: `{"members": [...]}`.
#[derive(Serialize)]
struct MembersJson<'a> {
    members: &'a [MemberInfo],
}

/// Runs one `member` command.
pub fn run(context: &Context, command: MemberCommand) -> Result<u8, CtlError> {
    let request = match command {
        MemberCommand::List => Request::MemberList,
        MemberCommand::Add { observer, id, addr } => Request::MemberAdd { id, addr, observer },
        MemberCommand::Remove { id } => Request::MemberRemove { id },
        MemberCommand::Promote { id } => Request::MemberPromote { id },
        MemberCommand::Demote { id } => Request::MemberDemote { id },
    };
    match client::call(context, &request)? {
        Reply::Members(members) if request == Request::MemberList => {
            if context.json {
                output::json(&MembersJson { members: &members })?;
            } else if members.is_empty() {
                output::line("no members")?;
            } else {
                for member in &members {
                    output::line(&format!(
                        "node {} ({}): {}",
                        member.id, member.addr, member.role
                    ))?;
                }
            }
            Ok(EXIT_SUCCESS)
        }
        Reply::Ok(message) if request != Request::MemberList => output::done(context, &message),
        _ => Err(CtlError::UnexpectedReply(request.command_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_positive_integers() {
        assert_eq!(parse_node_id("3"), Ok(NodeId(3)));
        assert!(parse_node_id("0").is_err());
        assert!(parse_node_id("-1").is_err());
        assert!(parse_node_id("x").is_err());
    }
}
