//! The partition table: the drill rules a daemon applies to its own
//! protocol datagrams (design.md §6 "Partition rules").
//!
//! Rules are evaluated in order and the first rule that matches a datagram
//! decides its fate: a rule with a drop percentage below 100 drops that share
//! of the datagrams it matches and lets the rest pass, without consulting
//! later rules. Rules may expire; an expired rule is removed (and logged) the
//! next time the table is used. Rules live in memory only, so a restart
//! clears them, and every change is logged at info level.
//!
//! Rule numbers are positions from 1, as `partition list` shows them; a rule
//! that expires or is deleted renumbers the rules after it, as in iptables.

use goose_common::partition::{Direction, ListedRule, Rule, RuleError, PARTITION_RULES_MAX};
use goose_common::NodeId;
use std::net::SocketAddr;
use std::time::Instant;

/// What to do with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Pass,
    /// Drop it, because of the rule with this number.
    Drop {
        /// The number (from 1) of the rule that dropped it.
        rule_number: usize,
    },
}

/// Why a change to the table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The table already holds [`PARTITION_RULES_MAX`] rules.
    #[error("the partition table is full ({0} rules); delete or flush some first")]
    Full(usize),
    /// No rule has this number.
    #[error("there is no rule {number} (the table has {count} rules)")]
    NoSuchRule {
        /// The number asked for.
        number: usize,
        /// How many rules there are.
        count: usize,
    },
    /// The rule itself is not valid.
    #[error(transparent)]
    Invalid(#[from] RuleError),
}

/// A rule in the table, with its deadline on this daemon's clock and how
/// many datagrams it has dropped (shown by `partition list`).
#[derive(Clone, Copy, Debug)]
struct ActiveRule {
    rule: Rule,
    expires_at: Option<Instant>,
    dropped: u64,
}

/// The ordered, bounded list of partition rules of one daemon.
#[derive(Debug)]
pub struct PartitionTable {
    rules: Vec<ActiveRule>,
    /// Draws the drop percentages; seeded so a drill can be replayed.
    rng: fastrand::Rng,
}

