//! `partition list | add RULE | delete N | flush | split IDS IDS | heal`:
//! drills that drop the daemons' datagrams on purpose (design.md §6).

use crate::client;
use crate::error::CtlError;
use crate::member::parse_node_id;
use crate::output::{self, EXIT_SUCCESS};
use crate::Context;
use clap::ArgGroup;
use goose_common::control::{
    parse_cidr, Chain, Reply, Request, RuleInfo, RuleSpec, RuleTarget, MEMBERS_MAX,
    RULE_DURATION_MAX,
};
use goose_common::NodeId;
use serde::Serialize;
use std::time::Duration;

/// The `partition` commands.
#[derive(Debug, clap::Subcommand)]
pub enum PartitionCommand {
    /// The rules in force on this node, numbered.
    List,
    /// Append a rule on this node.
    Add(RuleArgs),
    /// Delete this node's rule number N.
    Delete {
        /// The rule's number, as `partition list` shows it.
        number: u32,
    },
    /// Delete every rule on this node.
    Flush,
    /// Cut the cluster in two: every reachable member drops traffic
    /// between the sides.
    Split {
        /// One side, comma-separated ids, e.g. 1,2.
        #[arg(value_name = "IDS", value_parser = parse_ids)]
        left: NodeIds,
        /// The other side, e.g. 3,4,5.
        #[arg(value_name = "IDS", value_parser = parse_ids)]
        right: NodeIds,
    },
    /// Delete every rule on every reachable member.
    Heal,
}

/// A list of node ids, parsed from `1,2,3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIds(Vec<NodeId>);

/// A rule: one direction, one peer or address block, how much to drop, and
/// for how long.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("chain").required(true).args(["in", "out", "both"])))]
#[command(group(ArgGroup::new("target").required(true).args(["peer", "addr"])))]
pub struct RuleArgs {
    /// Datagrams this node receives.
    #[arg(long = "in", id = "in")]
    inbound: bool,
    /// Datagrams this node sends.
    #[arg(long = "out", id = "out")]
    outbound: bool,
    /// Both directions.
    #[arg(long)]
    both: bool,
    /// Datagrams from or to this member.
    #[arg(long, value_name = "ID", value_parser = parse_node_id)]
    peer: Option<NodeId>,
    /// Datagrams from or to this address block, e.g. 10.0.0.0/24.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr_arg)]
    addr: Option<String>,
    /// The share of matching datagrams to drop.
    #[arg(long, value_name = "P", default_value_t = 100,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    drop_percent: u8,
    /// Remove the rule by itself after this long, e.g. 30s, 500ms, 2m, 1h.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    for_duration: Option<Duration>,
}

