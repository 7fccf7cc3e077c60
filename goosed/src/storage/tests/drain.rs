//! The drain intent: kept across restarts until undrained, crash-safe, and
//! never read as "not drained" when its file is damaged.

use super::*;
use crate::storage::drain::{DRAIN_FILE_CONTENT, DRAIN_FILE_NAME, DRAIN_TEMPORARY_FILE_NAME};
use crate::storage::file::Fault;
use crate::storage::StorageError;
use std::fs;
use std::os::unix::fs::PermissionsExt;

fn reopen_drained(dir: &Path) -> bool {
    open(dir, SMALL_SEGMENT_BYTES).0.drained()
}

/// A new data directory, and one from before drains existed (no file), is
/// not drained.
#[test]
fn a_new_directory_is_not_drained() {
    let dir = scratch_dir();
    let (storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
    assert!(!storage.drained());
    drop(storage);
    assert!(!reopen_drained(dir.path()));
    assert!(!dir.path().join(DRAIN_FILE_NAME).exists());
}

/// A drain survives a restart (with the log and term kept), and so does the
/// undrain that follows it.
#[test]
fn drain_and_undrain_survive_a_restart() {
    let dir = scratch_dir();
    let (mut storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
    let model = write_entries(&mut storage, 3);
    storage.set_drained(true).unwrap();
    assert!(storage.drained());
    drop(storage);

    let (mut storage, found) = open(dir.path(), SMALL_SEGMENT_BYTES);
    assert!(storage.drained(), "the drain was kept across the restart");
    assert_eq!(found, model);
    let path = dir.path().join(DRAIN_FILE_NAME);
    assert_eq!(fs::read_to_string(&path).unwrap(), DRAIN_FILE_CONTENT);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    storage.set_drained(false).unwrap();
    assert!(!storage.drained());
    drop(storage);

    assert!(!reopen_drained(dir.path()), "the undrain was kept too");
    assert!(!path.exists());
}

/// Setting the value already in force succeeds without IO: an armed write
/// or fsync failure is still armed afterwards.
#[test]
fn setting_the_same_value_again_is_a_no_op() {
    for fault in [Fault::Write, Fault::Sync] {
        let dir = scratch_dir();
        let (mut storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
        storage.faults().arm(fault);
        storage.set_drained(false).unwrap();
        assert!(!storage.drained());
        assert!(storage.set_drained(true).is_err(), "{fault:?} was consumed");

        let dir = scratch_dir();
        let (mut storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
        storage.set_drained(true).unwrap();
        storage.faults().arm(fault);
        storage.set_drained(true).unwrap();
        assert!(storage.drained());
        assert!(
            storage.set_drained(false).is_err(),
            "{fault:?} was consumed"
        );
    }
}

/// A drain file that is damaged (empty, cut short, other bytes, too large)
/// or cannot be read counts as drained, never as "not drained"; undrain
/// removes it and drain rewrites it.
#[test]
fn a_damaged_drain_file_counts_as_drained() {
    let damaged: [&[u8]; 5] = [
        b"",
        &DRAIN_FILE_CONTENT.as_bytes()[..7],
        b"not drained\n",
        &[0u8; 64],
        &[b'x'; 4096],
    ];
    for content in damaged {
        for (repair, expected) in [(false, false), (true, true)] {
            let dir = scratch_dir();
            drop(open(dir.path(), SMALL_SEGMENT_BYTES));
            let path = dir.path().join(DRAIN_FILE_NAME);
            fs::write(&path, content).unwrap();
            let (mut storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
            assert!(storage.drained(), "{content:?} read as not drained");
            storage.set_drained(repair).unwrap();
            drop(storage);
            assert_eq!(reopen_drained(dir.path()), expected, "{content:?}");
            if expected {
                assert_eq!(fs::read_to_string(&path).unwrap(), DRAIN_FILE_CONTENT);
            } else {
                assert!(!path.exists());
            }
        }
    }
    // Unreadable: a directory where the file should be.
    let dir = scratch_dir();
    drop(open(dir.path(), SMALL_SEGMENT_BYTES));
    fs::create_dir(dir.path().join(DRAIN_FILE_NAME)).unwrap();
    assert!(reopen_drained(dir.path()));
}

/// A drain or undrain stopped at each of its file operations in turn (the
/// operation fails and the process "crashes") leaves the old intent or the
/// new one, never an error at the next start, and no temporary file behind.
#[test]
fn a_change_stopped_at_every_operation_leaves_the_old_or_the_new_intent() {
    for drained in [true, false] {
        let mut step = 1;
        loop {
            let dir = scratch_dir();
            let (mut storage, _) = open(dir.path(), SMALL_SEGMENT_BYTES);
            storage.set_drained(!drained).unwrap();
            storage.faults().arm_countdown(step);
            let result = storage.set_drained(drained);
            if result.is_err() {
                assert!(
                    matches!(storage.set_drained(drained), Err(StorageError::Poisoned)),
                    "a failure poisons the storage"
                );
                assert!(matches!(
                    storage.persist(&Persist::default()),
                    Err(StorageError::Poisoned)
                ));
            }
            drop(storage);
            let found = reopen_drained(dir.path());
            assert!(!dir.path().join(DRAIN_TEMPORARY_FILE_NAME).exists());
            if result.is_ok() {
                assert_eq!(found, drained, "step {step}");
                break;
            }
            step += 1;
        }
        assert!(step > 1, "drained {drained}: only {step} operations");
    }
}

/// A temporary file left by a drain interrupted before its rename is
/// removed at start and does not count as a drain.
#[test]
fn a_leftover_temporary_file_is_removed() {
    let dir = scratch_dir();
    drop(open(dir.path(), SMALL_SEGMENT_BYTES));
    let temporary = dir.path().join(DRAIN_TEMPORARY_FILE_NAME);
    fs::write(&temporary, &DRAIN_FILE_CONTENT.as_bytes()[..3]).unwrap();
    assert!(!reopen_drained(dir.path()));
    assert!(!temporary.exists());
}
