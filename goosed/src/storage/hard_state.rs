//! The hard state (term, vote) in two checksummed slots written alternately.
//!
//! An update overwrites the slot that does not hold the latest state, then
//! fdatasyncs. A crash in the middle of the write can damage only that slot,
//! so start-up always finds the previous state intact in the other one, and
//! picks the valid slot with the higher sequence number. The slots sit in
//! different 4 KiB blocks so that one torn or lost block cannot take both.
//!
//! Slot layout (little-endian, [`SLOT_BYTES`] bytes):
//! `magic "GHS1" | sequence u64 | term u64 | has_vote u8 | vote u64 |
//! lease_guard_ns u64 | identity u64 | zeros | crc32c u32`, the checksum
//! covering every byte before it. Slot `i` only ever holds sequence numbers
//! of parity `i`. The identity of the data directory is drawn when the file
//! is created and kept in every slot; a slot written before identities
//! existed holds zeros there, and opening it draws one and writes it.

use super::error::StorageError;
use super::file::{self, DataFile, FaultInjector};
use goose_common::{HardState, Identity, NodeId, Term};
use std::path::Path;
use std::time::Duration;

/// The hard-state file's name inside the data directory.
pub(crate) const HARD_STATE_FILE_NAME: &str = "hardstate";

/// The size of one encoded slot.
pub(crate) const SLOT_BYTES: usize = 64;

/// The distance between the starts of the two slots: one filesystem block.
pub(crate) const SLOT_STRIDE_BYTES: u64 = 4096;

/// The size of the whole file.
pub(crate) const HARD_STATE_FILE_BYTES: u64 = SLOT_STRIDE_BYTES + SLOT_BYTES as u64;

const SLOT_MAGIC: [u8; 4] = *b"GHS1";
const CHECKSUM_OFFSET: usize = SLOT_BYTES - 4;

const _: () = assert!(SLOT_STRIDE_BYTES >= SLOT_BYTES as u64);
const LEASE_GUARD_OFFSET: usize = 29;
const IDENTITY_OFFSET: usize = 37;
const _: () = assert!(CHECKSUM_OFFSET >= IDENTITY_OFFSET + 8);

/// One decoded slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// Increases by one with every update; picks the newer slot.
    pub(crate) sequence: u64,
    /// The term, vote and lease guard.
    pub(crate) hard_state: HardState,
    /// The identity of the data directory.
    pub(crate) identity: Identity,
}

/// Encodes a slot with its checksum.
pub(crate) fn encode_slot(slot: Slot) -> [u8; SLOT_BYTES] {
    let mut bytes = [0u8; SLOT_BYTES];
    bytes[0..4].copy_from_slice(&SLOT_MAGIC);
    bytes[4..12].copy_from_slice(&slot.sequence.to_le_bytes());
    bytes[12..20].copy_from_slice(&slot.hard_state.term.0.to_le_bytes());
    if let Some(vote) = slot.hard_state.vote {
        bytes[20] = 1;
        bytes[21..29].copy_from_slice(&vote.0.to_le_bytes());
    }
    let guard_ns = u64::try_from(slot.hard_state.lease_guard.as_nanos()).unwrap_or(u64::MAX);
    bytes[LEASE_GUARD_OFFSET..LEASE_GUARD_OFFSET + 8].copy_from_slice(&guard_ns.to_le_bytes());
    bytes[IDENTITY_OFFSET..IDENTITY_OFFSET + 8].copy_from_slice(&slot.identity.0.to_le_bytes());
    let checksum = crc32c::crc32c(&bytes[..CHECKSUM_OFFSET]);
    bytes[CHECKSUM_OFFSET..].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Decodes a slot, or says why it is not a valid one.
pub(crate) fn decode_slot(bytes: &[u8]) -> Result<Slot, &'static str> {
    if bytes.len() < SLOT_BYTES {
        return Err("the slot is cut short");
    }
    let u64_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&bytes[CHECKSUM_OFFSET..SLOT_BYTES]);
    if crc32c::crc32c(&bytes[..CHECKSUM_OFFSET]) != u32::from_le_bytes(stored) {
        return Err("checksum mismatch");
    }
    if bytes[0..4] != SLOT_MAGIC {
        return Err("bad magic");
    }
    let vote = match bytes[20] {
        0 => None,
        1 => Some(NodeId(u64_at(21))),
        _ => return Err("bad vote flag"),
    };
    let hard_state = HardState {
        term: Term(u64_at(12)),
        vote,
        lease_guard: Duration::from_nanos(u64_at(LEASE_GUARD_OFFSET)),
    };
    Ok(Slot {
        sequence: u64_at(4),
        hard_state,
        identity: Identity(u64_at(IDENTITY_OFFSET)),
    })
}

