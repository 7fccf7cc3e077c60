//! Datagram framing and authentication (design.md §5): the cluster key, and
//! sealing and opening datagrams. The daemon's replay window and drop
//! counters build on it (`goosed::net`).
//!
//! Every UDP datagram between daemons has one layout, with or without a
//! cluster key. All integers are little-endian and fixed-width, so every field
//! sits at a fixed offset and a receiver can reject a datagram by looking at a
//! few bytes before it spends time on the MAC:
//!
//! ```text
//! offset  size  field
//!      0     1  version          (VERSION, currently 2)
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
use std::fmt;
use std::str::FromStr;

/// The datagram format version this build writes and accepts.
pub const VERSION: u8 = 2;

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
/// (receiver, sender). The daemon's replay window is the caller's next
/// step; only authenticated headers may reach it.
/// Never panics, whatever `bytes` holds.
pub fn open<'a>(
    key: &ClusterKey,
    bytes: &'a [u8],
    expected_receiver: NodeId,
) -> Result<(Header, &'a [u8]), OpenError> {
    if bytes.len() > DATAGRAM_BYTES_MAX {
        return Err(OpenError::Oversize);
    }
    if bytes.len() < DATAGRAM_BYTES_MIN {
        return Err(OpenError::Truncated);
    }
    if bytes[offset::VERSION] != VERSION {
        return Err(OpenError::UnknownVersion);
    }
    if read_u64(bytes, offset::CLUSTER_ID) != key.cluster_id().0 {
        return Err(OpenError::WrongCluster);
    }
    let (authenticated, mac_bytes) = bytes.split_at(bytes.len() - MAC_BYTES);
    let mut received_mac = [0u8; MAC_BYTES];
    received_mac.copy_from_slice(mac_bytes);
    // blake3::Hash's equality is constant-time.
    if key.mac(authenticated) != blake3::Hash::from_bytes(received_mac) {
        return Err(OpenError::BadMac);
    }
    let header = Header {
        sender: NodeId(read_u64(bytes, offset::SENDER)),
        receiver: NodeId(read_u64(bytes, offset::RECEIVER)),
        boot_id: BootId(read_u64(bytes, offset::BOOT_ID)),
        counter: read_u64(bytes, offset::COUNTER),
    };
    if header.receiver != expected_receiver {
        return Err(OpenError::WrongReceiver);
    }
    if !header.sender.is_valid() {
        return Err(OpenError::UnknownSender);
    }
    Ok((header, &authenticated[offset::PAYLOAD..]))
}

/// Reads the little-endian u64 at `at`; the caller has checked the length.
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Why [`open`] refused a datagram. The daemon counts each under the drop
/// reason of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum OpenError {
    /// Longer than [`DATAGRAM_BYTES_MAX`].
    #[error("longer than a datagram may be")]
    Oversize,
    /// Shorter than a header and a MAC.
    #[error("shorter than a header and a MAC")]
    Truncated,
    /// A version byte this build does not speak.
    #[error("a version this build does not speak")]
    UnknownVersion,
    /// The cluster id is another cluster's (another key).
    #[error("another cluster's id")]
    WrongCluster,
    /// The MAC does not match: tampering, damage, or a key mismatch that the
    /// cluster id did not reveal.
    #[error("the MAC does not match")]
    BadMac,
    /// An authenticated datagram addressed to another node id.
    #[error("addressed to another node")]
    WrongReceiver,
    /// An authenticated datagram from node id 0.
    #[error("from node id 0")]
    UnknownSender,
}

#[cfg(test)]
mod tests {
    //! Goal: every datagram the framing produces opens to the same header and
    //! payload; every damaged, foreign or misaddressed one is refused with
    //! the right reason; arbitrary bytes never panic.
    use super::*;
    use proptest::prelude::*;

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
            Err(OpenError::Truncated)
        );
        assert_eq!(open(&key, &[], NodeId(2)), Err(OpenError::Truncated));
        let mut big = good.clone();
        big.resize(DATAGRAM_BYTES_MAX + 1, 0);
        assert_eq!(open(&key, &big, NodeId(2)), Err(OpenError::Oversize));
        let mut version = good.clone();
        version[0] = VERSION + 1;
        assert_eq!(
            open(&key, &version, NodeId(2)),
            Err(OpenError::UnknownVersion)
        );
        assert_eq!(
            open(&self::key(8), &good, NodeId(2)),
            Err(OpenError::WrongCluster)
        );
        assert_eq!(open(&key, &good, NodeId(3)), Err(OpenError::WrongReceiver));
        let mut cut = good.clone();
        cut.pop();
        assert_eq!(open(&key, &cut, NodeId(2)), Err(OpenError::BadMac));
        let anonymous = Header {
            sender: NodeId(0),
            ..header(1)
        };
        let bytes = seal(&key, &anonymous, b"").unwrap();
        assert_eq!(open(&key, &bytes, NodeId(2)), Err(OpenError::UnknownSender));
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
            Err(OpenError::WrongCluster)
        );
        let mut damaged = bytes.clone();
        damaged[41] ^= 1;
        assert_eq!(open(&insecure, &damaged, NodeId(2)), Err(OpenError::BadMac));
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
    }
}
