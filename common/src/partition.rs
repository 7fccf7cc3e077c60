//! Partition rules for drills (design.md §6 "Partition rules"), shared by
//! `goosectl` (which builds them from flags and prints them) and `goosed`
//! (which evaluates them on every protocol datagram).
//!
//! A rule says: in this direction (`--in`, `--out`, `--both`), for datagrams
//! of this peer (`--peer ID`) or of these addresses (`--addr CIDR`), drop
//! this share of them (`--drop-percent P`, default 100), optionally for a
//! while (`--for DURATION`). The daemon evaluates its rules in order and the
//! first rule that matches decides.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// The most rules one daemon holds; adding more is refused.
pub const PARTITION_RULES_MAX: usize = 64;

/// The longest a rule may be given to live with `--for` (a day: drill rules
/// are meant to be short-lived). Longer drills can leave out `--for`; the
/// bound also keeps deadline arithmetic finite.
pub const PARTITION_RULE_DURATION_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest text [`parse_duration`] accepts, in bytes.
const DURATION_TEXT_BYTES_MAX: usize = 32;

/// Why a rule, or a part of one, is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The address part of a CIDR is not an IPv4 or IPv6 address.
    #[error("{0:?} is not an IP address (expected e.g. 10.0.0.0/8, 10.0.0.3 or fd00::/8)")]
    InvalidAddr(String),
    /// The prefix length is not a number within the address family's width.
    #[error("{text:?} is not a prefix length for {family} (expected 0 to {max})")]
    InvalidPrefixLength {
        /// The prefix length as written.
        text: String,
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// The largest valid prefix length (32 or 128).
        max: u8,
    },
    /// The address has bits set past the prefix.
    #[error("{written} has host bits set past the /{prefix_len}; did you mean {suggested}?")]
    HostBitsSet {
        /// The CIDR as written.
        written: String,
        /// The prefix length.
        prefix_len: u8,
        /// The network the operator probably meant.
        suggested: String,
    },
    /// The drop percentage is outside 1..=100.
    #[error("drop percentage {0} is outside 1 to 100")]
    DropPercentOutOfRange(u64),
    /// A duration could not be read.
    #[error("{0:?} is not a duration (expected e.g. 30s, 500ms, 2m, 1h or 1m30s)")]
    InvalidDuration(String),
    /// A duration is zero.
    #[error("a rule's duration must be longer than zero")]
    ZeroDuration,
    /// A duration exceeds [`PARTITION_RULE_DURATION_MAX`].
    #[error(
        "{given} is too long: a rule may last at most {max} (leave out --for for no expiry)",
        given = DisplayDuration(*.0),
        max = DisplayDuration(PARTITION_RULE_DURATION_MAX)
    )]
    DurationTooLong(Duration),
    /// A `--peer` rule names node id 0, which no node has.
    #[error("peer id {0} is not a node id (ids start at 1)")]
    InvalidPeerId(NodeId),
}

/// The direction a datagram travels, relative to this daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Received from a peer.
    In,
    /// Sent to a peer.
    Out,
}

/// Which datagrams a rule applies to, by direction. In JSON: `"in"`,
/// `"out"` or `"both"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chain {
    /// Received datagrams (`--in`).
    In,
    /// Sent datagrams (`--out`).
    Out,
    /// Both (`--both`).
    Both,
}

impl Chain {
    /// Whether a rule of this chain applies to datagrams going `direction`.
    pub fn applies_to(self, direction: Direction) -> bool {
        matches!(
            (self, direction),
            (Chain::Both, _) | (Chain::In, Direction::In) | (Chain::Out, Direction::Out)
        )
    }

    /// The lowercase name, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Chain::In => "in",
            Chain::Out => "out",
            Chain::Both => "both",
        }
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An IPv4 or IPv6 network: an address whose bits past `prefix_len` are zero.
///
/// Serialized as its text (`"10.0.0.0/8"`), which keeps JSON readable and
/// lets deserialization check it like the parser does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// The network of `prefix_len` leading bits of `network`, which must
    /// have no bits set past them.
    pub fn new(network: IpAddr, prefix_len: u8) -> Result<Cidr, RuleError> {
        let (family, width) = family_and_width(network);
        if prefix_len > width {
            return Err(RuleError::InvalidPrefixLength {
                text: prefix_len.to_string(),
                family,
                max: width,
            });
        }
        let masked = mask(network, prefix_len);
        if masked != network {
            return Err(RuleError::HostBitsSet {
                written: format!("{network}/{prefix_len}"),
                prefix_len,
                suggested: format!("{masked}/{prefix_len}"),
            });
        }
        Ok(Cidr {
            network,
            prefix_len,
        })
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// How many leading bits must match.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `address` is in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`, as a dual-stack socket reports IPv4 peers) counts
    /// as its IPv4 address.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        let same_family = addr.is_ipv4() == self.network.is_ipv4();
        same_family && mask(addr, self.prefix_len) == self.network
    }
}

