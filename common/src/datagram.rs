//! Datagram framing and authentication (design.md §5), and the replay window.
//!
//! Every UDP datagram between daemons has one layout, with or without a
//! cluster key. All integers are little-endian and fixed-width, so every field
//! sits at a fixed offset and a receiver can reject a datagram by looking at a
//! few bytes before it spends time on the MAC:
//!
//! ```text
//! offset  size  field
//!      0     1  version          (VERSION, currently 1)
//!      1     8  cluster id       (u64, derived from the cluster key)
//!      9     8  sender id        (u64, NodeId of the sender)
//!     17     8  receiver id      (u64, NodeId the sender addressed)
//!     25     8  sender boot id   (u64, random, drawn once per process start)
//!     33     8  counter          (u64, per sender boot, +1 per datagram sent)
//!     41     n  payload          (postcard bytes; 0 <= n <= PAYLOAD_BYTES_MAX)
//!   41+n    32  MAC              (keyed BLAKE3 of bytes 0 .. 41+n)
//! ```
//!
//! The MAC is `blake3::keyed_hash(cluster_key, datagram[..41 + n])`, compared
//! in constant time. Without a key (`goosed run --insecure`) the datagram still
//! carries a MAC, computed with the all-zero key: the format stays one, and the
//! MAC still catches corruption, but it authenticates nothing because anyone
//! can compute it. Refusing an all-zero key in a key file keeps the two modes
//! apart.
//!
//! The cluster id is the first 8 bytes (little-endian) of
//! `blake3::derive_key("duck duck goose cluster id v1", cluster_key)`. It is
//! not secret and not configurable: it only lets a receiver tell "a daemon of
//! another cluster (another key) is talking to me" (`wrong_cluster`) apart
//! from "someone is tampering or the bytes were damaged" (`bad_mac`). Every
//! insecure cluster shares the id of the all-zero key.
//!
//! The payload is opaque here: the daemon decides what it encodes in it.

use crate::ids::NodeId;
use crate::limits::{DATAGRAM_BYTES_MAX, DATAGRAM_OVERHEAD_BYTES, MESSAGE_BYTES_MAX};
use crate::limits::{LEARNERS_MAX, VOTERS_MAX};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The datagram format version this build writes and accepts.
pub const VERSION: u8 = 1;

/// Bytes of the header: version, cluster id, sender, receiver, boot id, counter.
pub const HEADER_BYTES: usize = 1 + 8 + 8 + 8 + 8 + 8;

/// Bytes of the MAC that ends every datagram.
pub const MAC_BYTES: usize = blake3::OUT_LEN;

/// Bytes of a cluster key.
pub const KEY_BYTES: usize = blake3::KEY_LEN;

/// The largest payload one datagram carries.
pub const PAYLOAD_BYTES_MAX: usize = DATAGRAM_BYTES_MAX - HEADER_BYTES - MAC_BYTES;

/// The smallest well-formed datagram: a header, an empty payload and a MAC.
pub const DATAGRAM_BYTES_MIN: usize = HEADER_BYTES + MAC_BYTES;

/// The context string of the cluster-id derivation; changing it changes
/// every cluster's id, so it carries a version.
const CLUSTER_ID_CONTEXT: &str = "duck duck goose cluster id v1";

// The header and MAC fit in the overhead the rest of the system budgets for,
// so any message the core may emit (at most MESSAGE_BYTES_MAX) fits in a
// payload with room for the tag of the enum the daemon wraps it in.
const _: () = assert!(HEADER_BYTES + MAC_BYTES <= DATAGRAM_OVERHEAD_BYTES);
const _: () = assert!(MESSAGE_BYTES_MAX + 8 <= PAYLOAD_BYTES_MAX);
const _: () = assert!(KEY_BYTES == 32 && MAC_BYTES == 32);

/// Offsets of the header fields, in bytes from the start of the datagram.
mod offset {
    pub const VERSION: usize = 0;
    pub const CLUSTER_ID: usize = 1;
    pub const SENDER: usize = 9;
    pub const RECEIVER: usize = 17;
    pub const BOOT_ID: usize = 25;
    pub const COUNTER: usize = 33;
    pub const PAYLOAD: usize = 41;
    const _: () = assert!(PAYLOAD == super::HEADER_BYTES);
}

/// The id of a cluster, derived from its key (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterId(pub u64);

/// A random number a daemon draws once per process start. Together with the
/// per-boot counter it makes every datagram's (sender, boot id, counter)
/// unique, which is what the replay window checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BootId(pub u64);

