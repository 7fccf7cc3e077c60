//! `partition list | add RULE | delete N | flush | split IDS IDS | heal`:
//! drills that drop the daemons' datagrams on purpose (design.md §6).

use crate::client;
use crate::error::CtlError;
use crate::member::parse_node_id;
use crate::output::{self, EXIT_SUCCESS};
use crate::Context;
use clap::ArgGroup;
use goose_common::control::{Reply, Request, MEMBERS_MAX};
use goose_common::partition::{
    parse_duration, Chain, Cidr, DropPercent, ListedRule, Matcher, Rule, RuleError,
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
/// for how long. Each value is read by `goose_common::partition`'s own
/// parsers, so goosectl refuses exactly what the daemon would.
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
    /// Datagrams from or to this address block, e.g. 10.0.0.0/24, fd00::/8
    /// or a bare address.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    addr: Option<Cidr>,
    /// The share of matching datagrams to drop, 1 to 100.
    #[arg(long, value_name = "P", default_value = "100", value_parser = parse_drop_percent)]
    drop_percent: DropPercent,
    /// Remove the rule by itself after this long, e.g. 30s, 500ms, 2m, 1h,
    /// 1m30s (a bare number means seconds; at most 24h).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    for_duration: Option<Duration>,
}

impl RuleArgs {
    /// The rule these flags describe; clap's required groups guarantee one
    /// chain and one target.
    fn to_rule(&self) -> Result<Rule, CtlError> {
        let chain = if self.inbound {
            Chain::In
        } else if self.outbound {
            Chain::Out
        } else {
            Chain::Both
        };
        let matcher = match (self.peer, self.addr) {
            (Some(peer), _) => Matcher::Peer(peer),
            (None, Some(cidr)) => Matcher::Addr(cidr),
            (None, None) => {
                return Err(CtlError::Invalid(
                    "a rule needs --peer ID or --addr CIDR".to_string(),
                ))
            }
        };
        Ok(Rule {
            chain,
            matcher,
            drop_percent: self.drop_percent,
            duration: self.for_duration,
        })
    }
}

/// Reads `--addr` with [`Cidr`]'s parser.
fn parse_cidr(text: &str) -> Result<Cidr, RuleError> {
    text.parse()
}

/// Reads `--drop-percent`: a whole number from 1 to 100.
fn parse_drop_percent(text: &str) -> Result<DropPercent, String> {
    let percent: u64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number (expected 1 to 100)"))?;
    DropPercent::new(percent).map_err(|error| error.to_string())
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

/// The JSON of `partition list`: `{"rules": [...]}`, each rule a
/// [`ListedRule`] as goose-common serializes it.
#[derive(Serialize)]
struct RulesJson<'a> {
    rules: &'a [ListedRule],
}

/// Runs one `partition` command.
pub fn run(context: &Context, command: PartitionCommand) -> Result<u8, CtlError> {
    let request = match command {
        PartitionCommand::List => Request::PartitionList,
        PartitionCommand::Add(rule) => Request::PartitionAdd(rule.to_rule()?),
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
                    output::line(&rule.to_string())?;
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
    fn id_lists_are_comma_separated_positive_ids() {
        assert_eq!(parse_ids("1,2"), Ok(NodeIds(vec![NodeId(1), NodeId(2)])));
        assert_eq!(parse_ids("3"), Ok(NodeIds(vec![NodeId(3)])));
        assert!(parse_ids("1,,2").is_err());
        assert!(parse_ids("0,1").is_err());
        assert!(parse_ids("a").is_err());
    }

    #[test]
    fn drop_percentages_are_whole_numbers_from_1_to_100() {
        assert_eq!(parse_drop_percent("1").map(DropPercent::get), Ok(1));
        assert_eq!(parse_drop_percent("100"), Ok(DropPercent::ALL));
        assert_eq!(
            parse_drop_percent("0"),
            Err("drop percentage 0 is outside 1 to 100".to_string())
        );
        assert_eq!(
            parse_drop_percent("101"),
            Err("drop percentage 101 is outside 1 to 100".to_string())
        );
        for bad in ["", "50%", "1.5", "-1", "x"] {
            assert!(parse_drop_percent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_become_the_rule_they_describe() {
        let args = RuleArgs {
            inbound: false,
            outbound: true,
            both: false,
            peer: None,
            addr: Some("10.0.0.0/24".parse().unwrap()),
            drop_percent: DropPercent::new(50).unwrap(),
            for_duration: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            args.to_rule().unwrap().to_string(),
            "out addr 10.0.0.0/24, drop 50%, for 30s"
        );
        let args = RuleArgs {
            outbound: false,
            both: true,
            peer: Some(NodeId(2)),
            addr: None,
            drop_percent: DropPercent::ALL,
            for_duration: None,
            ..args
        };
        assert_eq!(
            args.to_rule().unwrap(),
            Rule::drop_all(Chain::Both, Matcher::Peer(NodeId(2)))
        );
    }
}