/// The family's name and its address width in bits.
fn family_and_width(addr: IpAddr) -> (&'static str, u8) {
    match addr {
        IpAddr::V4(_) => ("IPv4", 32),
        IpAddr::V6(_) => ("IPv6", 128),
    }
}

/// `address` with every bit past the first `prefix_len` cleared
/// (`prefix_len` at most the family's width).
fn mask(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V4((bits & kept).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX
                .checked_shl(128 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V6((bits & kept).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = RuleError;

    /// Parses `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128).
    fn from_str(text: &str) -> Result<Cidr, RuleError> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr_text
            .parse()
            .map_err(|_| RuleError::InvalidAddr(addr_text.to_string()))?;
        let (family, width) = family_and_width(network);
        let prefix_len = match prefix_text {
            None => width,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|&length| length <= width && !prefix.starts_with('+'))
                .ok_or_else(|| RuleError::InvalidPrefixLength {
                    text: prefix.to_string(),
                    family,
                    max: width,
                })?,
        };
        Cidr::new(network, prefix_len)
    }
}

impl TryFrom<String> for Cidr {
    type Error = RuleError;

    fn try_from(text: String) -> Result<Cidr, RuleError> {
        text.parse()
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> String {
        cidr.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Which peer's datagrams a rule applies to. In JSON: `{"peer": 3}` or
/// `{"addr": "10.0.0.0/8"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Matcher {
    /// The peer with this node id: the authenticated sender of a received
    /// datagram, or the addressee of a sent one (`--peer ID`).
    Peer(NodeId),
    /// Any peer whose socket address is in this network (`--addr CIDR`).
    Addr(Cidr),
}

impl Matcher {
    /// Whether a datagram of peer `peer_id` (if known) at `address` matches.
    pub fn matches(&self, peer_id: Option<NodeId>, addr: SocketAddr) -> bool {
        match self {
            Matcher::Peer(id) => peer_id == Some(*id),
            Matcher::Addr(cidr) => cidr.contains(addr.ip()),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Peer(id) => write!(f, "peer {id}"),
            Matcher::Addr(cidr) => write!(f, "addr {cidr}"),
        }
    }
}

/// The share of matching datagrams a rule drops: 1 to 100 percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct DropPercent(u8);

impl DropPercent {
    /// Every matching datagram (the default).
    pub const ALL: DropPercent = DropPercent(100);

    /// `percent`, if it is within 1..=100.
    pub fn new(percent: u64) -> Result<DropPercent, RuleError> {
        match u8::try_from(percent) {
            Ok(valid @ 1..=100) => Ok(DropPercent(valid)),
            _ => Err(RuleError::DropPercentOutOfRange(percent)),
        }
    }

    /// The percentage, 1 to 100.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for DropPercent {
    fn default() -> DropPercent {
        DropPercent::ALL
    }
}

impl TryFrom<u8> for DropPercent {
    type Error = RuleError;

    fn try_from(percent: u8) -> Result<DropPercent, RuleError> {
        DropPercent::new(u64::from(percent))
    }
}

impl From<DropPercent> for u8 {
    fn from(percent: DropPercent) -> u8 {
        percent.0
    }
}

impl fmt::Display for DropPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// One partition rule, as `goosectl partition add` sends it.
///
/// Its duration travels (in postcard and JSON alike) as whole milliseconds,
/// `duration_ms`, the resolution [`parse_duration`] reads and
/// [`DisplayDuration`] prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// Which direction it applies to.
    pub chain: Chain,
    /// Which peer it applies to.
    pub matcher: Matcher,
    /// The share of matching datagrams it drops.
    pub drop_percent: DropPercent,
    /// How long after being added it expires; `None`: until deleted, flushed
    /// or the daemon restarts (rules are never persisted).
    #[serde(rename = "duration_ms", with = "optional_millis")]
    pub duration: Option<Duration>,
}

impl Rule {
    /// A rule dropping every matching datagram, with no expiry.
    pub fn drop_all(chain: Chain, matcher: Matcher) -> Rule {
        Rule {
            chain,
            matcher,
            drop_percent: DropPercent::ALL,
            duration: None,
        }
    }

    /// Checks what the types cannot: a peer is a valid node id, and the
    /// duration is positive and at most [`PARTITION_RULE_DURATION_MAX`]. A
    /// daemon checks every rule it is given, since a rule may arrive from
    /// anywhere over the control socket.
    pub fn validate(&self) -> Result<(), RuleError> {
        if let Matcher::Peer(id) = self.matcher {
            if !id.is_valid() {
                return Err(RuleError::InvalidPeerId(id));
            }
        }
        match self.duration {
            Some(duration) if duration.is_zero() => Err(RuleError::ZeroDuration),
            Some(duration) if duration > PARTITION_RULE_DURATION_MAX => {
                Err(RuleError::DurationTooLong(duration))
            }
            _ => Ok(()),
        }
    }

    /// Whether this rule applies to a datagram going `direction` of peer
    /// `peer_id` (if known) at `address`. The drop percentage is not drawn here.
    pub fn matches(&self, direction: Direction, peer_id: Option<NodeId>, addr: SocketAddr) -> bool {
        self.chain.applies_to(direction) && self.matcher.matches(peer_id, addr)
    }
}

impl fmt::Display for Rule {
    /// Like `in peer 3, drop 100%` or `both addr 10.0.0.0/8, drop 50%, for 30s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}, drop {}",
            self.chain, self.matcher, self.drop_percent
        )?;
        if let Some(duration) = self.duration {
            write!(f, ", for {}", DisplayDuration(duration))?;
        }
        Ok(())
    }
}