impl BootId {
    /// A fresh boot id from the operating system's random number generator.
    pub fn generate() -> Result<BootId, RandomnessError> {
        getrandom::u64()
            .map(BootId)
            .map_err(|error| RandomnessError(error.to_string()))
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for BootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The operating system's random number generator failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomnessError(pub String);

/// Why a cluster key could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text does not have the length of a key.
    #[error(
        "a cluster key is 64 hex characters and a newline, but this one has {0} characters \
         (make one with `goosectl keygen > FILE`)"
    )]
    WrongLength(usize),
    /// The text holds a character that is not a hex digit.
    #[error("a cluster key is 64 hex characters, but character {position} is {found:?}")]
    NotHex {
        /// The 0-based position of the character.
        position: usize,
        /// The character found there.
        found: char,
    },
    /// The key is all zeros, which is the key of insecure mode.
    #[error("the all-zero key is the public key of insecure mode; make a real one with `goosectl keygen`")]
    AllZero,
    /// The random number generator failed while generating a key.
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
}

/// The secret shared by every member of a cluster: 32 bytes.
///
/// `Debug` never shows the key; `Display` writes it as 64 lowercase hex
/// characters (the key-file format, without the newline), so only format it
/// where it is meant to be seen (`goosectl keygen`).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey {
    bytes: [u8; KEY_BYTES],
    cluster_id: ClusterId,
}

impl ClusterKey {
    /// The key made of these bytes.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> ClusterKey {
        let derived = blake3::derive_key(CLUSTER_ID_CONTEXT, &bytes);
        let mut id_bytes = [0u8; 8];
        id_bytes.copy_from_slice(&derived[..8]);
        ClusterKey {
            bytes,
            cluster_id: ClusterId(u64::from_le_bytes(id_bytes)),
        }
    }

    /// The all-zero key of insecure mode (see the module documentation).
    pub fn insecure() -> ClusterKey {
        ClusterKey::from_bytes([0u8; KEY_BYTES])
    }

    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<ClusterKey, KeyError> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|error| RandomnessError(error.to_string()))?;
        if bytes == [0u8; KEY_BYTES] {
            // Probability 2^-256: a generator that returns zeros is broken.
            return Err(RandomnessError("it returned 32 zero bytes".to_string()).into());
        }
        Ok(ClusterKey::from_bytes(bytes))
    }

    /// Parses the text of a key file: 64 hex characters (either case),
    /// optionally followed by one newline (`\n` or `\r\n`).
    pub fn parse(text: &str) -> Result<ClusterKey, KeyError> {
        let hex = text
            .strip_suffix('\n')
            .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
            .unwrap_or(text);
        let length = hex.chars().count();
        if length != 2 * KEY_BYTES {
            return Err(KeyError::WrongLength(length));
        }
        let mut bytes = [0u8; KEY_BYTES];
        for (position, character) in hex.chars().enumerate() {
            let nibble = character.to_digit(16).ok_or(KeyError::NotHex {
                position,
                found: character,
            })?;
            // to_digit(16) is below 16, so the cast keeps every bit.
            bytes[position / 2] |= (nibble as u8) << if position % 2 == 0 { 4 } else { 0 };
        }
        if bytes == [0u8; KEY_BYTES] {
            return Err(KeyError::AllZero);
        }
        Ok(ClusterKey::from_bytes(bytes))
    }

    /// Whether this is the all-zero key of insecure mode.
    pub fn is_insecure(&self) -> bool {
        self.bytes == [0u8; KEY_BYTES]
    }

    /// The id of the cluster this key belongs to.
    pub fn cluster_id(&self) -> ClusterId {
        self.cluster_id
    }

    /// The MAC of `bytes` under this key.
    fn mac(&self, bytes: &[u8]) -> blake3::Hash {
        blake3::keyed_hash(&self.bytes, bytes)
    }
}

impl FromStr for ClusterKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<ClusterKey, KeyError> {
        ClusterKey::parse(text)
    }
}

impl fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.bytes {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterKey")
            .field("cluster_id", &self.cluster_id)
            .field("insecure", &self.is_insecure())
            .finish_non_exhaustive()
    }
}

/// The header fields a sender chooses. The version and cluster id are not
/// here: [`seal`] writes them and [`open`] checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The sending node.
    pub sender: NodeId,
    /// The node the sender addressed.
    pub receiver: NodeId,
    /// The sender's boot id.
    pub boot_id: BootId,
    /// The sender's counter for this datagram: unique per boot id.
    pub counter: u64,
}

/// Why a datagram could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The payload does not fit in one datagram.
    #[error("payload of {size} bytes does not fit in a datagram (limit {limit})")]
    PayloadTooLarge {
        /// The payload's size.
        size: usize,
        /// The limit, [`PAYLOAD_BYTES_MAX`].
        limit: usize,
    },
}