/// The byte offset of slot `index` (0 or 1).
fn slot_offset(index: u64) -> u64 {
    index * SLOT_STRIDE_BYTES
}

/// The open hard-state file.
#[derive(Debug)]
pub(crate) struct HardStateFile {
    file: DataFile,
    /// The sequence number of the latest durable slot.
    sequence: u64,
    /// The identity of the data directory, written into every slot.
    identity: Identity,
}

impl HardStateFile {
    /// Creates the file with both slots holding the empty hard state, so
    /// that from then on a single damaged slot always has a valid partner.
    pub(crate) fn create(
        dir: &Path,
        faults: &FaultInjector,
    ) -> Result<HardStateFile, StorageError> {
        let identity = new_identity()?;
        let file = DataFile::create(&dir.join(HARD_STATE_FILE_NAME), faults)?;
        let hard_state = HardState::default();
        for sequence in 0..2 {
            let bytes = encode_slot(Slot {
                sequence,
                hard_state,
                identity,
            });
            file.write_at(&bytes, slot_offset(sequence))?;
        }
        file.sync()?;
        Ok(HardStateFile {
            file,
            sequence: 1,
            identity,
        })
    }

    /// The identity of the data directory.
    pub(crate) fn identity(&self) -> Identity {
        self.identity
    }

    /// Opens the file and returns the latest hard state it holds.
    pub(crate) fn open(
        dir: &Path,
        faults: &FaultInjector,
    ) -> Result<(HardStateFile, HardState), StorageError> {
        let path = dir.join(HARD_STATE_FILE_NAME);
        let Some(bytes) = file::read_bounded(&path, HARD_STATE_FILE_BYTES)? else {
            let reason = "the term and vote record is gone".to_string();
            return Err(StorageError::Missing { path, reason });
        };
        let latest = latest_slot(&path, &bytes)?;
        let file = DataFile::open(&path, faults)?;
        let mut hard_state_file = HardStateFile {
            file,
            sequence: latest.sequence,
            identity: latest.identity,
        };
        if !latest.identity.is_known() {
            // Written before data directories had identities: draw one now,
            // durably, before anything is sent under it.
            hard_state_file.identity = new_identity()?;
            hard_state_file.write(latest.hard_state)?;
            tracing::info!(path = %path.display(), identity = %hard_state_file.identity, "gave the data directory its identity");
        }
        Ok((hard_state_file, latest.hard_state))
    }

    /// Makes `hard_state` durable in the slot not holding the latest state.
    pub(crate) fn write(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        let sequence = self.sequence + 1;
        let bytes = encode_slot(Slot {
            sequence,
            hard_state,
            identity: self.identity,
        });
        self.file.write_at(&bytes, slot_offset(sequence % 2))?;
        self.file.sync()?;
        self.sequence = sequence;
        Ok(())
    }
}

/// A fresh identity for a data directory.
fn new_identity() -> Result<Identity, StorageError> {
    Identity::generate().map_err(|error| StorageError::Randomness(error.to_string()))
}

/// Reads the hard state of an existing file without opening it for
/// writing; used to decide whether a directory without FORMAT holds data.
pub(crate) fn peek(dir: &Path) -> Option<HardState> {
    let path = dir.join(HARD_STATE_FILE_NAME);
    let bytes = file::read_bounded(&path, HARD_STATE_FILE_BYTES).ok()??;
    latest_slot(&path, &bytes).ok().map(|slot| slot.hard_state)
}

