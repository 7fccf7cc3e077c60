//! Crashes at every step and damage at every bit: start-up must recover
//! exactly what was durable, or refuse with the file and offset.

use super::*;
use crate::storage::hard_state::{self, Slot, SLOT_BYTES, SLOT_STRIDE_BYTES};
use crate::storage::record::{self, RecordRef};
use crate::storage::{StorageError, RECOVERY_HINT};
use goose_common::{LogIndex, Snapshot, Term};
use std::fs;

/// The log cut at every byte offset inside its last record (an interrupted
/// append) recovers to the last whole record, and the torn bytes are cut
/// from the file; the same holds when the torn part reads as zeros.
#[test]
fn cut_inside_the_last_record_recovers_the_records_before_it() {
    let dir = scratch_dir();
    let (mut storage, _) = open(dir.path(), LARGE_SEGMENT_BYTES);
    let model = write_entries(&mut storage, 6);
    drop(storage);
    let segment = segment_files(dir.path()).pop().unwrap();
    let whole = fs::read(&segment).unwrap();
    let last_start = *record_offsets(&segment).last().unwrap() as usize;
    let mut expected = model.clone();
    expected.entries.pop();
    for cut in last_start + 1..whole.len() {
        for zero_filled in [false, true] {
            let mut torn = whole[..cut].to_vec();
            if zero_filled {
                torn.resize(whole.len(), 0);
            }
            // Zeros can restore a record whose own last bytes are zeros.
            if torn == whole {
                continue;
            }
            fs::write(&segment, &torn).unwrap();
            let (_, found) = open(dir.path(), LARGE_SEGMENT_BYTES);
            assert_eq!(
                found, expected,
                "cut at byte {cut}, zero-filled: {zero_filled}"
            );
            assert_eq!(fs::metadata(&segment).unwrap().len(), last_start as u64);
        }
    }
    fs::write(&segment, &whole).unwrap();
    assert_eq!(open(dir.path(), LARGE_SEGMENT_BYTES).1, model);
}

/// Every single-bit flip in a record that is not the last one is refused,
/// naming the segment and the record's offset, never cut away. The first
/// record and the second-to-last (whose damage could pass for a torn tail
/// if the length were trusted) are both checked.
#[test]
fn every_bit_flip_before_the_last_record_is_refused() {
    let dir = scratch_dir();
    let (mut storage, _) = open(dir.path(), LARGE_SEGMENT_BYTES);
    write_entries(&mut storage, 6);
    drop(storage);
    let segment = segment_files(dir.path()).pop().unwrap();
    let whole = fs::read(&segment).unwrap();
    let offsets = record_offsets(&segment);
    let samples = [0, offsets.len() - 2];
    for sample in samples {
        let start = offsets[sample] as usize;
        let end = offsets[sample + 1] as usize;
        for bit in start * 8..end * 8 {
            let mut damaged = whole.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            fs::write(&segment, &damaged).unwrap();
            let error = DiskStorage::open_with(dir.path(), LARGE_SEGMENT_BYTES, Default::default())
                .expect_err("a flipped bit must be refused");
            let message = error.to_string();
            match error {
                StorageError::Corrupt { path, offset, .. } => {
                    assert_eq!((path, offset), (segment.clone(), start as u64), "bit {bit}");
                }
                other => panic!("bit {bit}: unexpected error {other}"),
            }
            assert!(message.contains(RECOVERY_HINT));
            assert_eq!(
                fs::read(&segment).unwrap(),
                damaged,
                "nothing is cut on refusal"
            );
        }
    }
}

/// The byte images a hard-state update interrupted after writing `written`
/// bytes of the new slot can leave, plus reorderings of its sectors.
fn interrupted_slot_images(old_file: &[u8], new_slot: &[u8], slot: usize) -> Vec<Vec<u8>> {
    let start = slot * SLOT_STRIDE_BYTES as usize;
    let mut images = Vec::new();
    for written in 0..=SLOT_BYTES {
        let mut image = old_file.to_vec();
        image[start..start + written].copy_from_slice(&new_slot[..written]);
        images.push(image.clone());
        image[start..start + written].fill(0);
        images.push(image);
    }
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..200 {
        let mut image = old_file.to_vec();
        for at in 0..SLOT_BYTES {
            if rng.bool() {
                image[start + at] = new_slot[at];
            }
        }
        images.push(image);
    }
    images
}