/// A rule as `partition list` shows it: its number (1-based, the `N` of
/// `partition delete N`), the time it has left if it expires, and how many
/// datagrams it has dropped. Like [`Rule`], its time left travels as
/// milliseconds, `remaining_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListedRule {
    /// The rule's position in the table, from 1.
    pub number: usize,
    /// The rule as it was added.
    pub rule: Rule,
    /// How long until it expires, if it does.
    #[serde(rename = "remaining_ms", with = "optional_millis")]
    pub remaining: Option<Duration>,
    /// How many datagrams it has dropped since it was added.
    pub dropped: u64,
}

impl fmt::Display for ListedRule {
    /// Like `2: out addr 10.0.0.0/8, drop 100%, 29s500ms left, 12 dropped`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = &self.rule;
        write!(
            f,
            "{}: {} {}, drop {}",
            self.number, rule.chain, rule.matcher, rule.drop_percent
        )?;
        match self.remaining {
            Some(remaining) => write!(f, ", {} left", DisplayDuration(remaining))?,
            None => f.write_str(", until deleted")?,
        }
        write!(f, ", {} dropped", self.dropped)
    }
}

/// (De)serializes an `Option<Duration>` as an optional number of whole
/// milliseconds (rounded down; saturating at `u64::MAX`), so that JSON reads
/// `"duration_ms": 30000` rather than `{"secs": 30, "nanos": 0}`.
mod optional_millis {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        duration
            .map(|duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map(Duration::from_millis))
    }
}

/// Formats a duration the way [`parse_duration`] reads it, to the
/// millisecond: `1h2m3s`, `29s500ms`, `250ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DisplayDuration(pub Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_seconds = self.0.as_secs();
        let parts = [
            (total_seconds / 3600, "h"),
            (total_seconds / 60 % 60, "m"),
            (total_seconds % 60, "s"),
            (u64::from(self.0.subsec_millis()), "ms"),
        ];
        let mut wrote_any = false;
        for (amount, unit) in parts {
            if amount > 0 {
                write!(f, "{amount}{unit}")?;
                wrote_any = true;
            }
        }
        if !wrote_any {
            f.write_str("0ms")?;
        }
        Ok(())
    }
}