/// Frames and authenticates `payload` under `key` (layout in the module
/// documentation). The result is at most [`DATAGRAM_BYTES_MAX`] bytes.
pub fn seal(key: &ClusterKey, header: &Header, payload: &[u8]) -> Result<Vec<u8>, SealError> {
    if payload.len() > PAYLOAD_BYTES_MAX {
        return Err(SealError::PayloadTooLarge {
            size: payload.len(),
            limit: PAYLOAD_BYTES_MAX,
        });
    }
    let mut bytes = Vec::with_capacity(DATAGRAM_BYTES_MIN + payload.len());
    bytes.push(VERSION);
    bytes.extend_from_slice(&key.cluster_id().0.to_le_bytes());
    bytes.extend_from_slice(&header.sender.0.to_le_bytes());
    bytes.extend_from_slice(&header.receiver.0.to_le_bytes());
    bytes.extend_from_slice(&header.boot_id.0.to_le_bytes());
    bytes.extend_from_slice(&header.counter.to_le_bytes());
    debug_assert_eq!(bytes.len(), HEADER_BYTES);
    bytes.extend_from_slice(payload);
    let mac = key.mac(&bytes);
    bytes.extend_from_slice(mac.as_bytes());
    debug_assert!(bytes.len() <= DATAGRAM_BYTES_MAX);
    Ok(bytes)
}

/// Checks a received datagram and returns its header and payload.
///
/// The checks run from cheapest to dearest: size, version, cluster id, MAC,
/// then the fields only an authenticated datagram can be blamed for
/// (receiver, sender). The replay window is the caller's next step
/// ([`ReplayWindow::check`]); only authenticated headers may reach it.
/// Never panics, whatever `bytes` holds.
pub fn open<'a>(
    key: &ClusterKey,
    bytes: &'a [u8],
    expected_receiver: NodeId,
) -> Result<(Header, &'a [u8]), DropReason> {
    if bytes.len() > DATAGRAM_BYTES_MAX {
        return Err(DropReason::Oversize);
    }
    if bytes.len() < DATAGRAM_BYTES_MIN {
        return Err(DropReason::Truncated);
    }
    if bytes[offset::VERSION] != VERSION {
        return Err(DropReason::UnknownVersion);
    }
    if read_u64(bytes, offset::CLUSTER_ID) != key.cluster_id().0 {
        return Err(DropReason::WrongCluster);
    }
    let (authenticated, mac_bytes) = bytes.split_at(bytes.len() - MAC_BYTES);
    let mut received_mac = [0u8; MAC_BYTES];
    received_mac.copy_from_slice(mac_bytes);
    // blake3::Hash's equality is constant-time.
    if key.mac(authenticated) != blake3::Hash::from_bytes(received_mac) {
        return Err(DropReason::BadMac);
    }
    let header = Header {
        sender: NodeId(read_u64(bytes, offset::SENDER)),
        receiver: NodeId(read_u64(bytes, offset::RECEIVER)),
        boot_id: BootId(read_u64(bytes, offset::BOOT_ID)),
        counter: read_u64(bytes, offset::COUNTER),
    };
    if header.receiver != expected_receiver {
        return Err(DropReason::WrongReceiver);
    }
    if !header.sender.is_valid() {
        return Err(DropReason::UnknownSender);
    }
    Ok((header, &authenticated[offset::PAYLOAD..]))
}

/// Reads the little-endian u64 at `at`; the caller has checked the length.
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Why a received datagram was dropped. Each has a stable snake_case name,
/// used as the key of the drop counters in status JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// The MAC does not match: tampering, damage, or a key mismatch that the
    /// cluster id did not reveal.
    BadMac,
    /// The cluster id is another cluster's (another key).
    WrongCluster,
    /// An authenticated datagram addressed to another node id.
    WrongReceiver,
    /// A version byte this build does not speak.
    UnknownVersion,
    /// A (sender, boot id, counter) already accepted, or too old to tell.
    Replayed,
    /// Longer than [`DATAGRAM_BYTES_MAX`].
    Oversize,
    /// The payload did not decode (counted by the daemon, which decodes it).
    Undecodable,
    /// Shorter than a header and a MAC.
    Truncated,
    /// Dropped by a partition rule of the In chain.
    PartitionRule,
    /// An authenticated sender the daemon does not know (or id 0).
    UnknownSender,
    /// Two live processes interleave their boot ids under one node id (a
    /// copied data directory, or a second process under a member's id):
    /// every datagram of that sender is dropped while it lasts.
    DuplicateIdentity,
}

impl DropReason {
    /// Every reason, in a fixed order ([`DropReason::index`] is the position).
    pub const ALL: [DropReason; 11] = [
        DropReason::BadMac,
        DropReason::WrongCluster,
        DropReason::WrongReceiver,
        DropReason::UnknownVersion,
        DropReason::Replayed,
        DropReason::Oversize,
        DropReason::Undecodable,
        DropReason::Truncated,
        DropReason::PartitionRule,
        DropReason::UnknownSender,
        DropReason::DuplicateIdentity,
    ];

    /// How many reasons there are.
    pub const COUNT: usize = DropReason::ALL.len();