/// A term/vote update interrupted at every step (any prefix of the new slot
/// written, zeros instead of data, any mix of old and new bytes) leaves
/// start-up with the old state or the new one: never garbage, never an error.
#[test]
fn interrupted_hard_state_update_shows_old_or_new() {
    let dir = scratch_dir();
    let (mut storage, _) = open(dir.path(), LARGE_SEGMENT_BYTES);
    let old = hard_state(4, Some(2));
    let new = hard_state(5, None);
    for term in 1..=4 {
        let vote = (term == 4).then_some(2);
        let persist = Persist {
            hard_state: Some(hard_state(term, vote)),
            ..Persist::default()
        };
        storage.persist(&persist).unwrap();
    }
    drop(storage);
    let path = dir.path().join(hard_state::HARD_STATE_FILE_NAME);
    let old_file = fs::read(&path).unwrap();
    // The initial two slots hold sequences 0 and 1; four updates later the
    // latest is 5, so the interrupted update writes sequence 6 into slot 0.
    let new_slot = hard_state::encode_slot(Slot {
        sequence: 6,
        hard_state: new,
        identity: goose_common::Identity(1),
    });
    for image in interrupted_slot_images(&old_file, &new_slot, 0) {
        fs::write(&path, &image).unwrap();
        let (_, found) = open(dir.path(), LARGE_SEGMENT_BYTES);
        let complete = image[..SLOT_BYTES] == new_slot[..];
        let expected = if complete { new } else { old };
        assert_eq!(found.hard_state, expected);
    }
}

/// Both slots damaged is refused, naming the file.
#[test]
fn both_hard_state_slots_damaged_is_refused() {
    let dir = scratch_dir();
    drop(open(dir.path(), LARGE_SEGMENT_BYTES));
    let path = dir.path().join(hard_state::HARD_STATE_FILE_NAME);
    let mut bytes = fs::read(&path).unwrap();
    bytes[5] ^= 1;
    bytes[SLOT_STRIDE_BYTES as usize + 5] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let error = DiskStorage::open_with(dir.path(), LARGE_SEGMENT_BYTES, Default::default())
        .expect_err("both slots are bad");
    assert!(matches!(error, StorageError::Corrupt { path: ref p, offset: 0, .. } if *p == path));
}

/// A crash at any point of a new directory's initialisation (each file
/// present or not, the term/vote file cut at any byte) is initialised again
/// at the next start, since nothing in it can be durable state yet.
#[test]
fn interrupted_initialisation_starts_afresh() {
    let template = scratch_dir();
    drop(open(template.path(), LARGE_SEGMENT_BYTES));
    let hard_state_bytes = fs::read(template.path().join("hardstate")).unwrap();
    let snapshot_bytes = fs::read(template.path().join("snapshot")).unwrap();
    let cuts = (0..=hard_state_bytes.len()).step_by(61);
    for hard_state_cut in cuts.chain([hard_state_bytes.len()]) {
        for step in 0..4 {
            let dir = scratch_dir();
            fs::write(
                dir.path().join("hardstate"),
                &hard_state_bytes[..hard_state_cut],
            )
            .unwrap();
            if step >= 1 {
                fs::write(dir.path().join("snapshot.tmp"), &snapshot_bytes[..3]).unwrap();
            }
            if step >= 2 {
                fs::write(dir.path().join("snapshot"), &snapshot_bytes).unwrap();
                fs::create_dir(dir.path().join("wal")).unwrap();
            }
            if step >= 3 {
                fs::write(dir.path().join("wal/segment-00000000000000000000"), b"").unwrap();
                fs::write(dir.path().join("FORMAT.tmp"), b"goose-st").unwrap();
            }
            let (_, found) = open(dir.path(), LARGE_SEGMENT_BYTES);
            assert!(found.is_empty(), "cut {hard_state_cut}, step {step}");
            assert!(!dir.path().join("FORMAT.tmp").exists());
        }
    }
}

/// A rotation interrupted after creating the successor but before its
/// predecessor's seal was complete is recovered by cutting the torn seal.
#[test]
fn interrupted_rotation_is_recovered() {
    let dir = scratch_dir();
    let (mut storage, _) = open(dir.path(), LARGE_SEGMENT_BYTES);
    let model = write_entries(&mut storage, 3);
    drop(storage);
    let segment = segment_files(dir.path()).pop().unwrap();
    let whole = fs::read(&segment).unwrap();
    let mut seal = Vec::new();
    record::encode(&RecordRef::Seal { next_sequence: 1 }, &mut seal);
    fs::write(dir.path().join("wal/segment-00000000000000000001"), b"").unwrap();
    for written in 0..seal.len() {
        let mut torn = whole.clone();
        torn.extend_from_slice(&seal[..written]);
        fs::write(&segment, &torn).unwrap();
        let (mut storage, found) = open(dir.path(), LARGE_SEGMENT_BYTES);
        assert_eq!(found, model, "seal cut at {written}");
        let persist = Persist {
            entries: vec![entry(4, 1)],
            ..Persist::default()
        };
        storage.persist(&persist).unwrap();
        drop(storage);
        let mut expected = model.clone();
        expected.apply(&persist);
        assert_eq!(open(dir.path(), LARGE_SEGMENT_BYTES).1, expected);
        fs::write(dir.path().join("wal/segment-00000000000000000001"), b"").unwrap();
    }
}