impl RuleArgs {
    /// The rule these flags describe (clap guarantees one chain and one target).
    fn to_rule(&self) -> RuleSpec {
        let chain = if self.inbound {
            Chain::In
        } else if self.outbound {
            Chain::Out
        } else {
            Chain::Both
        };
        let target = match (&self.peer, &self.addr) {
            (Some(peer), _) => RuleTarget::Peer(*peer),
            (None, Some(addr)) => RuleTarget::Addr(addr.clone()),
            // Unreachable through clap's required group; the daemon
            // refuses the empty address if it ever happens.
            (None, None) => RuleTarget::Addr(String::new()),
        };
        RuleSpec {
            chain,
            target,
            drop_percent: self.drop_percent,
            for_duration_ms: self
                .for_duration
                .map(|duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// Checks a CIDR block, keeping it as text.
fn parse_cidr_arg(text: &str) -> Result<String, String> {
    parse_cidr(text).map(|_| text.to_string())
}

/// Parses `1,2,3` into distinct ids.
fn parse_ids(text: &str) -> Result<NodeIds, String> {
    let ids = text
        .split(',')
        .map(|part| parse_node_id(part.trim()))
        .collect::<Result<Vec<NodeId>, String>>()?;
    if ids.len() > MEMBERS_MAX {
        return Err(format!("at most {MEMBERS_MAX} ids"));
    }
    Ok(NodeIds(ids))
}

/// Parses a duration with a unit: `500ms`, `30s`, `2m`, `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits_end = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (number_text, unit) = text.split_at(digits_end);
    let invalid = || format!("'{text}' is not a duration like 500ms, 30s, 2m or 1h");
    let number: u64 = number_text.parse().map_err(|_| invalid())?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(invalid()),
    };
    let duration = number
        .checked_mul(unit_ms)
        .map(Duration::from_millis)
        .filter(|duration| !duration.is_zero() && *duration <= RULE_DURATION_MAX)
        .ok_or_else(|| {
            format!(
                "'{text}' is out of range (above 0, at most {} h)",
                RULE_DURATION_MAX.as_secs() / 3600
            )
        })?;
    Ok(duration)
}

/// The JSON of `partition list`: `{"rules": [...]}`.
#[derive(Serialize)]
struct RulesJson<'a> {
    rules: &'a [RuleInfo],
}

/// One rule as text: `1: in peer 2, drop 100%, expires in 5000 ms, 12 dropped`.
fn rule_line(info: &RuleInfo) -> String {
    let mut text = format!("{}: {}", info.number, info.rule);
    if let Some(expires_in_ms) = info.expires_in_ms {
        text.push_str(&format!(", expires in {expires_in_ms} ms"));
    }
    text.push_str(&format!(", {} dropped", info.dropped));
    text
}

/// Runs one `partition` command.
pub fn run(context: &Context, command: PartitionCommand) -> Result<u8, CtlError> {
    let request = match command {
        PartitionCommand::List => Request::PartitionList,
        PartitionCommand::Add(rule) => Request::PartitionAdd(rule.to_rule()),
        PartitionCommand::Delete { number } => Request::PartitionDelete(number),
        PartitionCommand::Flush => Request::PartitionFlush,
        PartitionCommand::Split { left, right } => Request::PartitionSplit {
            sides: (left.0, right.0),
        },
        PartitionCommand::Heal => Request::PartitionHeal,
    };
    // Say what is wrong here rather than after a round trip.
    request.validate().map_err(CtlError::Invalid)?;
    match client::call(context, &request)? {
        Reply::Rules(rules) if request == Request::PartitionList => {
            if context.json {
                output::json(&RulesJson { rules: &rules })?;
            } else if rules.is_empty() {
                output::line("no rules")?;
            } else {
                for rule in &rules {
                    output::line(&rule_line(rule))?;
                }
            }
            Ok(EXIT_SUCCESS)
        }
        Reply::Ok(message) if request != Request::PartitionList => output::done(context, &message),
        _ => Err(CtlError::UnexpectedReply(request.command_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_stay_in_range() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            "0s",
            "25h",
            "99999999999999999999ms",
            "-1s",
            "3d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn id_lists_are_comma_separated_positive_ids() {
        assert_eq!(parse_ids("1,2"), Ok(NodeIds(vec![NodeId(1), NodeId(2)])));
        assert_eq!(parse_ids("3"), Ok(NodeIds(vec![NodeId(3)])));
        assert!(parse_ids("1,,2").is_err());
        assert!(parse_ids("0,1").is_err());
        assert!(parse_ids("a").is_err());
    }

    #[test]
    fn rule_lines_show_everything_the_rule_does() {
        let info = RuleInfo {
            number: 1,
            rule: RuleSpec {
                chain: Chain::In,
                target: RuleTarget::Peer(NodeId(2)),
                drop_percent: 100,
                for_duration_ms: Some(5000),
            },
            expires_in_ms: Some(4200),
            dropped: 12,
        };
        assert_eq!(
            rule_line(&info),
            "1: in peer 2, drop 100%, for 5000 ms, expires in 4200 ms, 12 dropped"
        );
    }
}