/// Reads a duration for `--for`: one or more `<integer><unit>` parts with
/// units `ms`, `s`, `m`, `h` (e.g. `30s`, `500ms`, `1m30s`), or a bare
/// integer meaning seconds. The result is positive and at most
/// [`PARTITION_RULE_DURATION_MAX`].
pub fn parse_duration(text: &str) -> Result<Duration, RuleError> {
    let invalid = || RuleError::InvalidDuration(text.to_string());
    if text.is_empty() || text.len() > DURATION_TEXT_BYTES_MAX {
        return Err(invalid());
    }
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        let seconds: u64 = text.parse().map_err(|_| invalid())?;
        return checked_duration(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_length = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        if digits == 0 || unit_length == 0 {
            return Err(invalid());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        let part = match &rest[digits..digits + unit_length] {
            "ms" => Duration::from_millis(amount),
            "s" => Duration::from_secs(amount),
            "m" => Duration::from_secs(amount.checked_mul(60).ok_or_else(invalid)?),
            "h" => Duration::from_secs(amount.checked_mul(3600).ok_or_else(invalid)?),
            _ => return Err(invalid()),
        };
        total = total.checked_add(part).ok_or_else(invalid)?;
        rest = &rest[digits + unit_length..];
    }
    checked_duration(total)
}

fn checked_duration(duration: Duration) -> Result<Duration, RuleError> {
    if duration.is_zero() {
        Err(RuleError::ZeroDuration)
    } else if duration > PARTITION_RULE_DURATION_MAX {
        Err(RuleError::DurationTooLong(duration))
    } else {
        Ok(duration)
    }
}

#[cfg(test)]
mod tests {
    //! Goal: CIDRs, percentages and durations parse as an operator would
    //! expect and fail with a message that says what was wrong; rules match
    //! the datagrams they name and nothing else; and everything survives a
    //! postcard round trip.
    use super::*;
    use proptest::prelude::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn socket(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_with_and_without_a_prefix() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("10.0.0.3").to_string(), "10.0.0.3/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("fd00::/8").to_string(), "fd00::/8");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("::/0").prefix_len(), 0);
    }

    #[test]
    fn bad_cidrs_say_what_is_wrong() {
        let error = "10.0.0.1/8".parse::<Cidr>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "10.0.0.1/8 has host bits set past the /8; did you mean 10.0.0.0/8?"
        );
        for (text, expected) in [
            (
                "10.0.0.0/33",
                "\"33\" is not a prefix length for IPv4 (expected 0 to 32)",
            ),
            (
                "fd00::/129",
                "\"129\" is not a prefix length for IPv6 (expected 0 to 128)",
            ),
            (
                "10.0.0.0/",
                "\"\" is not a prefix length for IPv4 (expected 0 to 32)",
            ),
            (
                "10.0.0.0/+8",
                "\"+8\" is not a prefix length for IPv4 (expected 0 to 32)",
            ),
            (
                "10.0.0.0/x",
                "\"x\" is not a prefix length for IPv4 (expected 0 to 32)",
            ),
        ] {
            assert_eq!(
                text.parse::<Cidr>().unwrap_err().to_string(),
                expected,
                "{text}"
            );
        }
        for text in ["", "10.0.0", "host.example", "10.0.0.0:7700", "/8", "[::1]"] {
            assert!(
                matches!(text.parse::<Cidr>(), Err(RuleError::InvalidAddr(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn cidrs_contain_exactly_their_addrs() {
        let net = cidr("10.1.0.0/16");
        assert!(net.contains("10.1.0.0".parse().unwrap()));
        assert!(net.contains("10.1.255.255".parse().unwrap()));
        assert!(!net.contains("10.2.0.0".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("fd00::1".parse().unwrap()));
        assert!(cidr("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(!cidr("0.0.0.0/0").contains("::2".parse().unwrap()));
        assert!(cidr("::/0").contains("::2".parse().unwrap()));
        assert!(cidr("fe80::/10").contains("febf::1".parse().unwrap()));
        assert!(!cidr("fe80::/10").contains("fec0::1".parse().unwrap()));
        assert!(cidr("127.0.0.1").contains("127.0.0.1".parse().unwrap()));
        assert!(!cidr("127.0.0.1").contains("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn rules_match_by_direction_peer_and_addr() {
        let by_peer = Rule::drop_all(Chain::In, Matcher::Peer(NodeId(3)));
        let addr = socket("10.0.0.3:7700");
        assert!(by_peer.matches(Direction::In, Some(NodeId(3)), addr));
        assert!(!by_peer.matches(Direction::Out, Some(NodeId(3)), addr));
        assert!(!by_peer.matches(Direction::In, Some(NodeId(4)), addr));
        assert!(!by_peer.matches(Direction::In, None, addr));
        let by_addr = Rule::drop_all(Chain::Both, Matcher::Addr(cidr("10.0.0.0/24")));
        assert!(by_addr.matches(Direction::In, None, addr));
        assert!(by_addr.matches(Direction::Out, Some(NodeId(9)), addr));
        assert!(!by_addr.matches(Direction::Out, None, socket("10.0.1.3:7700")));
        let outbound = Rule::drop_all(Chain::Out, Matcher::Peer(NodeId(3)));
        assert!(outbound.matches(Direction::Out, Some(NodeId(3)), addr));
        assert!(!outbound.matches(Direction::In, Some(NodeId(3)), addr));
    }

    #[test]
    fn drop_percentages_are_one_to_one_hundred() {
        assert_eq!(DropPercent::default(), DropPercent::ALL);
        assert_eq!(DropPercent::new(1).unwrap().get(), 1);
        assert_eq!(DropPercent::new(100).unwrap().get(), 100);
        for bad in [0, 101, 256, u64::MAX] {
            assert_eq!(
                DropPercent::new(bad),
                Err(RuleError::DropPercentOutOfRange(bad))
            );
        }
        // Deserialization checks the range too.
        let zero = postcard::to_allocvec(&0u8).unwrap();
        assert!(postcard::from_bytes::<DropPercent>(&zero).is_err());
    }

    #[test]
    fn durations_parse_in_the_documented_forms() {
        for (text, expected) in [
            ("30s", Duration::from_secs(30)),
            ("30", Duration::from_secs(30)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            ("1s500ms", Duration::from_millis(1500)),
            ("24h", PARTITION_RULE_DURATION_MAX),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
        for text in [
            "",
            "s",
            "10x",
            "1.5s",
            "-1s",
            "1 s",
            "10s5",
            "m10",
            "99999999999999999999h",
        ] {
            assert!(
                matches!(parse_duration(text), Err(RuleError::InvalidDuration(_))),
                "{text}"
            );
        }
        assert_eq!(parse_duration("0s"), Err(RuleError::ZeroDuration));
        assert_eq!(parse_duration("0"), Err(RuleError::ZeroDuration));
        assert!(matches!(
            parse_duration("1441m"),
            Err(RuleError::DurationTooLong(_))
        ));
        assert_eq!(
            parse_duration("1441m").unwrap_err().to_string(),
            "24h1m is too long: a rule may last at most 24h (leave out --for for no expiry)"
        );
    }

    #[test]
    fn rules_print_for_partition_list() {
        let rule = Rule {
            chain: Chain::Both,
            matcher: Matcher::Addr(cidr("10.0.0.0/8")),
            drop_percent: DropPercent::new(50).unwrap(),
            duration: Some(Duration::from_secs(90)),
        };
        assert_eq!(
            rule.to_string(),
            "both addr 10.0.0.0/8, drop 50%, for 1m30s"
        );
        let simple = Rule::drop_all(Chain::In, Matcher::Peer(NodeId(3)));
        assert_eq!(simple.to_string(), "in peer 3, drop 100%");
        let listed = ListedRule {
            number: 2,
            rule,
            remaining: Some(Duration::from_millis(29_500)),
            dropped: 12,
        };
        assert_eq!(
            listed.to_string(),
            "2: both addr 10.0.0.0/8, drop 50%, 29s500ms left, 12 dropped"
        );
        let listed = ListedRule {
            number: 1,
            rule: simple,
            remaining: None,
            dropped: 0,
        };
        assert_eq!(
            listed.to_string(),
            "1: in peer 3, drop 100%, until deleted, 0 dropped"
        );
        assert_eq!(
            DisplayDuration(Duration::from_millis(250)).to_string(),
            "250ms"
        );
        assert_eq!(DisplayDuration(Duration::ZERO).to_string(), "0ms");
        assert_eq!(DisplayDuration(Duration::from_secs(3600)).to_string(), "1h");
        assert_eq!(
            DisplayDuration(Duration::from_millis(3_723_004)).to_string(),
            "1h2m3s4ms"
        );
    }

    #[test]
    fn validation_refuses_zero_and_overlong_durations() {
        let mut rule = Rule::drop_all(Chain::Out, Matcher::Peer(NodeId(1)));
        assert_eq!(rule.validate(), Ok(()));
        rule.duration = Some(Duration::ZERO);
        assert_eq!(rule.validate(), Err(RuleError::ZeroDuration));
        rule.duration = Some(Duration::MAX);
        assert_eq!(
            rule.validate(),
            Err(RuleError::DurationTooLong(Duration::MAX))
        );
        rule.duration = Some(Duration::from_secs(1));
        assert_eq!(rule.validate(), Ok(()));
        let nobody = Rule::drop_all(Chain::In, Matcher::Peer(NodeId(0)));
        assert_eq!(nobody.validate(), Err(RuleError::InvalidPeerId(NodeId(0))));
        assert_eq!(
            nobody.validate().unwrap_err().to_string(),
            "peer id 0 is not a node id (ids start at 1)"
        );
    }

    #[test]
    fn json_is_lowercase_with_durations_in_milliseconds() {
        let listed = ListedRule {
            number: 1,
            rule: Rule {
                chain: Chain::In,
                matcher: Matcher::Peer(NodeId(3)),
                drop_percent: DropPercent::ALL,
                duration: Some(Duration::from_secs(30)),
            },
            remaining: Some(Duration::from_micros(29_500_900)),
            dropped: 0,
        };
        let json = serde_json::to_string(&listed).unwrap();
        assert_eq!(
            json,
            r#"{"number":1,"rule":{"chain":"in","matcher":{"peer":3},"drop_percent":100,"duration_ms":30000},"remaining_ms":29500,"dropped":0}"#
        );
        let by_addr = Rule {
            chain: Chain::Both,
            matcher: Matcher::Addr(cidr("fd00::/8")),
            drop_percent: DropPercent::new(5).unwrap(),
            duration: None,
        };
        let json = serde_json::to_string(&by_addr).unwrap();
        assert_eq!(
            json,
            r#"{"chain":"both","matcher":{"addr":"fd00::/8"},"drop_percent":5,"duration_ms":null}"#
        );
        assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), by_addr);
        // JSON input is checked like the parsers check text.
        for bad in [
            r#"{"chain":"in","matcher":{"peer":3},"drop_percent":0,"duration_ms":null}"#,
            r#"{"chain":"in","matcher":{"addr":"10.0.0.1/8"},"drop_percent":1,"duration_ms":null}"#,
            r#"{"chain":"sideways","matcher":{"peer":3},"drop_percent":1,"duration_ms":null}"#,
        ] {
            assert!(serde_json::from_str::<Rule>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_round_trip_through_postcard() {
        for rule in [
            Rule::drop_all(Chain::In, Matcher::Peer(NodeId(3))),
            Rule {
                chain: Chain::Both,
                matcher: Matcher::Addr(cidr("fd00::/8")),
                drop_percent: DropPercent::new(1).unwrap(),
                duration: Some(Duration::from_millis(1500)),
            },
        ] {
            let bytes = postcard::to_allocvec(&rule).unwrap();
            assert_eq!(postcard::from_bytes::<Rule>(&bytes).unwrap(), rule);
        }
        // A CIDR with host bits set is refused on the way in, too.
        let bytes = postcard::to_allocvec(&"10.0.0.1/8".to_string()).unwrap();
        assert!(postcard::from_bytes::<Cidr>(&bytes).is_err());
    }

    proptest! {
        /// Parsing arbitrary text never panics, and what parses prints back
        /// to something that parses to the same value.
        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".{0,40}") {
            if let Ok(cidr) = text.parse::<Cidr>() {
                prop_assert_eq!(cidr.to_string().parse::<Cidr>(), Ok(cidr));
            }
            if let Ok(duration) = parse_duration(&text) {
                prop_assert_eq!(parse_duration(&DisplayDuration(duration).to_string()), Ok(duration));
            }
        }

        /// Every duration a rule may have prints as text that parses back to it.
        #[test]
        fn durations_print_as_they_parse(millis in 1u64..=PARTITION_RULE_DURATION_MAX.as_millis() as u64) {
            let duration = Duration::from_millis(millis);
            prop_assert_eq!(parse_duration(&DisplayDuration(duration).to_string()), Ok(duration));
        }

        /// Every masked address parses back as the network, and contains itself.
        #[test]
        fn masked_networks_contain_their_addrs(bits in any::<u128>(), prefix_len in 0u8..=128, v4 in any::<bool>()) {
            let addr = if v4 {
                IpAddr::V4((bits as u32).into())
            } else {
                IpAddr::V6(bits.into())
            };
            let prefix_len = if v4 { prefix_len % 33 } else { prefix_len };
            let network = Cidr::new(mask(addr, prefix_len), prefix_len).unwrap();
            prop_assert!(network.contains(addr));
            prop_assert_eq!(network.to_string().parse::<Cidr>(), Ok(network));
        }
    }
}