/// Picks the valid slot with the higher sequence number.
fn latest_slot(path: &Path, bytes: &[u8]) -> Result<Slot, StorageError> {
    let slot_bytes = |index: u64| {
        let start = usize::try_from(slot_offset(index)).unwrap_or(usize::MAX);
        bytes.get(start..).unwrap_or(&[])
    };
    let decode = |index: u64| {
        let slot = decode_slot(slot_bytes(index))?;
        if slot.sequence % 2 != index {
            return Err("sequence number of the wrong parity for this slot");
        }
        Ok(slot)
    };
    match (decode(0), decode(1)) {
        (Ok(first), Ok(second)) => Ok(if first.sequence > second.sequence {
            first
        } else {
            second
        }),
        (Ok(valid), Err(reason)) | (Err(reason), Ok(valid)) => {
            let bad_index = 1 - valid.sequence % 2;
            tracing::warn!(
                path = %path.display(),
                offset = slot_offset(bad_index),
                reason,
                sequence = valid.sequence,
                "hard-state slot {bad_index} is invalid (an interrupted update); using the other slot"
            );
            Ok(valid)
        }
        (Err(first), Err(second)) => {
            let reason = format!(
                "both term/vote slots are invalid (slot 0 at offset 0: {first}; slot 1 at offset {}: {second})",
                slot_offset(1)
            );
            Err(StorageError::corrupt(path, 0, reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(term: u64, vote: Option<u64>) -> HardState {
        HardState {
            term: Term(term),
            vote: vote.map(NodeId),
            lease_guard: Duration::from_millis(term * 50),
        }
    }

    /// A slot round-trips, and any single flipped bit is rejected.
    #[test]
    fn slot_round_trips_and_detects_every_bit_flip() {
        let slot = Slot {
            sequence: 7,
            hard_state: state(3, Some(2)),
            identity: Identity(0x5eed),
        };
        let bytes = encode_slot(slot);
        assert_eq!(decode_slot(&bytes), Ok(slot));
        for bit in 0..SLOT_BYTES * 8 {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_slot(&damaged).is_err(), "bit {bit} went unnoticed");
        }
    }

    /// A new file draws an identity and keeps it across updates and
    /// reopening; a file written before identities (zeros there) is given
    /// one, durably, when it is opened, and its term and vote are kept.
    #[test]
    fn the_identity_is_drawn_once_and_old_files_get_one() {
        let dir = tempfile::tempdir().unwrap();
        let faults = FaultInjector::default();
        let mut file = HardStateFile::create(dir.path(), &faults).unwrap();
        let identity = file.identity();
        assert!(identity.is_known());
        file.write(state(2, Some(1))).unwrap();
        let (reopened, found) = HardStateFile::open(dir.path(), &faults).unwrap();
        assert_eq!((reopened.identity(), found), (identity, state(2, Some(1))));
        let old = Slot {
            sequence: 9,
            hard_state: state(4, Some(3)),
            identity: Identity::UNKNOWN,
        };
        let path = dir.path().join(HARD_STATE_FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = slot_offset(1) as usize;
        bytes[at..at + SLOT_BYTES].copy_from_slice(&encode_slot(old));
        std::fs::write(&path, &bytes).unwrap();
        let (upgraded, found) = HardStateFile::open(dir.path(), &faults).unwrap();
        assert_eq!(found, state(4, Some(3)));
        assert!(upgraded.identity().is_known());
        let (again, _) = HardStateFile::open(dir.path(), &faults).unwrap();
        assert_eq!(
            again.identity(),
            upgraded.identity(),
            "the drawn identity was persisted"
        );
    }

    /// Updates alternate slots and the latest one wins at the next open.
    #[test]
    fn latest_update_wins_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let faults = FaultInjector::default();
        let mut file = HardStateFile::create(dir.path(), &faults).unwrap();
        for term in 1..5 {
            file.write(state(term, Some(term))).unwrap();
            let (_, found) = HardStateFile::open(dir.path(), &faults).unwrap();
            assert_eq!(found, state(term, Some(term)));
        }
    }
}