impl PartitionTable {
    /// An empty table whose drop percentages are drawn from `seed`.
    pub fn new(seed: u64) -> PartitionTable {
        PartitionTable {
            rules: Vec::with_capacity(PARTITION_RULES_MAX),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Appends `rule` and returns its number. Refused if the rule is not
    /// valid or the table is full.
    pub fn add(&mut self, rule: Rule, now: Instant) -> Result<usize, TableError> {
        rule.validate()?;
        self.remove_expired(now);
        if self.rules.len() >= PARTITION_RULES_MAX {
            return Err(TableError::Full(PARTITION_RULES_MAX));
        }
        // validate() bounds the duration, so this only fails if the clock is
        // near its end; such a rule is refused rather than made permanent.
        let expires_at = match rule.duration {
            Some(duration) => Some(
                now.checked_add(duration)
                    .ok_or(RuleError::DurationTooLong(duration))?,
            ),
            None => None,
        };
        self.rules.push(ActiveRule {
            rule,
            expires_at,
            dropped: 0,
        });
        let number = self.rules.len();
        tracing::info!(number, %rule, "partition rule added");
        debug_assert!(self.rules.len() <= PARTITION_RULES_MAX);
        Ok(number)
    }

    /// Deletes the rule with this number (from 1) and returns it.
    pub fn delete(&mut self, number: usize, now: Instant) -> Result<Rule, TableError> {
        self.remove_expired(now);
        if number == 0 || number > self.rules.len() {
            return Err(TableError::NoSuchRule {
                number,
                count: self.rules.len(),
            });
        }
        let removed = self.rules.remove(number - 1).rule;
        tracing::info!(number, rule = %removed, "partition rule deleted");
        Ok(removed)
    }

    /// Deletes every rule and returns how many there were.
    pub fn flush(&mut self) -> usize {
        let count = self.rules.len();
        self.rules.clear();
        tracing::info!(count, "partition rules flushed");
        count
    }

    /// The rules in order, with the time each has left.
    pub fn list(&mut self, now: Instant) -> Vec<ListedRule> {
        self.remove_expired(now);
        self.rules
            .iter()
            .enumerate()
            .map(|(index, active)| ListedRule {
                number: index + 1,
                rule: active.rule,
                remaining: active
                    .expires_at
                    .map(|deadline| deadline.saturating_duration_since(now)),
                dropped: active.dropped,
            })
            .collect()
    }

    /// How many rules are in force (expired ones may still be counted until
    /// the table is next used).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the table has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides the fate of one datagram going `direction`, of peer `peer_id`
    /// (the authenticated sender or the addressee, if known) at `address`.
    pub fn decide(
        &mut self,
        direction: Direction,
        peer_id: Option<NodeId>,
        addr: SocketAddr,
        now: Instant,
    ) -> Verdict {
        if self.rules.is_empty() {
            return Verdict::Pass;
        }
        self.remove_expired(now);
        let Some(index) = self
            .rules
            .iter()
            .position(|active| active.rule.matches(direction, peer_id, addr))
        else {
            return Verdict::Pass;
        };
        let rule = &mut self.rules[index];
        let percent = rule.rule.drop_percent.get();
        // Draw only for partial rules, so a table of whole drops uses no randomness.
        if percent >= 100 || self.rng.u8(0..100) < percent {
            rule.dropped = rule.dropped.saturating_add(1);
            Verdict::Drop {
                rule_number: index + 1,
            }
        } else {
            Verdict::Pass
        }
    }

    /// Removes (and logs) every rule whose deadline is at or before `now`.
    fn remove_expired(&mut self, now: Instant) {
        let mut number = 0;
        self.rules.retain(|active| {
            number += 1;
            let expired = active.expires_at.is_some_and(|deadline| deadline <= now);
            if expired {
                tracing::info!(number, rule = %active.rule, "partition rule expired");
            }
            !expired
        });
    }
}

#[cfg(test)]
mod tests {
    //! Goal: the table applies the first matching rule in the direction it
    //! names, drops about the configured share with a fixed seed, expires
    //! rules on time, numbers rules as `partition list` shows them, and
    //! refuses what it cannot hold.
    use super::*;
    use goose_common::partition::{Chain, DropPercent, Matcher};
    use std::time::Duration;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn peer_rule(chain: Chain, peer: u64) -> Rule {
        Rule::drop_all(chain, Matcher::Peer(NodeId(peer)))
    }

    #[test]
    fn an_empty_table_passes_everything() {
        let mut table = PartitionTable::new(1);
        let now = Instant::now();
        for direction in [Direction::In, Direction::Out] {
            let verdict = table.decide(direction, Some(NodeId(2)), addr("10.0.0.2:7700"), now);
            assert_eq!(verdict, Verdict::Pass);
        }
    }

    #[test]
    fn rules_apply_in_their_direction_only() {
        let mut table = PartitionTable::new(1);
        let now = Instant::now();
        let peer = addr("10.0.0.2:7700");
        assert_eq!(table.add(peer_rule(Chain::In, 2), now), Ok(1));
        assert_eq!(table.add(peer_rule(Chain::Out, 3), now), Ok(2));
        let drop_first = Verdict::Drop { rule_number: 1 };
        let drop_second = Verdict::Drop { rule_number: 2 };
        assert_eq!(
            table.decide(Direction::In, Some(NodeId(2)), peer, now),
            drop_first
        );
        assert_eq!(
            table.decide(Direction::Out, Some(NodeId(2)), peer, now),
            Verdict::Pass
        );
        assert_eq!(
            table.decide(Direction::Out, Some(NodeId(3)), peer, now),
            drop_second
        );
        assert_eq!(
            table.decide(Direction::In, Some(NodeId(3)), peer, now),
            Verdict::Pass
        );
        assert_eq!(table.decide(Direction::In, None, peer, now), Verdict::Pass);
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let mut table = PartitionTable::new(1);
        let now = Instant::now();
        let network = Matcher::Addr("10.0.0.0/24".parse().unwrap());
        let half = Rule {
            drop_percent: DropPercent::new(50).unwrap(),
            ..peer_rule(Chain::Both, 2)
        };
        table.add(half, now).unwrap();
        table
            .add(Rule::drop_all(Chain::Both, network), now)
            .unwrap();
        let peer = addr("10.0.0.2:7700");
        let passed = (0..1000)
            .filter(|_| table.decide(Direction::In, Some(NodeId(2)), peer, now) == Verdict::Pass)
            .count();
        // Rule 1 matched every datagram and let about half through; rule 2
        // (which drops all of 10.0.0.0/24) was never consulted for them.
        assert!((400..=600).contains(&passed), "{passed} of 1000 passed");
        let other = table.decide(Direction::In, Some(NodeId(4)), addr("10.0.0.4:1"), now);
        assert_eq!(other, Verdict::Drop { rule_number: 2 });
        let listed = table.list(now);
        assert_eq!(listed[0].dropped, 1000 - passed as u64);
        assert_eq!(listed[1].dropped, 1);
    }

    #[test]
    fn half_drop_drops_about_half_and_replays_with_the_seed() {
        let run = |seed| {
            let mut table = PartitionTable::new(seed);
            let now = Instant::now();
            let rule = Rule {
                drop_percent: DropPercent::new(50).unwrap(),
                ..peer_rule(Chain::In, 2)
            };
            table.add(rule, now).unwrap();
            (0..1000)
                .map(|_| table.decide(Direction::In, Some(NodeId(2)), addr("[::1]:1"), now))
                .collect::<Vec<_>>()
        };
        let verdicts = run(7);
        let dropped = verdicts.iter().filter(|v| **v != Verdict::Pass).count();
        assert!((430..=570).contains(&dropped), "{dropped} of 1000 dropped");
        assert_eq!(run(7), verdicts);
    }

    #[test]
    fn rules_expire_on_time() {
        let mut table = PartitionTable::new(1);
        let start = Instant::now();
        let rule = Rule {
            duration: Some(Duration::from_secs(10)),
            ..peer_rule(Chain::Both, 2)
        };
        table.add(rule, start).unwrap();
        table.add(peer_rule(Chain::Both, 3), start).unwrap();
        let peer = addr("10.0.0.2:7700");
        let listed = table.list(start + Duration::from_secs(4));
        assert_eq!(listed[0].remaining, Some(Duration::from_secs(6)));
        assert_eq!(listed[1].remaining, None);
        assert_eq!((listed[0].dropped, listed[1].dropped), (0, 0));
        let before = start + Duration::from_millis(9_999);
        let verdict = table.decide(Direction::In, Some(NodeId(2)), peer, before);
        assert_eq!(verdict, Verdict::Drop { rule_number: 1 });
        assert_eq!(table.list(before)[0].dropped, 1);
        let after = start + Duration::from_secs(10);
        let verdict = table.decide(Direction::In, Some(NodeId(2)), peer, after);
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(table.len(), 1);
        // The permanent rule moved up to number 1.
        let verdict = table.decide(Direction::In, Some(NodeId(3)), peer, after);
        assert_eq!(verdict, Verdict::Drop { rule_number: 1 });
    }

    #[test]
    fn delete_and_flush_change_the_numbering() {
        let mut table = PartitionTable::new(1);
        let now = Instant::now();
        for peer in 1..=3 {
            table.add(peer_rule(Chain::In, peer), now).unwrap();
        }
        assert_eq!(table.delete(2, now), Ok(peer_rule(Chain::In, 2)));
        let listed = table.list(now);
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (listed[1].number, listed[1].rule),
            (2, peer_rule(Chain::In, 3))
        );
        assert_eq!(
            table.delete(0, now),
            Err(TableError::NoSuchRule {
                number: 0,
                count: 2
            })
        );
        assert!(matches!(
            table.delete(3, now),
            Err(TableError::NoSuchRule { .. })
        ));
        assert_eq!(table.flush(), 2);
        assert!(table.is_empty());
        assert!(table.list(now).is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_refuses_invalid_rules() {
        let mut table = PartitionTable::new(1);
        let now = Instant::now();
        for peer in 0..PARTITION_RULES_MAX as u64 {
            table.add(peer_rule(Chain::In, peer + 1), now).unwrap();
        }
        assert_eq!(
            table.add(peer_rule(Chain::In, 1), now),
            Err(TableError::Full(PARTITION_RULES_MAX))
        );
        table.flush();
        for duration in [Duration::ZERO, Duration::MAX] {
            let rule = Rule {
                duration: Some(duration),
                ..peer_rule(Chain::In, 1)
            };
            assert!(matches!(table.add(rule, now), Err(TableError::Invalid(_))));
        }
        assert!(table.is_empty());
    }
}