    /// The stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::BadMac => "bad_mac",
            DropReason::WrongCluster => "wrong_cluster",
            DropReason::WrongReceiver => "wrong_receiver",
            DropReason::UnknownVersion => "unknown_version",
            DropReason::Replayed => "replayed",
            DropReason::Oversize => "oversize",
            DropReason::Undecodable => "undecodable",
            DropReason::Truncated => "truncated",
            DropReason::PartitionRule => "partition_rule",
            DropReason::UnknownSender => "unknown_sender",
            DropReason::DuplicateIdentity => "duplicate_identity",
        }
    }

    /// The position of this reason in [`DropReason::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        match self {
            DropReason::BadMac => 0,
            DropReason::WrongCluster => 1,
            DropReason::WrongReceiver => 2,
            DropReason::UnknownVersion => 3,
            DropReason::Replayed => 4,
            DropReason::Oversize => 5,
            DropReason::Undecodable => 6,
            DropReason::Truncated => 7,
            DropReason::PartitionRule => 8,
            DropReason::UnknownSender => 9,
            DropReason::DuplicateIdentity => 10,
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------
// The replay window.
// ---------------------------------------------------------------------------

/// How many counters below the highest one seen a boot's window tracks;
/// older counters are refused. At 9 peers × 20 heartbeats a second a sender
/// uses about 180 counters a second, so this tolerates seconds of reordering.
pub const REPLAY_WINDOW_COUNTERS: u64 = 1024;

/// How many boots of one sender keep a full window. Two covers a restart
/// (the old boot's delayed datagrams and the new boot's) with room to spare.
pub const REPLAY_LIVE_BOOTS_PER_SENDER: usize = 2;

/// How many further boots of one sender are remembered compactly (boot id
/// and highest counter) after their full window is given up.
pub const REPLAY_REMEMBERED_BOOTS_PER_SENDER: usize = 16;

/// How many senders the window remembers. Senders are authenticated, so in
/// secure mode only members (and members that left) take entries.
pub const REPLAY_SENDERS_MAX: usize = 256;

const REPLAY_WINDOW_WORDS: usize = (REPLAY_WINDOW_COUNTERS / 64) as usize;
const _: () = assert!(REPLAY_WINDOW_COUNTERS.is_multiple_of(64) && REPLAY_WINDOW_COUNTERS >= 64);
const _: () = assert!(REPLAY_LIVE_BOOTS_PER_SENDER >= 2);
const _: () = assert!(REPLAY_SENDERS_MAX >= 2 * (VOTERS_MAX + LEARNERS_MAX));

/// The replay window of all senders (design.md §5).
///
/// # The rule
///
/// A datagram is identified by (sender, boot id, counter). The window
/// accepts each identity at most once while it remembers the sender's boot,
/// and never locks a live sender out:
///
/// 1. A boot with a full window (a *live* boot, at most
///    [`REPLAY_LIVE_BOOTS_PER_SENDER`] per sender) accepts a counter that is
///    new and no more than [`REPLAY_WINDOW_COUNTERS`] below the highest seen.
///    This is the RFC 6479 sliding window: reordering within the window is
///    accepted once per counter.
/// 2. A *remembered* boot (at most [`REPLAY_REMEMBERED_BOOTS_PER_SENDER`] per
///    sender; only its id and highest counter are kept) accepts only a counter
///    above its highest; that datagram makes it live again. So a replay of
///    anything a previous boot of the sender sent, and that this node
///    accepted, is refused.
/// 3. A boot id never seen (or forgotten) is accepted and becomes live. The
///    least recently used live boot is then compacted into a remembered one,
///    and the least recently used remembered boot is forgotten.
///
/// Why not "a new boot id replaces the current one and the old one is
/// refused for ever": a single replayed datagram of a boot that this node
/// does not remember (any boot before this node's own restart) would then
/// retire the sender's real, running boot, and cut the link until the sender
/// restarts. Here a replay can at worst make this node forget a boot (by
/// replaying datagrams of more than 18 old boots of one sender), after which
/// datagrams of that boot may be accepted once more: Raft tolerates
/// duplicated and delayed messages, so that degrades a defence in depth
/// without harming safety or liveness.
///
/// What no receiver-side rule can fix: a node that restarts remembers
/// nothing, so datagrams recorded before its restart are accepted (once each)
/// after it. They are old Raft messages, which Raft ignores or tolerates.
#[derive(Debug, Default)]
pub struct ReplayWindow {
    senders: HashMap<NodeId, SenderRecord>,
    /// A logical clock: +1 per check, used to find least recently used entries.
    uses: u64,
}

/// What the window remembers of one sender.
#[derive(Debug)]
struct SenderRecord {
    last_used: u64,
    live: Vec<LiveBoot>,
    remembered: Vec<RememberedBoot>,
}

#[derive(Debug)]
struct LiveBoot {
    boot_id: BootId,
    last_used: u64,
    window: CounterWindow,
}