/// Entries whose terms go backwards, written by some other program, are
/// refused at the offset of the offending entry.
#[test]
fn decreasing_terms_on_disk_are_refused() {
    let dir = scratch_dir();
    drop(open(dir.path(), LARGE_SEGMENT_BYTES));
    let mut bytes = Vec::new();
    record::encode(&RecordRef::Entry(&entry(1, 3)), &mut bytes);
    let second_offset = bytes.len() as u64;
    record::encode(&RecordRef::Entry(&entry(2, 2)), &mut bytes);
    let segment = segment_files(dir.path()).pop().unwrap();
    fs::write(&segment, &bytes).unwrap();
    let error = DiskStorage::open_with(dir.path(), LARGE_SEGMENT_BYTES, Default::default())
        .expect_err("terms decrease");
    assert!(
        matches!(error, StorageError::Corrupt { ref path, offset, .. } if *path == segment && offset == second_offset),
        "{error}"
    );
}

/// Persists that touch every file: a leader's snapshot replacing the whole
/// log in a new term (inside the log, where old entries conflict with it,
/// and past its end), a conflicting suffix replaced in a new term, and a
/// compaction with an append. Each follows entries 1..=10 of term 1.
fn compound_persists() -> Vec<(&'static str, Persist)> {
    let leader_snapshot = Snapshot {
        index: LogIndex(15),
        term: Term(2),
        membership: membership(3),
    };
    let compaction = Snapshot {
        index: LogIndex(8),
        term: Term(1),
        membership: membership(2),
    };
    let conflicting_snapshot = Snapshot {
        index: LogIndex(5),
        term: Term(2),
        membership: membership(1),
    };
    vec![
        (
            "leader snapshot inside a conflicting log",
            Persist {
                snapshot: Some(conflicting_snapshot),
                truncate_from: Some(LogIndex(1)),
                entries: vec![entry(6, 2), entry(7, 2)],
                hard_state: Some(hard_state(2, None)),
            },
        ),
        (
            "leader snapshot",
            Persist {
                snapshot: Some(leader_snapshot),
                truncate_from: Some(LogIndex(1)),
                entries: vec![entry(16, 2), entry(17, 2)],
                hard_state: Some(hard_state(2, None)),
            },
        ),
        (
            "conflicting suffix",
            Persist {
                truncate_from: Some(LogIndex(6)),
                entries: (6..=8).map(|index| entry(index, 2)).collect(),
                hard_state: Some(hard_state(2, Some(3))),
                ..Persist::default()
            },
        ),
        (
            "compaction and append",
            Persist {
                snapshot: Some(compaction),
                entries: vec![entry(11, 1), entry(12, 1)],
                ..Persist::default()
            },
        ),
    ]
}

/// The states a persist passes through on disk, in the order storage
/// writes its parts: term and vote, truncation, snapshot, entries.
fn prefix_states(old: &PersistedState, persist: &Persist) -> Vec<PersistedState> {
    let parts = [
        Persist {
            hard_state: persist.hard_state,
            ..Persist::default()
        },
        Persist {
            truncate_from: persist.truncate_from,
            ..Persist::default()
        },
        Persist {
            snapshot: persist.snapshot.clone(),
            ..Persist::default()
        },
        Persist {
            entries: persist.entries.clone(),
            ..Persist::default()
        },
    ];
    let mut states = vec![old.clone()];
    for part in parts {
        let mut next = states.last().unwrap().clone();
        next.apply(&part);
        states.push(next);
    }
    states
}

/// A persist stopped at each of its file operations in turn (the operation
/// fails and the process "crashes" before the next) leaves a directory that
/// opens without error to one of the states the persist passes through:
/// never a refusal, never a log that breaks its snapshot.
#[test]
fn persist_stopped_at_every_operation_leaves_a_prefix_state() {
    for (name, persist) in compound_persists() {
        let mut step = 1;
        loop {
            let dir = scratch_dir();
            let (mut storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
            let old = write_entries(&mut storage, 10);
            storage.faults().arm_countdown(step);
            let result = storage.persist(&persist);
            drop(storage);
            let (_, found) = open(dir.path(), SMALL_SEGMENT_BYTES);
            let states = prefix_states(&old, &persist);
            assert!(states.contains(&found), "{name}, step {step}: {found:?}");
            if result.is_ok() {
                assert_eq!(Some(&found), states.last(), "{name}");
                break;
            }
            step += 1;
        }
        assert!(step > 4, "{name}: only {step} operations");
    }
}
