//! The snapshot file: the compacted log prefix `(index, term, membership)`.
//!
//! Layout (little-endian): `magic "GSNP" | payload length u32 | crc32c u32 |
//! postcard(Snapshot)`, the checksum covering the magic, the length and the
//! payload. The file is replaced atomically (temporary file, fsync, rename,
//! fsync directory), so it is always either the old or the new snapshot.

use super::error::StorageError;
use super::file::{self, FaultInjector};
use goose_common::Snapshot;
use std::path::Path;

/// The snapshot file's name inside the data directory.
pub(crate) const SNAPSHOT_FILE_NAME: &str = "snapshot";

/// The largest snapshot file read or written. A snapshot holds one
/// membership of at most 73 members, a few kilobytes.
pub(crate) const SNAPSHOT_BYTES_MAX: u64 = 1024 * 1024;

const SNAPSHOT_MAGIC: [u8; 4] = *b"GSNP";
const HEADER_BYTES: usize = 12;

/// Encodes a snapshot file.
pub(crate) fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let payload = postcard::to_allocvec(snapshot).expect("a snapshot always encodes");
    assert!(
        (payload.len() + HEADER_BYTES) as u64 <= SNAPSHOT_BYTES_MAX,
        "a snapshot of {} bytes exceeds the limit",
        payload.len()
    );
    let length = u32::try_from(payload.len()).expect("bounded by SNAPSHOT_BYTES_MAX");
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&payload);
    let checksum = checksum(&bytes);
    bytes[8..12].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

/// The checksum of a snapshot file: everything but the checksum field.
fn checksum(bytes: &[u8]) -> u32 {
    let header = crc32c::crc32c(&bytes[..8]);
    crc32c::crc32c_append(header, &bytes[HEADER_BYTES..])
}

/// Decodes a snapshot file, or says where and why it is bad.
pub(crate) fn decode(bytes: &[u8]) -> Result<Snapshot, (u64, String)> {
    if bytes.len() < HEADER_BYTES || bytes[0..4] != SNAPSHOT_MAGIC {
        return Err((
            0,
            "not a snapshot file (bad magic or cut short)".to_string(),
        ));
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[4..8]);
    let length = u32::from_le_bytes(word) as usize;
    if bytes.len() != HEADER_BYTES + length {
        let reason = format!(
            "the header says {length} payload bytes, the file holds {}",
            bytes.len() - HEADER_BYTES
        );
        return Err((4, reason));
    }
    word.copy_from_slice(&bytes[8..12]);
    if checksum(bytes) != u32::from_le_bytes(word) {
        return Err((8, "checksum mismatch".to_string()));
    }
    postcard::from_bytes(&bytes[HEADER_BYTES..]).map_err(|error| {
        (
            HEADER_BYTES as u64,
            format!("undecodable snapshot: {error}"),
        )
    })
}

/// Reads the snapshot; an absent file is an error because the directory
/// always holds one from its creation on.
pub(crate) fn load(dir: &Path) -> Result<Snapshot, StorageError> {
    let path = dir.join(SNAPSHOT_FILE_NAME);
    let Some(bytes) = file::read_bounded(&path, SNAPSHOT_BYTES_MAX)? else {
        let reason = "the compacted log prefix is gone".to_string();
        return Err(StorageError::Missing { path, reason });
    };
    decode(&bytes).map_err(|(offset, reason)| StorageError::corrupt(&path, offset, reason))
}

/// Replaces the snapshot file atomically.
pub(crate) fn store(
    dir: &Path,
    snapshot: &Snapshot,
    faults: &FaultInjector,
) -> Result<(), StorageError> {
    file::replace_atomically(dir, SNAPSHOT_FILE_NAME, &encode(snapshot), faults)
}

#[cfg(test)]
mod tests {
    use super::*;
    use goose_common::{LogIndex, Membership, NodeId, Term};

    /// A snapshot round-trips and any single flipped bit is refused.
    #[test]
    fn snapshot_round_trips_and_detects_every_bit_flip() {
        let addr = "127.0.0.1:7700".parse().unwrap();
        let snapshot = Snapshot {
            index: LogIndex(9),
            term: Term(4),
            membership: Membership::with_voters([(NodeId(1), addr)]),
        };
        let bytes = encode(&snapshot);
        assert_eq!(decode(&bytes), Ok(snapshot));
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&damaged).is_err(), "bit {bit} went unnoticed");
        }
    }
}