#[derive(Debug, Clone, Copy)]
struct RememberedBoot {
    boot_id: BootId,
    last_used: u64,
    highest: u64,
}

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> ReplayWindow {
        ReplayWindow::default()
    }

    /// Accepts the datagram (and records it), or returns
    /// [`DropReason::Replayed`]. Call only with authenticated headers.
    pub fn check(&mut self, header: &Header) -> Result<(), DropReason> {
        self.uses += 1;
        let now = self.uses;
        if !self.senders.contains_key(&header.sender) && self.senders.len() >= REPLAY_SENDERS_MAX {
            self.forget_least_recent_sender();
        }
        let record = self
            .senders
            .entry(header.sender)
            .or_insert_with(|| SenderRecord {
                last_used: now,
                live: Vec::with_capacity(REPLAY_LIVE_BOOTS_PER_SENDER),
                remembered: Vec::new(),
            });
        record.last_used = now;
        let accepted = record.check(header.boot_id, header.counter, now);
        debug_assert!(record.live.len() <= REPLAY_LIVE_BOOTS_PER_SENDER);
        debug_assert!(record.remembered.len() <= REPLAY_REMEMBERED_BOOTS_PER_SENDER);
        debug_assert!(self.senders.len() <= REPLAY_SENDERS_MAX);
        if accepted {
            Ok(())
        } else {
            Err(DropReason::Replayed)
        }
    }

    /// How many senders are remembered.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }

    fn forget_least_recent_sender(&mut self) {
        let oldest = self
            .senders
            .iter()
            .min_by_key(|(_, record)| record.last_used)
            .map(|(sender, _)| *sender);
        if let Some(sender) = oldest {
            self.senders.remove(&sender);
        }
    }
}

impl SenderRecord {
    /// Rules 1 to 3 of [`ReplayWindow`]; true if accepted.
    fn check(&mut self, boot_id: BootId, counter: u64, now: u64) -> bool {
        if let Some(live) = self.live.iter_mut().find(|live| live.boot_id == boot_id) {
            live.last_used = now;
            return live.window.accept(counter);
        }
        let floor = match self.remembered.iter().position(|r| r.boot_id == boot_id) {
            Some(position) => {
                let remembered = self.remembered[position];
                if counter <= remembered.highest {
                    return false;
                }
                self.remembered.swap_remove(position);
                Some(remembered.highest)
            }
            None => None,
        };
        if self.live.len() >= REPLAY_LIVE_BOOTS_PER_SENDER {
            self.compact_least_recent_live_boot();
        }
        self.live.push(LiveBoot {
            boot_id,
            last_used: now,
            window: CounterWindow::starting_at(counter, floor),
        });
        true
    }

    fn compact_least_recent_live_boot(&mut self) {
        let Some(position) = (0..self.live.len()).min_by_key(|&i| self.live[i].last_used) else {
            return;
        };
        let live = self.live.swap_remove(position);
        if self.remembered.len() >= REPLAY_REMEMBERED_BOOTS_PER_SENDER {
            if let Some(oldest) =
                (0..self.remembered.len()).min_by_key(|&i| self.remembered[i].last_used)
            {
                self.remembered.swap_remove(oldest);
            }
        }
        self.remembered.push(RememberedBoot {
            boot_id: live.boot_id,
            last_used: live.last_used,
            highest: live.window.highest_refused(),
        });
    }
}

/// The RFC 6479 window of one boot: the highest counter accepted, a bitmap
/// of which of the [`REPLAY_WINDOW_COUNTERS`] counters at and below it were
/// accepted, and a floor at and below which everything is refused (the
/// highest counter of the boot before it was compacted, if it was).
#[derive(Debug, Clone)]
struct CounterWindow {
    highest: u64,
    /// Bit `k` (word `k / 64`, bit `k % 64`) is set if counter `highest - k`
    /// was accepted.
    seen: [u64; REPLAY_WINDOW_WORDS],
    floor: Option<u64>,
}

impl CounterWindow {
    fn starting_at(counter: u64, floor: Option<u64>) -> CounterWindow {
        debug_assert!(floor.is_none_or(|floor| counter > floor));
        let mut seen = [0u64; REPLAY_WINDOW_WORDS];
        seen[0] = 1;
        CounterWindow {
            highest: counter,
            seen,
            floor,
        }
    }

    /// Records `counter` and returns true if it was not accepted before and
    /// is recent enough to tell.
    fn accept(&mut self, counter: u64) -> bool {
        if self.floor.is_some_and(|floor| counter <= floor) {
            return false;
        }
        if counter > self.highest {
            self.shift(counter - self.highest);
            self.highest = counter;
            self.seen[0] |= 1;
            return true;
        }
        let age = self.highest - counter;
        if age >= REPLAY_WINDOW_COUNTERS {
            return false;
        }
        // age < REPLAY_WINDOW_COUNTERS, so the index is in range.
        let (word, bit) = ((age / 64) as usize, age % 64);
        if self.seen[word] & (1 << bit) != 0 {
            return false;
        }
        self.seen[word] |= 1 << bit;
        true
    }

    /// Moves every bit `distance` places up (towards older), dropping those
    /// that fall out of the window.
    fn shift(&mut self, distance: u64) {
        if distance >= REPLAY_WINDOW_COUNTERS {
            self.seen = [0; REPLAY_WINDOW_WORDS];
            return;
        }
        // distance < REPLAY_WINDOW_COUNTERS, so both fit in usize and u32.
        let words = (distance / 64) as usize;
        let bits = (distance % 64) as u32;
        for index in (0..REPLAY_WINDOW_WORDS).rev() {
            let whole = if index >= words {
                self.seen[index - words] << bits
            } else {
                0
            };
            let carried = if bits > 0 && index > words {
                self.seen[index - words - 1] >> (64 - bits)
            } else {
                0
            };
            self.seen[index] = whole | carried;
        }
    }

    /// Everything at or below this counter is refused once the bitmap is
    /// given up: the highest counter accepted.
    fn highest_refused(&self) -> u64 {
        self.highest.max(self.floor.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    //! Goal: every datagram the framing produces opens to the same header and
    //! payload; every damaged, foreign or misaddressed one is dropped with the
    //! right reason; arbitrary bytes never panic; and the replay window
    //! accepts each (sender, boot, counter) at most once without ever locking
    //! a live sender out.
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn key(byte: u8) -> ClusterKey {
        ClusterKey::from_bytes([byte; KEY_BYTES])
    }

    fn header(counter: u64) -> Header {
        Header {
            sender: NodeId(1),
            receiver: NodeId(2),
            boot_id: BootId(0xfeed),
            counter,
        }
    }

    #[test]
    fn sealed_datagrams_open_to_the_same_header_and_payload() {
        let key = key(7);
        for size in [0, 1, 100, PAYLOAD_BYTES_MAX] {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let bytes = seal(&key, &header(9), &payload).unwrap();
            assert_eq!(bytes.len(), DATAGRAM_BYTES_MIN + size);
            assert!(bytes.len() <= DATAGRAM_BYTES_MAX);
            let (opened, opened_payload) = open(&key, &bytes, NodeId(2)).unwrap();
            assert_eq!(opened, header(9));
            assert_eq!(opened_payload, &payload[..]);
        }
    }

    #[test]
    fn the_layout_matches_the_documented_offsets() {
        let key = key(7);
        let bytes = seal(&key, &header(0x0102), b"xy").unwrap();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(bytes[1..9], key.cluster_id().0.to_le_bytes());
        assert_eq!(bytes[9..17], 1u64.to_le_bytes());
        assert_eq!(bytes[17..25], 2u64.to_le_bytes());
        assert_eq!(bytes[25..33], 0xfeedu64.to_le_bytes());
        assert_eq!(bytes[33..41], 0x0102u64.to_le_bytes());
        assert_eq!(&bytes[41..43], b"xy");
        assert_eq!(
            bytes[43..],
            *blake3::keyed_hash(&[7; 32], &bytes[..43]).as_bytes()
        );
    }

    #[test]
    fn oversize_payloads_are_refused_by_seal() {
        let payload = vec![0u8; PAYLOAD_BYTES_MAX + 1];
        assert!(matches!(
            seal(&key(7), &header(0), &payload),
            Err(SealError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn each_kind_of_bad_datagram_has_its_reason() {
        let key = key(7);
        let good = seal(&key, &header(1), b"hello").unwrap();
        assert_eq!(
            open(&key, &good[..40], NodeId(2)),
            Err(DropReason::Truncated)
        );
        assert_eq!(open(&key, &[], NodeId(2)), Err(DropReason::Truncated));
        let mut big = good.clone();
        big.resize(DATAGRAM_BYTES_MAX + 1, 0);
        assert_eq!(open(&key, &big, NodeId(2)), Err(DropReason::Oversize));
        let mut version = good.clone();
        version[0] = 2;
        assert_eq!(
            open(&key, &version, NodeId(2)),
            Err(DropReason::UnknownVersion)
        );
        assert_eq!(
            open(&self::key(8), &good, NodeId(2)),
            Err(DropReason::WrongCluster)
        );
        assert_eq!(open(&key, &good, NodeId(3)), Err(DropReason::WrongReceiver));
        let mut cut = good.clone();
        cut.pop();
        assert_eq!(open(&key, &cut, NodeId(2)), Err(DropReason::BadMac));
        let anonymous = Header {
            sender: NodeId(0),
            ..header(1)
        };
        let bytes = seal(&key, &anonymous, b"").unwrap();
        assert_eq!(
            open(&key, &bytes, NodeId(2)),
            Err(DropReason::UnknownSender)
        );
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let key = key(7);
        let good = seal(&key, &header(5), b"a payload of some length").unwrap();
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                open(&key, &bad, NodeId(2)).is_err(),
                "bit {bit} flipped was accepted"
            );
        }
    }

    #[test]
    fn insecure_mode_still_carries_a_mac() {
        let insecure = ClusterKey::insecure();
        assert!(insecure.is_insecure());
        assert!(!key(7).is_insecure());
        let bytes = seal(&insecure, &header(1), b"x").unwrap();
        assert!(open(&insecure, &bytes, NodeId(2)).is_ok());
        assert_eq!(
            open(&key(7), &bytes, NodeId(2)),
            Err(DropReason::WrongCluster)
        );
        let mut damaged = bytes.clone();
        damaged[41] ^= 1;
        assert_eq!(
            open(&insecure, &damaged, NodeId(2)),
            Err(DropReason::BadMac)
        );
    }

    #[test]
    fn keys_parse_from_the_key_file_format_and_print_back() {
        let generated = ClusterKey::generate().unwrap();
        let text = format!("{generated}\n");
        assert_eq!(text.len(), 65);
        assert_eq!(ClusterKey::parse(&text).unwrap(), generated);
        assert_eq!(ClusterKey::parse(&text.to_uppercase()).unwrap(), generated);
        assert_eq!(ClusterKey::parse(text.trim_end()).unwrap(), generated);
        assert_eq!(
            ClusterKey::parse(&format!("{generated}\r\n")).unwrap(),
            generated
        );
        assert_ne!(ClusterKey::generate().unwrap(), generated);
        assert!(!format!("{generated:?}").contains(&generated.to_string()));
    }

    #[test]
    fn malformed_keys_are_refused_with_a_clear_reason() {
        assert_eq!(ClusterKey::parse(""), Err(KeyError::WrongLength(0)));
        assert_eq!(
            ClusterKey::parse(&"a".repeat(63)),
            Err(KeyError::WrongLength(63))
        );
        assert_eq!(
            ClusterKey::parse(&"a".repeat(65)),
            Err(KeyError::WrongLength(65))
        );
        assert_eq!(
            ClusterKey::parse(&format!("{}\n\n", "a".repeat(64))),
            Err(KeyError::WrongLength(65))
        );
        let mut text = "a".repeat(64);
        text.replace_range(5..6, "g");
        assert_eq!(
            ClusterKey::parse(&text),
            Err(KeyError::NotHex {
                position: 5,
                found: 'g'
            })
        );
        assert_eq!(
            ClusterKey::parse(&"é".repeat(64)).unwrap_err(),
            KeyError::NotHex {
                position: 0,
                found: 'é'
            }
        );
        assert_eq!(ClusterKey::parse(&"0".repeat(64)), Err(KeyError::AllZero));
        assert!(KeyError::WrongLength(3)
            .to_string()
            .contains("goosectl keygen"));
    }

    #[test]
    fn the_cluster_id_depends_on_the_key() {
        assert_eq!(key(1).cluster_id(), key(1).cluster_id());
        assert_ne!(key(1).cluster_id(), key(2).cluster_id());
        assert_ne!(key(1).cluster_id(), ClusterKey::insecure().cluster_id());
    }

    #[test]
    fn drop_reasons_have_distinct_stable_names_and_indexes() {
        let names: HashSet<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
        for (position, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), position);
            assert_eq!(reason.to_string(), reason.name());
        }
        assert_eq!(DropReason::BadMac.name(), "bad_mac");
        assert_eq!(DropReason::PartitionRule.name(), "partition_rule");
    }

    fn from(sender: u64, boot: u64, counter: u64) -> Header {
        Header {
            sender: NodeId(sender),
            receiver: NodeId(99),
            boot_id: BootId(boot),
            counter,
        }
    }

    #[test]
    fn replays_are_refused_and_reordering_within_the_window_is_accepted_once() {
        let mut window = ReplayWindow::new();
        for counter in [10, 12, 11, 5, 1000, 1010] {
            assert_eq!(
                window.check(&from(1, 1, counter)),
                Ok(()),
                "counter {counter}"
            );
        }
        for counter in [10, 12, 11, 5, 1000, 1010] {
            assert_eq!(
                window.check(&from(1, 1, counter)),
                Err(DropReason::Replayed)
            );
        }
        // 1010 - 1024 < 0: everything from 0 up is still inside the window.
        assert_eq!(window.check(&from(1, 1, 0)), Ok(()));
        assert_eq!(window.check(&from(1, 1, 3000)), Ok(()));
        // 3000 - 1976 = 1024 is just outside; 1977 just inside.
        assert_eq!(window.check(&from(1, 1, 1976)), Err(DropReason::Replayed));
        assert_eq!(window.check(&from(1, 1, 1977)), Ok(()));
        // Other senders and boots have windows of their own.
        assert_eq!(window.check(&from(2, 1, 10)), Ok(()));
        assert_eq!(window.check(&from(1, 2, 10)), Ok(()));
    }

    #[test]
    fn a_previous_boot_is_refused_after_the_sender_restarts() {
        let mut window = ReplayWindow::new();
        // Boots 1, 2, 3: the sender restarted twice; boot 1 loses its full window.
        for boot in 1..=3 {
            for counter in 0..50 {
                assert_eq!(window.check(&from(1, boot, counter)), Ok(()));
            }
        }
        for boot in 1..=3 {
            for counter in 0..50 {
                assert_eq!(
                    window.check(&from(1, boot, counter)),
                    Err(DropReason::Replayed)
                );
            }
        }
        // A remembered boot that is somehow still running may go on.
        assert_eq!(window.check(&from(1, 1, 50)), Ok(()));
        assert_eq!(window.check(&from(1, 1, 49)), Err(DropReason::Replayed));
    }

    #[test]
    fn replaying_old_boots_never_locks_out_the_running_boot() {
        let mut window = ReplayWindow::new();
        assert_eq!(window.check(&from(1, 1000, 0)), Ok(()));
        // An attacker replays one datagram from each of 100 old boots.
        for boot in 0..100 {
            let _ = window.check(&from(1, boot, 7));
        }
        assert_eq!(window.check(&from(1, 1000, 1)), Ok(()));
        assert_eq!(window.check(&from(1, 1000, 1)), Err(DropReason::Replayed));
    }

    #[test]
    fn the_number_of_senders_is_bounded() {
        let mut window = ReplayWindow::new();
        for sender in 1..=(REPLAY_SENDERS_MAX as u64 + 10) {
            assert_eq!(window.check(&from(sender, 1, 0)), Ok(()));
        }
        assert_eq!(window.senders(), REPLAY_SENDERS_MAX);
        // The most recent sender is still remembered.
        let last = REPLAY_SENDERS_MAX as u64 + 10;
        assert_eq!(window.check(&from(last, 1, 0)), Err(DropReason::Replayed));
    }

    #[test]
    fn shifting_moves_bits_across_words() {
        let mut window = CounterWindow::starting_at(100, None);
        for distance in [1u64, 63, 64, 65, 127, 500] {
            let before = window.clone();
            window.shift(distance);
            for k in 0..REPLAY_WINDOW_COUNTERS {
                let was = before.seen[(k / 64) as usize] >> (k % 64) & 1;
                let moved = k + distance;
                if moved < REPLAY_WINDOW_COUNTERS {
                    let now = window.seen[(moved / 64) as usize] >> (moved % 64) & 1;
                    assert_eq!(was, now, "bit {k} shifted by {distance}");
                }
            }
            for k in 0..distance.min(REPLAY_WINDOW_COUNTERS) {
                assert_eq!(window.seen[(k / 64) as usize] >> (k % 64) & 1, 0);
            }
            window.seen[0] |= 1;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes never panic `open`, and are essentially never accepted.
        #[test]
        fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
            prop_assert!(open(&key(7), &bytes, NodeId(2)).is_err());
        }

        /// Arbitrary bytes behind a valid prefix (version and cluster id) never panic.
        #[test]
        fn opening_bytes_with_a_valid_prefix_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let key = key(7);
            let mut bytes = vec![VERSION];
            bytes.extend_from_slice(&key.cluster_id().0.to_le_bytes());
            bytes.extend_from_slice(&tail);
            prop_assert!(open(&key, &bytes, NodeId(2)).is_err());
        }

        /// Any change to a sealed datagram is rejected.
        #[test]
        fn any_mutation_is_rejected(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            position in any::<usize>(),
            change in 1u8..=255,
        ) {
            let key = key(7);
            let mut bytes = seal(&key, &header(3), &payload).unwrap();
            let position = position % bytes.len();
            bytes[position] ^= change;
            prop_assert!(open(&key, &bytes, NodeId(2)).is_err());
        }

        /// One boot's window against a model: a counter is accepted if and
        /// only if it was not accepted before and is within the window of the
        /// highest accepted so far.
        #[test]
        fn one_boot_matches_the_model(counters in proptest::collection::vec(0u64..3000, 1..400)) {
            let mut window = ReplayWindow::new();
            let mut accepted = HashSet::new();
            let mut highest: Option<u64> = None;
            for counter in counters {
                let expected = !accepted.contains(&counter)
                    && highest.is_none_or(|h| counter > h || h - counter < REPLAY_WINDOW_COUNTERS);
                let got = window.check(&from(1, 1, counter)).is_ok();
                prop_assert_eq!(got, expected, "counter {}", counter);
                if got {
                    accepted.insert(counter);
                    highest = Some(highest.map_or(counter, |h| h.max(counter)));
                }
            }
        }

        /// While every boot is remembered (few enough boots), no identity is
        /// accepted twice; and a counter above every counter yet presented
        /// for its boot is always accepted (no lockout).
        #[test]
        fn no_identity_is_accepted_twice_and_no_boot_is_locked_out(
            datagrams in proptest::collection::vec(
                (1u64..4, 0..(REPLAY_LIVE_BOOTS_PER_SENDER + REPLAY_REMEMBERED_BOOTS_PER_SENDER) as u64, 0u64..2000),
                1..600,
            )
        ) {
            let mut window = ReplayWindow::new();
            let mut accepted = HashSet::new();
            let mut presented_max: HashMap<(u64, u64), u64> = HashMap::new();
            for (sender, boot, counter) in datagrams {
                let got = window.check(&from(sender, boot, counter)).is_ok();
                if got {
                    prop_assert!(accepted.insert((sender, boot, counter)), "accepted twice");
                }
                let above_all = presented_max.get(&(sender, boot)).is_none_or(|&max| counter > max);
                if above_all {
                    prop_assert!(got, "a fresh counter of boot {} was refused", boot);
                }
                let max = presented_max.entry((sender, boot)).or_insert(counter);
                *max = (*max).max(counter);
            }
        }
    }
}
